//! The committed shell completions (`completions/`) and man pages (`man/`) match what the
//! binary generates from its clap definition now: a changed flag without regenerated
//! files fails here.

use crate::support::{WAIT, rmq, run_bounded, unique};
use std::collections::BTreeMap;
use std::path::Path;

const REGENERATE: &str = "cargo run -q -- generate completions --dir completions && cargo run -q -- generate man --dir man";

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; regenerate with `{REGENERATE}`",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn assert_same(committed: &Path, fresh: &Path) {
    let (old, new) = (files(committed), files(fresh));
    let old_names: Vec<&String> = old.keys().collect();
    let new_names: Vec<&String> = new.keys().collect();
    assert_eq!(
        old_names,
        new_names,
        "{} does not hold the files the binary generates; regenerate with `{REGENERATE}`",
        committed.display()
    );
    for (name, bytes) in &new {
        assert!(
            old[name] == *bytes,
            "{}/{name} is stale (it differs from what the binary generates); regenerate with `{REGENERATE}`",
            committed.display()
        );
    }
}

#[test]
fn committed_completions_and_man_pages_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = std::env::temp_dir().join(unique("rmq-generated"));
    for (what, dir) in [("completions", "completions"), ("man", "man")] {
        let mut c = rmq();
        c.args(["generate", what, "--dir"]).arg(tmp.join(dir));
        let out = run_bounded(c, None, WAIT);
        assert!(
            out.status.success(),
            "rmq generate {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same(&root.join(dir), &tmp.join(dir));
    }
    // Every shell and every subcommand has its file.
    let completions = files(&tmp.join("completions"));
    for name in [
        "rmq.bash", "_rmq", "rmq.fish", "rmq.elv", "_rmq.ps1", "rmq.nu",
    ] {
        assert!(completions.contains_key(name), "no completions/{name}");
    }
    let man = files(&tmp.join("man"));
    for name in [
        "rmq.1",
        "rmq-send.1",
        "rmq-receive.1",
        "rmq-tail.1",
        "rmq-declare-queue.1",
    ] {
        assert!(man.contains_key(name), "no man/{name}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn one_shell_or_one_page_goes_to_stdout() {
    let mut c = rmq();
    c.args(["generate", "completions", "bash"]);
    let out = run_bounded(c, None, WAIT);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("_rmq()") && text.contains("--replay-dir"),
        "{text:.200}"
    );
    let mut c = rmq();
    c.args(["generate", "man"]);
    let out = run_bounded(c, None, WAIT);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(".ie \\n(.g"));
    let mut c = rmq();
    c.args(["generate", "completions"]);
    assert_eq!(
        run_bounded(c, None, WAIT).status.code(),
        Some(2),
        "a shell or --dir is required"
    );
}
