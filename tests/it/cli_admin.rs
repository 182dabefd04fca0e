//! The operator commands that change a broker through its management API, against every
//! target: users and permissions (a login proves each step), vhosts, policies (the broker
//! applies them).

use crate::cli_support::{cleanup, code, ok, run, stderr};
use crate::support::{Broker, WAIT, eventually, targets, unique};

/// The management API of a target: the embedded broker's, or RabbitMQ's on 15672.
pub(crate) fn api_url(broker: &Option<Broker>) -> String {
    match broker {
        Some(b) => b.api_url(),
        None => "http://127.0.0.1:15672".to_string(),
    }
}

/// `url` with other credentials.
pub(crate) fn as_user(url: &str, user: &str, password: &str) -> String {
    url.replacen("guest:guest@", &format!("{user}:{password}@"), 1)
}

/// `url` on another vhost (plain names only).
pub(crate) fn in_vhost(url: &str, vhost: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a URL with a vhost");
    format!("{base}/{vhost}")
}

/// `rmq ARGS... --api-url API`.
pub(crate) fn with_api<'a>(args: &[&'a str], api: &'a str) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--api-url", api]);
    all
}

/// Deletes test users and vhosts when dropped (even when the test fails), so runs against
/// a shared RabbitMQ leave nothing behind.
pub(crate) struct Leftovers {
    /// Broker URL (guest).
    pub(crate) url: String,
    /// Its management API.
    pub(crate) api: String,
    /// Users to delete.
    pub(crate) users: Vec<String>,
    /// Vhosts to delete.
    pub(crate) vhosts: Vec<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = run(&self.url, &with_api(&["delete-user", u], &self.api), None);
        }
        for v in &self.vhosts {
            let _ = run(&self.url, &with_api(&["delete-vhost", v], &self.api), None);
        }
    }
}

