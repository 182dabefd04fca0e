//! Profiles: the TOML config file, the order flag > environment > profile > default for
//! every setting, `config show` masking passwords, and connections really using them.

use crate::cli_support::{code, stderr};
use crate::support::{Broker, WAIT, rmq, run_bounded, unique};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A temporary directory with a config file; removed when dropped.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new(text: &str) -> ConfigDir {
        let dir = std::env::temp_dir().join(unique("rmq-config"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), text).unwrap();
        ConfigDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("config.toml")
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `rmq ARGS` with extra environment variables (and none of the caller's rmq ones).
fn rmq_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = rmq();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run_bounded(c, None, WAIT)
}

/// `config show -o json` as `setting -> (value, source)`.
fn show(
    args: &[&str],
    env: &[(&str, &str)],
) -> std::collections::HashMap<String, (String, String)> {
    let mut all = args.to_vec();
    all.extend(["config", "show", "--output", "json"]);
    let out = rmq_env(&all, env);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for secret in ["dpass", "npass", "apipass", "epass", "fpass"] {
        assert!(!text.contains(secret), "a password leaked: {text}");
    }
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["setting"].as_str().unwrap().to_string(),
                (
                    r["value"].as_str().unwrap().to_string(),
                    r["source"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

const CONFIG: &str = r#"
default_profile = "dflt"

[profiles.dflt]
url = "amqp://d:dpass@dflt-host:5672/%2F"

[profiles.named]
url = "amqp://n:npass@named-host:5672/%2F?heartbeat=5"
vhost = "v1"
api_url = "http://admin:apipass@named-host:15672"
tls_ca_cert = "/etc/rmq/ca.pem"
"#;

#[test]
fn settings_resolve_flag_then_env_then_profile_then_default() {
    let cfg = ConfigDir::new(CONFIG);
    let file = cfg.file();
    let file = file.to_str().unwrap();
    let empty_home = std::env::temp_dir().join(unique("rmq-home"));
    let home = empty_home.to_str().unwrap();

    // Default: no config file anywhere.
    let s = show(&[], &[("XDG_CONFIG_HOME", home)]);
    assert_eq!(
        s["url"],
        (
            "amqp://guest:***@localhost:5672/%2F".into(),
            "default".into()
        )
    );
    assert!(s["config"].0.ends_with("(not found)"), "{:?}", s["config"]);

    // The config file's default profile.
    let s = show(&[], &[("RMQ_CONFIG", file)]);
    assert_eq!(
        s["profile"],
        ("dflt".into(), "config default_profile".into())
    );
    assert_eq!(
        s["url"],
        (
            "amqp://d:***@dflt-host:5672/%2F".into(),
            "profile dflt".into()
        )
    );

    // RMQ_PROFILE beats the default profile; the profile's vhost replaces the URL's.
    let s = show(&[], &[("RMQ_CONFIG", file), ("RMQ_PROFILE", "named")]);
    assert_eq!(s["profile"], ("named".into(), "env RMQ_PROFILE".into()));
    assert_eq!(
        s["url"],
        (
            "amqp://n:***@named-host:5672/v1?heartbeat=5".into(),
            "profile named".into()
        )
    );
    assert_eq!(
        s["api_url"],
        (
            "http://admin:***@named-host:15672".into(),
            "profile named".into()
        )
    );
    assert_eq!(
        s["tls_ca_cert"],
        ("/etc/rmq/ca.pem".into(), "profile named".into())
    );

    // --profile beats RMQ_PROFILE; --config beats RMQ_CONFIG.
    let s = show(
        &["--config", file, "--profile", "dflt"],
        &[
            ("RMQ_CONFIG", "/nonexistent/rmq.toml"),
            ("RMQ_PROFILE", "named"),
        ],
    );
    assert_eq!(s["profile"], ("dflt".into(), "flag --profile".into()));
    assert_eq!(s["config"], (file.to_string(), "flag --config".into()));

    // The environment beats the profile, and the flag beats the environment.
    let env = [
        ("RMQ_CONFIG", file),
        ("RMQ_PROFILE", "named"),
        ("RMQ_URL", "amqp://e:epass@env-host/%2F"),
        ("RMQ_API_URL", "http://e:epass@env-host:15672"),
    ];
    let s = show(&[], &env);
    assert_eq!(
        s["url"],
        ("amqp://e:***@env-host/%2F".into(), "env RMQ_URL".into())
    );
    assert_eq!(s["api_url"].1, "env RMQ_API_URL");
    assert_eq!(
        s["vhost"].0, "",
        "the profile's vhost does not apply to another URL"
    );
    let s = show(&["--url", "amqp://f:fpass@flag-host/%2F"], &env);
    assert_eq!(
        s["url"],
        ("amqp://f:***@flag-host/%2F".into(), "flag --url".into())
    );
}

#[test]
fn connections_use_the_profile_unless_the_environment_overrides_it() {
    let broker = Broker::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("amqp://guest:guest@{}/%2F", closed.local_addr().unwrap());
    drop(closed);
    let cfg = ConfigDir::new(&format!(
        "[profiles.local]\nurl = \"{}\"\n[profiles.dead]\nurl = \"{closed_url}\"\n",
        broker.url()
    ));
    let file = cfg.file();
    let file = file.to_str().unwrap();
    let q = unique("profiled");
    let out = rmq_env(
        &["--profile", "local", "send", &q, "x"],
        &[("RMQ_CONFIG", file)],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = rmq_env(
        &["receive", &q, "--count", "1", "--timeout", "10"],
        &[("RMQ_CONFIG", file), ("RMQ_PROFILE", "local")],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "x\n",
        "{}",
        stderr(&out)
    );
    // RMQ_URL beats the profile: the dead address is used and fails fast with 69.
    let out = rmq_env(
        &["--profile", "local", "declare", "queue", &q],
        &[("RMQ_CONFIG", file), ("RMQ_URL", &closed_url)],
    );
    assert_eq!(code(&out), 69, "{}", stderr(&out));
    // And --url beats both.
    let out = rmq_env(
        &[
            "--profile",
            "dead",
            "--url",
            &broker.url(),
            "declare",
            "queue",
            &q,
        ],
        &[("RMQ_CONFIG", file)],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn config_mistakes_are_reported() {
    let cfg = ConfigDir::new("[profiles.a]\nurl = \"amqp://h\"\n[profiles.b]\n");
    let file = cfg.file();
    let file = file.to_str().unwrap();
    let out = rmq_env(
        &["--profile", "zz", "config", "show"],
        &[("RMQ_CONFIG", file)],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("known profiles are a, b"),
        "{}",
        stderr(&out)
    );

    let bad = ConfigDir::new("[profiles.a]\nurl = 5\n");
    let out = rmq_env(
        &["config", "show"],
        &[("RMQ_CONFIG", bad.file().to_str().unwrap())],
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));

    let out = rmq_env(
        &["--config", "/nonexistent/rmq.toml", "config", "show"],
        &[],
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    // Commands that do not connect ignore a broken config.
    let out = rmq_env(&["--config", "/nonexistent/rmq.toml", "tutorial", "1"], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let out = rmq_env(&["config", "path"], &[("RMQ_CONFIG", file)]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), file);
    assert!(Path::new(file).exists());
}
