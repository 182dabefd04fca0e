//! Exit codes, in one place (sysexits where they fit). The README documents this table.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success |
//! | 1    | failure (the broker refused an operation, an unexpected error) |
//! | 2    | usage error (bad flags or arguments) |
//! | 3    | `--count`/`--timeout` ended with fewer messages than asked |
//! | 65   | bad input data (malformed header, JSON line, URL) |
//! | 69   | broker or management API unreachable (`await-startup`: not up in time) |
//! | 77   | login refused, vhost not allowed |
//! | 78   | configuration error: the derived management API serves another broker |
//! | 130  | interrupted (Ctrl-C) |

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// Generic failure.
pub const FAILURE: u8 = 1;
/// Usage error (clap's own code).
pub const USAGE: u8 = 2;
/// Fewer messages than asked before the count/timeout ended.
pub const INCOMPLETE: u8 = 3;
/// Input data was malformed (sysexits EX_DATAERR).
pub const DATA_ERR: u8 = 65;
/// Service unavailable (sysexits EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// Login refused or vhost not allowed (sysexits EX_NOPERM).
pub const NOPERM: u8 = 77;
/// Configuration error (sysexits EX_CONFIG): settings that point at the wrong thing.
pub const CONFIG: u8 = 78;
/// Interrupted by SIGINT (128 + 2).
pub const INTERRUPTED: u8 = 130;

/// An error that knows its exit code; anything else maps to `FAILURE`.
#[derive(Debug)]
pub struct CodedError {
    /// The exit code to leave with.
    pub code: u8,
    /// The one-line message (what, why, what to do).
    pub message: String,
}

impl std::fmt::Display for CodedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodedError {}

/// Build an `anyhow::Error` carrying an exit code.
pub fn coded(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CodedError {
        code,
        message: message.into(),
    })
}

/// The exit code for an error: the first `CodedError` in its chain, else `FAILURE`.
pub fn code_of(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(code(err))
}

/// The same as a number, for commands that decide by it (retry what is unavailable).
pub fn code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<CodedError>().map(|c| c.code))
        .unwrap_or(FAILURE)
}
