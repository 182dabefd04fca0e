//! The saved-message directory of `receive --save-dir` and `send --replay-dir`: per
//! message, `NNNNNN.body` (the exact bytes) and `NNNNNN.json` (the lossless JSON-lines
//! object, body included). Numbers continue after the highest one already there, so
//! several receives into one directory replay in the order they were received.
//!
//! The `.json` is written last, through a rename, so its presence means the message is
//! complete. On replay the `.body` file wins over the JSON's body: edit it with any tool
//! to change what is sent.

use crate::client::Message;
use crate::exit::{self, coded};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A directory being filled by `receive --save-dir`.
pub struct SaveDir {
    /// Where the files go.
    dir: PathBuf,
    /// The number of the next message.
    next: u64,
}

impl SaveDir {
    /// Create the directory if needed and find the next free number.
    pub fn open(dir: &Path) -> anyhow::Result<SaveDir> {
        std::fs::create_dir_all(dir).map_err(|e| {
            coded(
                exit::DATA_ERR,
                format!("cannot create --save-dir '{}': {e}", dir.display()),
            )
        })?;
        let last = saved_files(dir)?
            .iter()
            .filter_map(|(n, _)| *n)
            .max()
            .unwrap_or(0);
        Ok(SaveDir {
            dir: dir.to_path_buf(),
            next: last + 1,
        })
    }

    /// Write one message's two files.
    pub fn save(&mut self, msg: &Message) -> std::io::Result<()> {
        let stem = format!("{:06}", self.next);
        std::fs::write(self.dir.join(format!("{stem}.body")), &msg.body)?;
        let tmp = self.dir.join(format!(".{stem}.json.tmp"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        msg.write_jsonl(&mut file)?;
        file.write_all(b"\n")?;
        file.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, self.dir.join(format!("{stem}.json")))?;
        self.next += 1;
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The `.json` files of a directory with their numbers, in replay order (numbered ones
/// by number, then any others by name).
fn saved_files(dir: &Path) -> anyhow::Result<Vec<(Option<u64>, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        coded(
            exit::DATA_ERR,
            format!("cannot read the directory '{}': {e}", dir.display()),
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| {
                coded(
                    exit::DATA_ERR,
                    format!("cannot list '{}': {e}", dir.display()),
                )
            })?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if let Some(stem) = name.strip_suffix(".json") {
            files.push((stem.parse::<u64>().ok(), path));
        }
    }
    files.sort_by(|(na, pa), (nb, pb)| match (na, nb) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => pa.cmp(pb),
    });
    Ok(files)
}

/// Read every saved message of `dir`, in order, checking all of them before returning
/// (a bad file must not leave half of the directory sent).
pub fn read_saved(dir: &Path) -> anyhow::Result<Vec<Message>> {
    let files = saved_files(dir)?;
    if files.is_empty() {
        return Err(coded(
            exit::DATA_ERR,
            format!(
                "no saved messages (NNNNNN.json files) in '{}'",
                dir.display()
            ),
        ));
    }
    let mut out = Vec::with_capacity(files.len());
    for (_, json) in files {
        let bad = |why: String| {
            coded(
                exit::DATA_ERR,
                format!("{}: {why} (nothing was sent)", json.display()),
            )
        };
        let text = std::fs::read_to_string(&json).map_err(|e| bad(e.to_string()))?;
        let mut msg = Message::from_jsonl(text.trim_end()).map_err(|e| bad(format!("{e:#}")))?;
        let body = json.with_extension("body");
        match std::fs::read(&body) {
            Ok(bytes) => msg.body = bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bad(format!("cannot read {}: {e}", body.display()))),
        }
        out.push(msg);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_read_in_order_with_edited_body() {
        let dir = std::env::temp_dir().join(format!("rmq-saved-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = SaveDir::open(&dir).unwrap();
        for i in 0..12u8 {
            s.save(&Message {
                routing_key: format!("k{i}"),
                body: vec![i, 0xff],
                ..Message::default()
            })
            .unwrap();
        }
        // A second receive into the same directory continues the numbering.
        let mut s = SaveDir::open(&dir).unwrap();
        s.save(&Message {
            body: b"last".to_vec(),
            ..Message::default()
        })
        .unwrap();
        std::fs::write(dir.join("000002.body"), b"edited").unwrap();
        let all = read_saved(&dir).unwrap();
        assert_eq!(all.len(), 13);
        assert_eq!(all[0].body, vec![0, 0xff]);
        assert_eq!(all[1].body, b"edited");
        assert_eq!(all[11].routing_key, "k11");
        assert_eq!(all[12].body, b"last");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(read_saved(&dir).is_err());
    }
}
