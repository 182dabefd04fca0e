//! The broker's folders depend on each other one way (src/broker/mod.rs): a `use` that
//! points up a layer fails here, before it becomes a cycle someone has to untangle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Which folder may name which: mgmt and amqp above model, model above store; wire and
/// ops below what writes to sockets and what counts; access beside model.
const ALLOWED: &[(&str, &[&str])] = &[
    ("mgmt", &["access", "amqp", "model", "ops", "store", "wire"]),
    ("amqp", &["access", "model", "ops", "store", "wire"]),
    ("access", &["model"]),
    ("model", &["ops", "store", "wire"]),
    ("wire", &["ops"]),
    ("ops", &["store"]),
    ("store", &[]),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn broker_folders_depend_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/broker");
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(k, v)| (*k, v.iter().copied().collect()))
        .collect();
    let mut wrong = Vec::new();
    for (folder, _) in ALLOWED {
        let mut files = Vec::new();
        rust_files(&root.join(folder), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, _) in text.match_indices("crate::broker::") {
                let rest = &text[i + "crate::broker::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if allowed.contains_key(name.as_str())
                    && name != *folder
                    && !allowed[folder].contains(name.as_str())
                {
                    wrong.push(format!("{} names {name}", f.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layering: {wrong:#?}"
    );
}

/// One topology path: queues are created only by the vhost's topology service (and its
/// start-up door), and the management API reaches AMQP only for the connection registry
/// it lists — never a method handler.
#[test]
fn queues_are_created_only_by_the_topology_service() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut wrong = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let creator = ["broker/model/vhost.rs", "broker/model/restore.rs"].contains(&rel.as_str());
        if text.contains("Queue::create(") && !creator {
            wrong.push(format!("{rel} creates a queue"));
        }
        if rel.starts_with("broker/mgmt/") {
            for (i, _) in text.match_indices("broker::amqp::") {
                let rest = &text[i + "broker::amqp::".len()..];
                if !rest.starts_with("registry") {
                    wrong.push(format!("{rel} names amqp::{}", &rest[..rest.len().min(20)]));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "outside the topology service: {wrong:#?}");
}
