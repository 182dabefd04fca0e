//! The broker's log, through `tracing`: one line per event on stderr, with an RFC 3339
//! UTC timestamp, the level and the module it came from, so a log read after the fact
//! says when and where. `RUST_LOG` filters like everywhere else in Rust
//! (`RUST_LOG=rmq::broker::amqp=debug`); without it the verbosity flags decide. The
//! text format is for people; `json` writes one object per line for log shippers.
//!
//! Levels as `rmq serve` uses them: error (shown even with `--quiet`), info (connections
//! and the broker's lifecycle, the default), debug (`-v`: channel errors, protocol
//! decisions), trace (`-vv`).

use std::sync::atomic::{AtomicU8, Ordering};
use tracing_subscriber::EnvFilter;

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-02T03:04:05.123456Z  INFO rmq::broker::amqp::connection: text`
    Text,
    /// `{"timestamp":..,"level":"INFO","target":..,"message":..}`
    Json,
}

impl LogFormat {
    /// `text` or `json` (for `--log-format` and `RMQ_LOG_FORMAT`).
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// 0: text, 1: json; read when the subscriber is installed.
static FORMAT: AtomicU8 = AtomicU8::new(0);

/// Choose the format; call before `set_level`. Without a call, `RMQ_LOG_FORMAT`
/// (`text` or `json`) decides, else text.
pub fn set_format(format: LogFormat) {
    FORMAT.store(format as u8 + 1, Ordering::Relaxed);
}

fn format() -> LogFormat {
    match FORMAT.load(Ordering::Relaxed) {
        1 => LogFormat::Text,
        2 => LogFormat::Json,
        _ => std::env::var("RMQ_LOG_FORMAT")
            .ok()
            .and_then(|s| LogFormat::parse(&s))
            .unwrap_or(LogFormat::Text),
    }
}

/// The filter for a verbosity (0 `--quiet`, 1 default, 2 `-v`, 3+ `-vv`): rmq's own
/// events at that level, other crates' warnings and errors. `RUST_LOG` wins when set.
fn filter(level: u8) -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_default_env() {
        return f;
    }
    let own = match level {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let others = if level == 0 { "error" } else { "warn" };
    EnvFilter::new(format!("{others},rmq={own}"))
}

/// Install the process's log subscriber for a verbosity (see `filter`). Only the first
/// call installs; the broker inside tests, which never calls it, logs nothing.
pub fn set_level(level: u8) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter(level));
    let _ = match format() {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// An error that an operator should see even with `--quiet`.
pub fn error(args: std::fmt::Arguments<'_>) {
    tracing::error!("{args}");
}

/// Connection open/close and broker lifecycle.
pub fn info(args: std::fmt::Arguments<'_>) {
    tracing::info!("{args}");
}

/// Detail for `-v`: channel errors, protocol decisions.
pub fn debug(args: std::fmt::Arguments<'_>) {
    tracing::debug!("{args}");
}

/// The text a panic was raised with (for the one line that reports a caught panic).
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse("yaml"), None);
    }
}
