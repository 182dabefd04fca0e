//! Broker logging: one line per event on stderr, filtered by a process-wide level.
//!
//! Levels: 0 errors only (`--quiet`), 1 connections and errors (default), 2+ more detail (`-v`).

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(1);

/// Set the verbosity for the whole process.
pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

fn enabled(level: u8) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level
}

/// An error that an operator should see even with `--quiet`.
pub fn error(args: std::fmt::Arguments<'_>) {
    eprintln!("rmq serve: error: {args}");
}

/// Connection open/close and broker lifecycle.
pub fn info(args: std::fmt::Arguments<'_>) {
    if enabled(1) {
        eprintln!("rmq serve: {args}");
    }
}

/// Detail for `-v`: channel errors, protocol decisions.
pub fn debug(args: std::fmt::Arguments<'_>) {
    if enabled(2) {
        eprintln!("rmq serve: {args}");
    }
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
