//! Everything that prints: results on stdout (table | json | jsonl | tsv | raw), notes
//! and the ready line on stderr, colour and progress bars only on a terminal.
//!
//! - `table`     rows of values in every format
//! - `template`  `--format` templates for messages
//! - `saved`     the `--save-dir` / `--replay-dir` directory of messages
//! - `progress`  indicatif bars, hidden off a terminal or with `--quiet`
//! - `graph`     a vhost's topology as a tree, Graphviz DOT or a Mermaid flowchart

pub mod graph;
mod progress;
mod saved;
mod table;
mod template;

pub use progress::Progress;
pub use saved::{SaveDir, read_saved};
pub use template::{PLACEHOLDERS, Template};

use crate::client::Message;
use crate::exit::{self, coded};
use std::io::{BufWriter, IsTerminal, Stdout, Write};
use std::sync::Mutex;

/// The output formats of `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned table for people (the default on a terminal).
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Tab-separated with a header line (the default off a terminal).
    Tsv,
    /// Bare values: message bodies, or tab-separated values without a header.
    Raw,
}

/// How a stream of messages is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFormat {
    /// The body followed by a newline.
    Raw,
    /// The lossless JSON-lines form that `send --input jsonl` reads back.
    Jsonl,
    /// The same objects as one JSON array (closed when the command ends).
    Json,
    /// Tab-separated `exchange routing_key redelivered delivery_tag body` under a header
    /// line (body as UTF-8, lossy; tabs and newlines escaped).
    Tsv,
    /// A `--format` template, followed by a newline.
    Template(Template),
}

/// The TSV columns of a message stream.
const MESSAGE_COLUMNS: &str = "exchange\trouting_key\tredelivered\tdelivery_tag\tbody";

/// Stdout and what a message stream still owes it.
struct Sink {
    /// Buffered: a receive of 100k messages must not make 100k write calls.
    w: BufWriter<Stdout>,
    /// `Some(n)` once a JSON array of messages is open, with `n` items so far.
    array: Option<u64>,
    /// A TSV message stream whose header line is still to be printed.
    tsv_header_due: bool,
}

