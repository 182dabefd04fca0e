//! `rmq serve --log-format json`: one JSON object per line, for log shippers.

use crate::serve_proc::Serve;
use crate::support::amqp::temp_dir;
use crate::support::{WAIT, eventually};

#[test]
fn log_format_json_writes_one_object_per_line() {
    let dir = temp_dir("log-json");
    let serve = Serve::start_with(&dir, &["--log-format", "json"]);
    eventually(WAIT, "the ready line in the log", || {
        serve.log().contains("broker ready")
    });
    let log = serve.log();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("timestamp").is_some() && v.get("level").is_some(),
            "{line}"
        );
    }
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}
