//! What a terminal sees, and what a pipe must never see: colour only on a terminal and
//! never with NO_COLOR, progress bars only on a terminal and never with --quiet. The
//! terminal is a real pseudo-terminal from util-linux `script`.

use crate::cli_support::{code, stderr};
use crate::support::{Broker, WAIT, rmq, run_bounded, unique};
use std::process::{Command, Output};

/// Enough messages that a send or receive outlives the progress bar's one-second delay.
const LONG: usize = 120_000;

/// `sh -c CMD` inside a pseudo-terminal; `None` (test skipped) without `script`.
fn in_pty(cmd: &str, no_color: bool) -> Option<Output> {
    if Command::new("script").arg("--version").output().is_err() {
        // CI installs util-linux: there a missing `script` is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "util-linux `script` is needed for the terminal tests"
        );
        eprintln!("skipped: util-linux `script` is not installed");
        return None;
    }
    let mut c = Command::new("script");
    c.args(["-qec", cmd, "/dev/null"])
        .env_remove("RMQ_URL")
        .env_remove("RMQ_CONFIG")
        .env_remove("RMQ_PROFILE")
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("rmq-tests-no-config"),
        );
    if no_color {
        c.env("NO_COLOR", "1");
    } else {
        c.env_remove("NO_COLOR");
    }
    let out = run_bounded(c, None, WAIT * 3);
    assert_eq!(
        code(&out),
        0,
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Some(out)
}

/// 120000 → "120,000", as the progress bar prints counts.
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn has_colour(bytes: &[u8]) -> bool {
    // An SGR sequence: ESC [ digits/semicolons m.
    bytes.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b["
            && bytes[i + 2..]
                .iter()
                .find(|b| !(b.is_ascii_digit() || **b == b';'))
                .is_some_and(|b| *b == b'm')
    })
}

#[test]
fn a_terminal_gets_colour_and_progress_unless_no_color_or_quiet() {
    let broker = Broker::start();
    let rmq_bin = env!("CARGO_BIN_EXE_rmq");
    let url = broker.url();
    let q = unique("tty");
    let declare = format!("'{rmq_bin}' --url '{url}' declare queue {q}");
    let Some(coloured) = in_pty(&declare, false) else {
        return;
    };
    assert!(
        has_colour(&coloured.stdout),
        "a terminal should get a bold table header: {:?}",
        String::from_utf8_lossy(&coloured.stdout)
    );
    let plain = in_pty(&declare, true).unwrap();
    assert!(
        !plain.stdout.contains(&0x1b),
        "NO_COLOR: {:?}",
        String::from_utf8_lossy(&plain.stdout)
    );
    assert!(String::from_utf8_lossy(&plain.stdout).contains(&q));

    let send = format!("seq {LONG} | '{rmq_bin}' --url '{url}' send {q} --lines");
    let shown = in_pty(&send, true).unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("sending") && text.contains("msg/s"),
        "no progress bar: {text:?}"
    );
    assert!(!has_colour(&shown.stdout), "NO_COLOR, yet colour: {text:?}");
    // The bar is cleared before the closing note: nothing of it follows the note.
    let tail = &text[text.rfind("\x1b[2K").expect("the bar clears its line")..];
    assert!(tail.contains(&format!("Sent {LONG} messages")), "{tail:?}");

    // A long receive shows its bar too (stdout to a file: the bar is on the terminal).
    let receive = format!("'{rmq_bin}' --url '{url}' receive {q} --count {LONG} > /dev/null");
    let shown = in_pty(&receive, true).unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("receiving") && text.contains(&format!("/{}", group(LONG))),
        "no receive progress bar: {text:?}"
    );
    assert!(
        text.ends_with("\x1b[2K") || text.trim_end().ends_with("\x1b[2K"),
        "the bar is cleared at the end: {:?}",
        &text[text.len().saturating_sub(200)..]
    );

    let quiet = format!("seq {LONG} | '{rmq_bin}' --url '{url}' send {q} --lines --quiet");
    let hidden = in_pty(&quiet, false).unwrap();
    assert!(
        hidden.stdout.is_empty(),
        "--quiet on a terminal: {:?}",
        String::from_utf8_lossy(&hidden.stdout)
    );
}

#[test]
fn pipes_get_no_escape_codes_or_progress_even_without_no_color() {
    let broker = Broker::start();
    let url = broker.url();
    let q = unique("pipe-plain");
    let input: String = (0..LONG).map(|i| format!("{i}\n")).collect();
    for args in [
        vec!["send", q.as_str(), "--lines"],
        vec!["receive", q.as_str(), "--count", "60000"],
        vec!["worker", q.as_str(), "--exec", "true", "--count", "200"],
        vec!["declare", "queue", q.as_str(), "--output", "table"],
        vec!["delete", "queue", "no-such-queue-here"],
    ] {
        let mut c = rmq();
        c.env_remove("NO_COLOR").arg("--url").arg(&url).args(&args);
        let stdin = (args[0] == "send").then_some(input.as_bytes());
        let out = run_bounded(c, stdin, WAIT * 2);
        assert!(
            !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
            "rmq {args:?} printed escape codes off a terminal: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("msg/s"),
            "progress off a terminal: {}",
            stderr(&out)
        );
    }
}
