//! `rmq definitions export|import` between brokers: what RabbitMQ (or, without one, an
//! embedded broker) exports imports into a fresh `rmq serve`, and what that exports comes
//! back — vhosts, users (logins prove the password hashes), permissions, exchanges, queues
//! with arguments, bindings with keys and arguments — with nothing lost.

use crate::cli_admin::{Leftovers, as_user, in_vhost, with_api};
use crate::cli_support::{code, ok, run, stderr};
use crate::support::{Broker, unique};
use serde_json::Value;
use std::path::Path;

/// Everything the test created, as the listings show it.
fn snapshot(url: &str, api: &str, tag: &str, vhost: &str, user: &str) -> Vec<String> {
    let list = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-o", "tsv"]);
        ok(url, &with_api(&all, api), None)
    };
    let in_v = ["--vhost", vhost, "--name", tag];
    vec![
        list(&["list-vhosts", "--name", vhost]),
        list(&["list-users", "--name", user]),
        list(&["list-permissions", "--vhost", vhost, "--name", user]),
        list(
            &[
                &[
                    "list-exchanges",
                    "name",
                    "type",
                    "durable",
                    "auto_delete",
                    "internal",
                    "arguments",
                ][..],
                &in_v,
            ]
            .concat(),
        ),
        list(
            &[
                &["list-queues", "name", "durable", "auto_delete", "arguments"][..],
                &in_v,
            ]
            .concat(),
        ),
        list(&[&["list-bindings"][..], &in_v].concat()),
    ]
}

/// Keep only this test's objects of a definitions file: a shared RabbitMQ must not get
/// back what others deleted meanwhile.
fn only_ours(from: &Path, to: &Path, vhost: &str, user: &str) {
    let mut doc: Value = serde_json::from_slice(&std::fs::read(from).unwrap()).unwrap();
    let keep = |key: &str, field: &str, value: &str, doc: &mut Value| {
        let items = doc[key].as_array().cloned().unwrap_or_default();
        doc[key] = Value::Array(
            items
                .into_iter()
                .filter(|i| i[field].as_str() == Some(value))
                .collect(),
        );
    };
    keep("users", "name", user, &mut doc);
    keep("vhosts", "name", vhost, &mut doc);
    keep("permissions", "user", user, &mut doc);
    for key in ["exchanges", "queues", "bindings", "policies", "parameters"] {
        keep(key, "vhost", vhost, &mut doc);
    }
    for key in ["topic_permissions", "global_parameters"] {
        doc[key] = Value::Array(vec![]);
    }
    std::fs::write(to, serde_json::to_vec(&doc).unwrap()).unwrap();
}

