//! Everything that prints: results on stdout (table | json | jsonl | tsv | raw), notes
//! and the ready line on stderr, colour and progress bars only on a terminal.
//!
//! - `table`     rows of values in every format
//! - `progress`  indicatif bars, hidden off a terminal or with `--quiet`

mod progress;
mod table;

pub use progress::Progress;

use crate::client::Message;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFormat {
    /// The body followed by a newline.
    Raw,
    /// The lossless JSON-lines form that `send --input jsonl` reads back.
    Jsonl,
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
    /// Buffered: a receive of 100k messages must not make 100k write calls. Behind a
    /// mutex because a worker's concurrent tasks print too.
    out: Mutex<BufWriter<Stdout>>,
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
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, std::io::stdout())),
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

    /// The format for message streams; tables make no sense for them.
    pub fn message_format(&self) -> Result<MessageFormat, String> {
        match self.format {
            None | Some(Format::Raw) => Ok(MessageFormat::Raw),
            Some(Format::Jsonl) | Some(Format::Json) => Ok(MessageFormat::Jsonl),
            Some(other) => Err(format!(
                "--output {} does not apply to messages (use raw or jsonl)",
                format!("{other:?}").to_lowercase()
            )),
        }
    }

    fn with_out<T>(
        &self,
        f: impl FnOnce(&mut BufWriter<Stdout>) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        // A panic while printing poisons the lock; the buffer is still usable.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut out)
    }

    /// Print a message (buffered; call [`Output::flush`] before acknowledging it).
    pub fn message(&self, msg: &Message, format: MessageFormat) -> std::io::Result<()> {
        self.with_out(|out| match format {
            MessageFormat::Raw => {
                out.write_all(&msg.body)?;
                out.write_all(b"\n")
            }
            MessageFormat::Jsonl => {
                out.write_all(msg.to_jsonl().as_bytes())?;
                out.write_all(b"\n")
            }
        })
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
            eprintln!("{text}");
        }
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
        Progress::new(visible, total, what)
    }
}
