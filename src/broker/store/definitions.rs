//! The definitions log: durable exchanges, queues and bindings as JSON lines, one change a
//! line, fsync'd before the declare is answered. On start it is replayed into the current
//! state and rewritten compactly (temp file, fsync, rename).

use amq_protocol::types::FieldTable;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One change to the durable topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Def {
    Exchange {
        vhost: String,
        name: String,
        kind: String,
        auto_delete: bool,
        internal: bool,
        /// Arguments as base64 of their AMQP encoding: lossless for every field type.
        args: String,
    },
    DeleteExchange {
        vhost: String,
        name: String,
    },
    Queue {
        vhost: String,
        name: String,
        /// Directory of the queue's message log (`queues/<id>`).
        id: u64,
        auto_delete: bool,
        args: String,
    },
    DeleteQueue {
        vhost: String,
        name: String,
    },
    Bind {
        vhost: String,
        source: String,
        destination: String,
        /// false: the destination is an exchange.
        to_queue: bool,
        key: String,
        args: String,
    },
    Unbind {
        vhost: String,
        source: String,
        destination: String,
        to_queue: bool,
        key: String,
        args: String,
    },
}

/// Encode arguments for the log.
pub(crate) fn encode_args(t: &FieldTable) -> String {
    match cookie_factory::r#gen(
        amq_protocol::types::generation::gen_field_table(t),
        Vec::new(),
    ) {
        Ok((v, _)) => base64::engine::general_purpose::STANDARD.encode(v),
        Err(_) => String::new(),
    }
}

/// Decode arguments from the log (empty table when unreadable).
pub(crate) fn decode_args(s: &str) -> FieldTable {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .and_then(|v| {
            amq_protocol::types::parsing::parse_field_table(v.as_slice())
                .ok()
                .map(|(_, t)| t)
        })
        .unwrap_or_default()
}

/// The durable topology after replaying the log, in declaration order.
#[derive(Debug, Default)]
pub(crate) struct Topology {
    pub(crate) exchanges: Vec<Def>,
    pub(crate) queues: Vec<Def>,
    pub(crate) bindings: Vec<Def>,
    /// Lines that could not be read (reported, never silently dropped).
    pub(crate) skipped: Vec<String>,
}

fn key(d: &Def) -> (String, String) {
    match d {
        Def::Exchange { vhost, name, .. }
        | Def::DeleteExchange { vhost, name }
        | Def::Queue { vhost, name, .. }
        | Def::DeleteQueue { vhost, name } => (vhost.clone(), name.clone()),
        _ => (String::new(), String::new()),
    }
}

fn same_binding(a: &Def, b: &Def) -> bool {
    let parts = |d: &Def| match d {
        Def::Bind {
            vhost,
            source,
            destination,
            to_queue,
            key,
            args,
        }
        | Def::Unbind {
            vhost,
            source,
            destination,
            to_queue,
            key,
            args,
        } => Some((
            vhost.clone(),
            source.clone(),
            destination.clone(),
            *to_queue,
            key.clone(),
            args.clone(),
        )),
        _ => None,
    };
    parts(a).is_some() && parts(a) == parts(b)
}

impl Topology {
    fn apply(&mut self, d: Def) {
        match &d {
            Def::Exchange { .. } => {
                let k = key(&d);
                self.exchanges.retain(|x| key(x) != k);
                self.exchanges.push(d);
            }
            Def::DeleteExchange { vhost, name } => {
                let k = key(&d);
                self.exchanges.retain(|x| key(x) != k);
                self.bindings.retain(|b| match b {
                    Def::Bind {
                        vhost: v,
                        source,
                        destination,
                        to_queue,
                        ..
                    } => !(v == vhost && (source == name || (!to_queue && destination == name))),
                    _ => true,
                });
            }
            Def::Queue { .. } => {
                let k = key(&d);
                self.queues.retain(|x| key(x) != k);
                self.queues.push(d);
            }
            Def::DeleteQueue { vhost, name } => {
                let k = key(&d);
                self.queues.retain(|x| key(x) != k);
                self.bindings.retain(|b| match b {
                    Def::Bind {
                        vhost: v,
                        destination,
                        to_queue,
                        ..
                    } => !(v == vhost && *to_queue && destination == name),
                    _ => true,
                });
            }
            Def::Bind { .. } => {
                if !self.bindings.iter().any(|b| same_binding(b, &d)) {
                    self.bindings.push(d);
                }
            }
            Def::Unbind { .. } => self.bindings.retain(|b| !same_binding(b, &d)),
        }
    }