#[test]
fn definitions_go_to_another_broker_and_back_with_nothing_lost() {
    let embedded = Broker::start();
    let (origin, origin_api) = match std::env::var("RMQ_TEST_RABBITMQ_URL") {
        Ok(url) if !url.is_empty() => (url, "http://127.0.0.1:15672".to_string()),
        _ => (embedded.url(), embedded.api_url()),
    };
    let copy = Broker::start();
    let (copy_url, copy_api) = (copy.url(), copy.api_url());
    let tag = unique("ops-def");
    let (vhost, user, password) = (format!("{tag}-v"), format!("{tag}-u"), unique("pw"));
    let (x, x2, q, q2) = (
        format!("{tag}-x"),
        format!("{tag}-x2"),
        format!("{tag}-q"),
        format!("{tag}-q2"),
    );
    let _left = Leftovers {
        url: origin.clone(),
        api: origin_api.clone(),
        users: vec![user.clone()],
        vhosts: vec![vhost.clone()],
    };

    let admin = |url: &str, api: &str, args: &[&str]| ok(url, &with_api(args, api), None);
    admin(&origin, &origin_api, &["add-vhost", &vhost]);
    admin(
        &origin,
        &origin_api,
        &["add-user", &user, &password, "--tags", "monitoring"],
    );
    let conf = format!("^{tag}-");
    admin(
        &origin,
        &origin_api,
        &[
            "set-permissions",
            &user,
            &conf,
            ".*",
            ".*",
            "--vhost",
            &vhost,
        ],
    );
    let vurl = in_vhost(&origin, &vhost);
    for args in [
        &["declare", "exchange", &x, "--type", "topic", "--durable"][..],
        &["declare", "exchange", &x2, "--type", "fanout", "--durable"],
        &[
            "declare",
            "queue",
            &q,
            "--durable",
            "--arguments",
            r#"{"x-max-length":7,"x-message-ttl":60000}"#,
        ],
        &["declare", "queue", &q2, "--durable"],
        &["bind", &x, &q, "-k", "a.#"],
        &["bind", &x, "--to-exchange", &x2, "-k", "b.*"],
        &["bind", &x2, &q2],
        &[
            "bind",
            &x,
            &q2,
            "-k",
            "c",
            "--arguments",
            r#"{"x-note":"kept"}"#,
        ],
    ] {
        ok(&vurl, args, None);
    }
    let before = snapshot(&origin, &origin_api, &tag, &vhost, &user);
    let rows: Vec<usize> = before.iter().map(|t| t.lines().count() - 1).collect();
    assert_eq!(rows, [1, 1, 1, 2, 2, 4], "what was created: {before:#?}");

    // Out of the origin, into a fresh broker.
    let dir = std::env::temp_dir().join(unique("ops-definitions"));
    std::fs::create_dir_all(&dir).unwrap();
    let (first, second, ours) = (dir.join("1.json"), dir.join("2.json"), dir.join("3.json"));
    let first_s = first.to_str().unwrap();
    admin(&origin, &origin_api, &["definitions", "export", first_s]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&first).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "password hashes: owner only ({mode:o})");
    admin(&copy_url, &copy_api, &["definitions", "import", first_s]);
    assert_eq!(
        snapshot(&copy_url, &copy_api, &tag, &vhost, &user),
        before,
        "imported from {origin}"
    );
    // The password hash came along: the user logs in to the copy, and its permissions hold.
    let on_copy = as_user(&in_vhost(&copy_url, &vhost), &user, &password);
    ok(&on_copy, &["send", &q, "--passive", "on the copy"], None);

    // And back: the origin loses everything, then gets what the copy exported.
    admin(
        &copy_url,
        &copy_api,
        &["definitions", "export", second.to_str().unwrap()],
    );
    admin(&origin, &origin_api, &["delete-vhost", &vhost]);
    admin(&origin, &origin_api, &["delete-user", &user]);
    for (what, args) in [
        ("vhost", ["list-vhosts", "--name", &vhost]),
        ("user", ["list-users", "--name", &user]),
    ] {
        let left = admin(&origin, &origin_api, &[&args[..], &["-o", "tsv"]].concat());
        assert_eq!(left.lines().count(), 1, "the {what} is deleted: {left}");
    }
    only_ours(&second, &ours, &vhost, &user);
    admin(
        &origin,
        &origin_api,
        &["definitions", "import", ours.to_str().unwrap()],
    );
    assert_eq!(snapshot(&origin, &origin_api, &tag, &vhost, &user), before);
    let on_origin = as_user(&vurl, &user, &password);
    ok(&on_origin, &["send", &q, "--passive", "back home"], None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn definitions_export_to_stdout_and_import_refusals() {
    let broker = Broker::start();
    let (url, api) = (broker.url(), broker.api_url());
    let text = ok(&url, &with_api(&["definitions", "export"], &api), None);
    let doc: Value = serde_json::from_str(&text).expect("JSON on stdout");
    assert!(
        doc["queues"].is_array() && doc["users"].is_array(),
        "{text}"
    );

    // Checked before the broker is asked: not JSON, or not an object, or no file (65).
    let dir = std::env::temp_dir().join(unique("ops-bad-definitions"));
    std::fs::create_dir_all(&dir).unwrap();
    let (cut, list) = (dir.join("cut.json"), dir.join("list.json"));
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    std::fs::write(&list, "[]").unwrap();
    for file in [&cut, &list, &dir.join("missing.json")] {
        let out = run(
            &url,
            &with_api(&["definitions", "import", file.to_str().unwrap()], &api),
            None,
        );
        assert_eq!(code(&out), 65, "{}: {}", file.display(), stderr(&out));
    }
    // A document the broker refuses: its reason, exit 1. Stdin works as a file.
    let refused = br#"{"queues":[{"vhost":"no-such-vhost","name":"q","durable":true,"auto_delete":false,"arguments":{}}]}"#;
    let out = run(
        &url,
        &with_api(&["definitions", "import", "-"], &api),
        Some(refused),
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the broker refused it"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