/// The process's one printer.
pub struct Output {
    /// `--output`; `None` picks by whether stdout is a terminal.
    format: Option<Format>,
    /// `--quiet`: no notes, no progress (results and errors still print).
    quiet: bool,
    /// Tables, not TSV, by default.
    stdout_tty: bool,
    /// Progress bars and colour on stderr only here.
    stderr_tty: bool,
    /// Stdout, behind a mutex because a worker's concurrent tasks print too.
    out: Mutex<Sink>,
    /// The progress bar being shown, so notes print above it instead of through it.
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Output {
    /// Set up for this process; colour is decided here once (terminal, and no `NO_COLOR`).
    pub fn new(format: Option<Format>, quiet: bool) -> Output {
        let stdout_tty = std::io::stdout().is_terminal();
        let stderr_tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        colored::control::set_override(stderr_tty && stdout_tty && !no_color);
        Output {
            format,
            quiet,
            stdout_tty,
            stderr_tty,
            out: Mutex::new(Sink {
                w: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
                array: None,
                tsv_header_due: false,
            }),
            bar: Mutex::new(None),
        }
    }

    /// `--quiet` was given.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// `--output json` was asked for (one JSON document on stdout).
    pub fn is_json(&self) -> bool {
        self.format == Some(Format::Json)
    }

    /// The format for rows of results.
    pub fn table_format(&self) -> Format {
        self.format.unwrap_or(if self.stdout_tty {
            Format::Table
        } else {
            Format::Tsv
        })
    }

    /// The format for message streams, from `--output` and `--format TEMPLATE`; a bad
    /// template, or a table (which needs every row before printing), is a usage error.
    pub fn message_format(&self, template: Option<&str>) -> anyhow::Result<MessageFormat> {
        if let Some(t) = template {
            if !matches!(self.format, None | Some(Format::Raw)) {
                return Err(coded(
                    exit::USAGE,
                    "--format TEMPLATE replaces --output: give one of them",
                ));
            }
            return Template::parse(t)
                .map(MessageFormat::Template)
                .map_err(|e| coded(exit::USAGE, e));
        }
        let format = match self.format {
            None | Some(Format::Raw) => MessageFormat::Raw,
            Some(Format::Jsonl) => MessageFormat::Jsonl,
            Some(Format::Json) => MessageFormat::Json,
            Some(Format::Tsv) => MessageFormat::Tsv,
            Some(Format::Table) => {
                return Err(coded(
                    exit::USAGE,
                    "--output table does not apply to a stream of messages (a table needs every row before printing): use tsv, json, jsonl, raw or --format",
                ));
            }
        };
        let mut sink = self.sink();
        match format {
            MessageFormat::Json => sink.array = Some(0),
            MessageFormat::Tsv => sink.tsv_header_due = true,
            _ => {}
        }
        Ok(format)
    }

    fn sink(&self) -> std::sync::MutexGuard<'_, Sink> {
        // A panic while printing poisons the lock; the buffer is still usable.
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_out<T>(
        &self,
        f: impl FnOnce(&mut BufWriter<Stdout>) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        f(&mut self.sink().w)
    }

    /// Print a message (buffered; call [`Output::flush`] before acknowledging it).
    pub fn message(&self, msg: &Message, tag: u64, format: &MessageFormat) -> std::io::Result<()> {
        let mut sink = self.sink();
        let Sink {
            w,
            array,
            tsv_header_due,
        } = &mut *sink;
        match format {
            MessageFormat::Raw => {
                w.write_all(&msg.body)?;
                w.write_all(b"\n")
            }
            MessageFormat::Jsonl => {
                msg.write_jsonl(w)?;
                w.write_all(b"\n")
            }
            MessageFormat::Json => {
                let n = array.get_or_insert(0);
                w.write_all(if *n == 0 { b"[\n" } else { b",\n" })?;
                *n += 1;
                msg.write_jsonl(w)
            }
            MessageFormat::Tsv => {
                if std::mem::take(tsv_header_due) {
                    writeln!(w, "{MESSAGE_COLUMNS}")?;
                }
                let row = [
                    serde_json::Value::from(msg.exchange.as_str()),
                    serde_json::Value::from(msg.routing_key.as_str()),
                    serde_json::Value::from(msg.redelivered),
                    serde_json::Value::from(tag),
                    serde_json::Value::from(String::from_utf8_lossy(&msg.body).into_owned()),
                ];
                w.write_all(table::render(Format::Raw, &[], &[row.to_vec()]).as_bytes())
            }
            MessageFormat::Template(t) => {
                let mut buf = Vec::with_capacity(msg.body.len() + 64);
                t.render(msg, tag, &mut buf);
                buf.push(b'\n');
                w.write_all(&buf)
            }
        }
    }

    /// End a message stream: close a JSON array (`[]` when nothing came), print a TSV
    /// header that no message printed yet, and flush. Safe to call more than once.
    pub fn finish(&self) -> std::io::Result<()> {
        let mut sink = self.sink();
        if let Some(n) = sink.array.take() {
            sink.w.write_all(if n == 0 { b"[" } else { b"\n" })?;
            sink.w.write_all(b"]\n")?;
        }
        if std::mem::take(&mut sink.tsv_header_due) {
            writeln!(sink.w, "{MESSAGE_COLUMNS}")?;
        }
        sink.w.flush()
    }

    /// Print bytes as they are (generated files).
    pub fn bytes(&self, data: &[u8]) -> std::io::Result<()> {
        self.with_out(|out| out.write_all(data))
    }

    /// Print one line of result text.
    pub fn line(&self, text: &str) -> std::io::Result<()> {
        self.with_out(|out| writeln!(out, "{text}"))
    }

    /// Push buffered output to stdout.
    pub fn flush(&self) -> std::io::Result<()> {
        self.with_out(|out| out.flush())
    }

    /// A human note on stderr (`--quiet` hides it).
    pub fn note(&self, text: &str) {
        if !self.quiet {
            let _ = self.flush();
            let bar = self.bar.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match bar {
                Some(bar) => bar.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            }
        }
    }

    /// A warning on stderr that `--quiet` does not hide: it is about safety, not progress.
    pub fn warn(&self, text: &str) {
        let _ = self.flush();
        eprintln!("{} {text}", colored::Colorize::yellow("rmq: warning:"));
    }

    /// The line saying a consumer is attached; scripts and tests wait for it on stderr.
    /// `--quiet` hides it too: quiet means quiet.
    pub fn ready(&self, text: &str) {
        self.note(text);
    }

    /// Print rows under `columns` in the chosen format.
    pub fn rows(&self, columns: &[String], rows: &[Vec<serde_json::Value>]) -> std::io::Result<()> {
        let text = table::render(self.table_format(), columns, rows);
        self.with_out(|out| out.write_all(text.as_bytes()))?;
        self.flush()
    }

    /// A progress bar for a long send or receive (hidden off a terminal, with `--quiet`,
    /// and when stdout is the terminal too, since the bar would tear the output).
    pub fn progress(&self, total: Option<u64>, what: &str, stdout_used: bool) -> Progress {
        let visible = self.stderr_tty && !self.quiet && !(stdout_used && self.stdout_tty);
        let progress = Progress::new(visible, total, what);
        if visible {
            *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(progress.bar());
        }
        progress
    }
}