    /// Everything, as a compact log.
    fn lines(&self) -> impl Iterator<Item = &Def> {
        self.exchanges
            .iter()
            .chain(&self.queues)
            .chain(&self.bindings)
    }
}

/// The open definitions log.
#[derive(Debug)]
pub(crate) struct DefinitionsLog {
    file: File,
}

fn sync_dir(dir: &Path) {
    // Makes a rename durable; not every platform can open a directory, so best effort.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write the compacted topology to `tmp`, sync it, and rename it over `path`.
fn rewrite(tmp: &Path, path: &Path, topo: &Topology) -> io::Result<()> {
    let mut f = File::create(tmp)?;
    let mut buf = Vec::new();
    for d in topo.lines() {
        serde_json::to_writer(&mut buf, d).map_err(io::Error::other)?;
        buf.push(b'\n');
    }
    f.write_all(&buf)?;
    f.sync_all()?;
    fs::rename(tmp, path)
}

impl DefinitionsLog {
    /// Replay `dir/definitions.log`, rewrite it compactly when that drops anything, and
    /// open it for appending. Start-up needs no free space: nothing is rewritten when
    /// nothing would be dropped, and a rewrite that fails (a full disk) keeps the old log.
    pub(crate) fn open(dir: &Path) -> io::Result<(DefinitionsLog, Topology)> {
        let path = dir.join("definitions.log");
        let tmp: PathBuf = dir.join("definitions.log.tmp");
        // Left by a rewrite that did not finish: the log itself is intact.
        let _ = fs::remove_file(&tmp);
        let mut topo = Topology::default();
        let mut records = 0usize;
        let mut whole = true;
        match fs::read(&path) {
            Ok(data) => {
                whole = data.is_empty() || data.ends_with(b"\n");
                for (i, line) in data.split(|b| *b == b'\n').enumerate() {
                    if line.is_empty() {
                        continue;
                    }
                    records += 1;
                    match serde_json::from_slice::<Def>(line) {
                        Ok(d) => topo.apply(d),
                        Err(e) => {
                            topo.skipped
                                .push(format!("{}: line {}: {e}", path.display(), i + 1))
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
        // Every line live, none unreadable, the last one whole: nothing to rewrite.
        let already_compact = records == topo.lines().count() && topo.skipped.is_empty() && whole;
        let mut torn = !whole;
        if !already_compact {
            match rewrite(&tmp, &path, &topo) {
                Ok(()) => {
                    sync_dir(dir);
                    torn = false;
                }
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    tracing::error!(
                        "cannot compact {} ({e}); keeping it as it is",
                        path.display()
                    );
                }
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        if torn {
            // The rewrite failed over a torn last line: end it, or the next record would
            // be glued to it. Without space this fails too, and so will the next record.
            let _ = file.write_all(b"\n");
        }
        Ok((DefinitionsLog { file }, topo))
    }

    /// Append one change and make it durable before returning.
    pub(crate) fn record(&mut self, d: &Def) -> io::Result<()> {
        let mut line = serde_json::to_vec(d).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::AMQPValue;

    #[test]
    fn replay_compacts_and_keeps_arguments() {
        let dir = std::env::temp_dir().join(format!("rmq-defs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut args = FieldTable::default();
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(5));
        let q = |name: &str| Def::Queue {
            vhost: "/".into(),
            name: name.into(),
            id: 1,
            auto_delete: false,
            args: encode_args(&args),
        };
        {
            let (mut log, topo) = DefinitionsLog::open(&dir).unwrap();
            assert!(topo.queues.is_empty());
            log.record(&q("a")).unwrap();
            log.record(&q("b")).unwrap();
            log.record(&Def::DeleteQueue {
                vhost: "/".into(),
                name: "a".into(),
            })
            .unwrap();
        }
        // A torn last line is reported, not fatal.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("definitions.log"))
            .unwrap();
        f.write_all(b"{\"op\":\"queue\",\"vho").unwrap();
        let (_, topo) = DefinitionsLog::open(&dir).unwrap();
        assert_eq!(topo.queues, vec![q("b")]);
        assert_eq!(topo.skipped.len(), 1);
        if let Def::Queue { args: a, .. } = &topo.queues[0] {
            assert_eq!(decode_args(a), args);
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