#[test]
fn users_and_permissions_round_trip() {
    for (url, broker) in targets() {
        let api = api_url(&broker);
        let (user, password, q) = (unique("ops-user"), unique("pw"), unique("ops-uq"));
        let _left = Leftovers {
            url: url.clone(),
            api: api.clone(),
            users: vec![user.clone()],
            vhosts: vec![],
        };
        let _q = cleanup(&url, &[&q]);
        let stdin = format!("{password}\n");
        ok(
            &url,
            &with_api(
                &[
                    "add-user",
                    &user,
                    "--password-stdin",
                    "--tags",
                    "management,monitoring",
                ],
                &api,
            ),
            Some(stdin.as_bytes()),
        );
        let listed = ok(
            &url,
            &with_api(&["list-users", "--name", &user, "-o", "jsonl"], &api),
            None,
        );
        assert_eq!(
            listed.trim(),
            format!(r#"{{"tags":["management","monitoring"],"user":"{user}"}}"#),
            "{url}"
        );
        // add-user does not replace an existing user (as rabbitmqctl add_user).
        let again = run(&url, &with_api(&["add-user", &user, "other"], &api), None);
        assert_eq!(code(&again), 1, "{url}: {}", stderr(&again));
        assert!(
            stderr(&again).contains("exists already"),
            "{}",
            stderr(&again)
        );

        // Without permissions the new user cannot open the vhost.
        let user_url = as_user(&url, &user, &password);
        let refused = run(&user_url, &["declare", "queue", &q], None);
        assert_eq!(code(&refused), 77, "{url}: {}", stderr(&refused));

        // Configure only the queue's own name; write and read everything.
        let only_q = format!("^{q}$");
        ok(
            &url,
            &with_api(&["set-permissions", &user, &only_q, ".*", ".*"], &api),
            None,
        );
        ok(&user_url, &["declare", "queue", &q], None);
        let other = unique("ops-other");
        let denied = run(&user_url, &["declare", "queue", &other], None);
        assert_eq!(code(&denied), 1, "{url}: {}", stderr(&denied));
        assert!(
            stderr(&denied).contains("ACCESS_REFUSED"),
            "{}",
            stderr(&denied)
        );
        ok(
            &user_url,
            &["send", &q, "--passive", "as the new user"],
            None,
        );
        let listed = ok(
            &url,
            &with_api(&["list-permissions", "--name", &user, "-o", "tsv"], &api),
            None,
        );
        assert_eq!(
            listed,
            format!("user\tconfigure\twrite\tread\n{user}\t{only_q}\t.*\t.*\n"),
            "{url}"
        );
        // A bad regular expression and an unknown user are the broker's refusals (exit 1).
        let bad = run(
            &url,
            &with_api(&["set-permissions", &user, "(", ".*", ".*"], &api),
            None,
        );
        assert_eq!(code(&bad), 1, "{url}: {}", stderr(&bad));
        let nobody = unique("ops-nobody");
        let bad = run(
            &url,
            &with_api(&["set-permissions", &nobody, ".*", ".*", ".*"], &api),
            None,
        );
        assert_eq!(code(&bad), 1, "{url}: {}", stderr(&bad));
        assert!(
            stderr(&bad).contains("vhost_or_user_not_found"),
            "{}",
            stderr(&bad)
        );

        // Deleted: gone from the list, its login refused, a second delete an error.
        ok(&url, &with_api(&["delete-user", &user], &api), None);
        let listed = ok(
            &url,
            &with_api(&["list-users", "--name", &user, "-o", "tsv"], &api),
            None,
        );
        assert_eq!(listed, "user\ttags\n", "{url}");
        let gone = run(&user_url, &["declare", "queue", &q, "--passive"], None);
        assert_eq!(code(&gone), 77, "{url}: {}", stderr(&gone));
        let again = run(&url, &with_api(&["delete-user", &user], &api), None);
        assert_eq!(code(&again), 1, "{url}: {}", stderr(&again));
        assert!(
            stderr(&again).contains("no such user"),
            "{}",
            stderr(&again)
        );
    }
}

#[test]
fn add_user_needs_a_password() {
    let out = run(
        "amqp://guest:guest@127.0.0.1:1/%2F",
        &["add-user", "someone"],
        None,
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = run(
        "amqp://guest:guest@127.0.0.1:1/%2F",
        &["add-user", "someone", "--password-stdin"],
        Some(b""),
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    assert!(stderr(&out).contains("no password"), "{}", stderr(&out));
}

#[test]
fn vhosts_add_and_delete() {
    for (url, broker) in targets() {
        let api = api_url(&broker);
        let (vhost, q) = (unique("ops-vhost"), unique("ops-vq"));
        let _left = Leftovers {
            url: url.clone(),
            api: api.clone(),
            users: vec![],
            vhosts: vec![vhost.clone()],
        };
        let added = run(&url, &with_api(&["add-vhost", &vhost], &api), None);
        assert_eq!(code(&added), 0, "{url}: {}", stderr(&added));
        assert!(stderr(&added).contains("added"), "{}", stderr(&added));
        // Adding it again is fine (as rabbitmqctl add_vhost), and says so.
        let again = run(&url, &with_api(&["add-vhost", &vhost], &api), None);
        assert_eq!(code(&again), 0, "{url}: {}", stderr(&again));
        assert!(
            stderr(&again).contains("exists already"),
            "{}",
            stderr(&again)
        );
        let listed = ok(
            &url,
            &with_api(&["list-vhosts", "--name", &vhost, "-o", "tsv"], &api),
            None,
        );
        assert_eq!(listed, format!("name\n{vhost}\n"), "{url}");
        // Its creator may use it at once.
        let vurl = in_vhost(&url, &vhost);
        ok(&vurl, &["send", &q, "in the new vhost"], None);
        assert_eq!(
            ok(
                &vurl,
                &["receive", &q, "--count", "1", "--timeout", "10"],
                None
            ),
            "in the new vhost\n"
        );
        let perms = ok(
            &url,
            &with_api(&["list-permissions", "--vhost", &vhost, "-o", "tsv"], &api),
            None,
        );
        assert!(perms.contains("guest\t.*\t.*\t.*"), "{url}: {perms}");

        ok(&url, &with_api(&["delete-vhost", &vhost], &api), None);
        let listed = ok(
            &url,
            &with_api(&["list-vhosts", "--name", &vhost, "-o", "tsv"], &api),
            None,
        );
        assert_eq!(listed, "name\n", "{url}");
        let gone = run(&vurl, &["send", &q, "x"], None);
        assert_eq!(code(&gone), 77, "{url}: {}", stderr(&gone));
        let again = run(&url, &with_api(&["delete-vhost", &vhost], &api), None);
        assert_eq!(code(&again), 1, "{url}: {}", stderr(&again));
        assert!(
            stderr(&again).contains("no such vhost"),
            "{}",
            stderr(&again)
        );
    }
}

/// The messages `q` holds, by a passive declare.
fn depth(url: &str, q: &str) -> Option<u64> {
    let out = run(
        url,
        &["declare", "queue", q, "--passive", "-o", "tsv"],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1)?.split('\t').nth(1)?.parse().ok()
}

#[test]
fn policies_are_set_applied_listed_and_cleared() {
    for (url, broker) in targets() {
        let api = api_url(&broker);
        let probe = run(&url, &with_api(&["list-policies"], &api), None);
        assert_eq!(code(&probe), 0, "{}", stderr(&probe));
        let (policy, q) = (unique("ops-policy"), unique("ops-pq"));
        let _q = cleanup(&url, &[&q]);
        let pattern = format!("^{q}$");
        ok(
            &url,
            &with_api(
                &[
                    "set-policy",
                    &policy,
                    &pattern,
                    r#"{"max-length":2}"#,
                    "--apply-to",
                    "queues",
                    "--priority",
                    "5",
                ],
                &api,
            ),
            None,
        );
        let listed = ok(
            &url,
            &with_api(&["list-policies", "--name", &policy, "-o", "jsonl"], &api),
            None,
        );
        assert_eq!(
            listed.trim(),
            format!(
                r#"{{"apply-to":"queues","definition":{{"max-length":2}},"name":"{policy}","pattern":"{pattern}","priority":5,"vhost":"/"}}"#
            ),
            "{url}"
        );
        // The broker applies it: the queue keeps the last two of five (drop-head).
        ok(&url, &["send", &q, "--lines"], Some(b"1\n2\n3\n4\n5\n"));
        eventually(WAIT, "the policy's max-length applied", || {
            depth(&url, &q) == Some(2)
        });
        assert_eq!(
            ok(&url, &["receive", &q, "--idle-timeout", "1"], None),
            "4\n5\n"
        );
        // The same name replaces it.
        let replaced = run(
            &url,
            &with_api(
                &["set-policy", &policy, &pattern, r#"{"max-length":3}"#],
                &api,
            ),
            None,
        );
        assert_eq!(code(&replaced), 0, "{url}: {}", stderr(&replaced));
        assert!(
            stderr(&replaced).contains("updated"),
            "{}",
            stderr(&replaced)
        );
        // Refusals: a key the broker does not know (its reason shown), not JSON (65).
        let never = format!("^{q}-never$");
        let bad = run(
            &url,
            &with_api(
                &[
                    "set-policy",
                    &unique("ops-bad"),
                    &never,
                    r#"{"no-such-key":1}"#,
                ],
                &api,
            ),
            None,
        );
        assert_eq!(code(&bad), 1, "{url}: {}", stderr(&bad));
        assert!(stderr(&bad).contains("no-such-key"), "{}", stderr(&bad));
        let bad = run(
            &url,
            &with_api(&["set-policy", &unique("ops-bad"), &never, "[1]"], &api),
            None,
        );
        assert_eq!(code(&bad), 65, "{url}: {}", stderr(&bad));

        ok(&url, &with_api(&["clear-policy", &policy], &api), None);
        let listed = ok(
            &url,
            &with_api(&["list-policies", "--name", &policy, "-o", "tsv"], &api),
            None,
        );
        assert_eq!(
            listed.lines().count(),
            1,
            "{url}: only the header: {listed}"
        );
        let again = run(&url, &with_api(&["clear-policy", &policy], &api), None);
        assert_eq!(code(&again), 1, "{url}: {}", stderr(&again));
        assert!(stderr(&again).contains("no policy"), "{}", stderr(&again));
    }
}
