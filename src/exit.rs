//! Exit codes, in one place (sysexits where they fit). [`TABLE`] is the documentation:
//! the README's table is checked equal to it by a test, and `rmq --help` prints its codes.

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
/// Blocked by the broker (`connection.blocked`) for longer than `--blocked-timeout`
/// (sysexits EX_TEMPFAIL: try again later).
pub const TEMPFAIL: u8 = 75;
/// Login refused or vhost not allowed (sysexits EX_NOPERM).
pub const NOPERM: u8 = 77;
/// Configuration error (sysexits EX_CONFIG): settings that point at the wrong thing.
pub const CONFIG: u8 = 78;
/// Interrupted by SIGINT (128 + 2).
pub const INTERRUPTED: u8 = 130;

/// Every exit code and what it means: the README's "Exit codes" table, word for word.
pub const TABLE: &[(u8, &str)] = &[
    (OK, "success"),
    (
        FAILURE,
        "failure: the broker refused an operation (missing queue with `--passive`, nack, channel error such as a message too large, unroutable with `--mandatory`, a management API refusal such as an existing user, a missing vhost or an invalid policy), an RPC server reported failure",
    ),
    (
        USAGE,
        "usage error (unknown flag, missing argument, a flag value clap rejects)",
    ),
    (
        INCOMPLETE,
        "incomplete: `--count`/`--timeout`/`--idle-timeout` ended with fewer messages than asked (or none at all with only a timeout); `rpc-call` got no reply in time",
    ),
    (
        DATA_ERR,
        "bad input data: malformed URL, header (`-H`), JSON (`--arguments`, `--input jsonl`, a policy DEFINITION, a definitions file), unreadable `--file`, definitions file or TLS certificate/key file, no password on stdin",
    ),
    (
        UNAVAILABLE,
        "broker or management API unreachable, or the connection was lost (and not regained within `--reconnect-timeout`, or `--no-reconnect`); `await-startup`: not up within `--timeout`",
    ),
    (
        TEMPFAIL,
        "the broker blocked the connection (`connection.blocked`: a memory or disk alarm) for longer than `--blocked-timeout`",
    ),
    (
        NOPERM,
        "login refused or vhost not allowed; TLS: the broker's certificate is not trusted, or the broker refused ours",
    ),
    (
        CONFIG,
        "configuration error: the management API derived from the broker URL serves another broker (pass `--api-url` or `?api_port=`)",
    ),
    (
        INTERRUPTED,
        "interrupted (Ctrl-C or SIGTERM): rmq stops cleanly within 2 s — what was printed is acked, the rest goes back to the queue; a second Ctrl-C exits at once",
    ),
];

/// The codes in one line, for `rmq --help`.
pub fn summary() -> String {
    let short = |code: u8| match code {
        OK => "ok",
        FAILURE => "failure",
        USAGE => "usage",
        INCOMPLETE => "fewer messages than asked / timeout",
        DATA_ERR => "bad input",
        UNAVAILABLE => "unreachable or connection lost",
        TEMPFAIL => "blocked too long",
        NOPERM => "login refused",
        CONFIG => "API of another broker",
        INTERRUPTED => "interrupted",
        _ => "?",
    };
    let parts: Vec<String> = TABLE
        .iter()
        .map(|(code, _)| format!("{code} {}", short(*code)))
        .collect();
    format!("Exit codes: {}.", parts.join(", "))
}

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

#[cfg(test)]
mod tests {
    use super::TABLE;

    /// The README's table is this one: a code added or reworded here shows up there.
    #[test]
    fn readme_table_matches() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let section = readme
            .split("## Exit codes")
            .nth(1)
            .expect("README has an Exit codes section");
        let rows: Vec<(u8, String)> = section
            .lines()
            .skip_while(|l| !l.starts_with("|------"))
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (
                    cells[1].parse().expect("a numeric code"),
                    cells[2].to_string(),
                )
            })
            .collect();
        let want: Vec<(u8, String)> = TABLE.iter().map(|(c, m)| (*c, m.to_string())).collect();
        assert_eq!(
            rows, want,
            "README's exit-code table differs from src/exit.rs TABLE"
        );
    }
}
