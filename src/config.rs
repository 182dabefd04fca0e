//! Connection settings from flags, the environment and a TOML config file of named
//! profiles — resolved once, per setting, in the order flag > environment > profile >
//! default. Plain data: clap never reaches here (the CLI passes its flags in
//! [`Overrides`]).
//!
//! ```toml
//! default_profile = "local"          # used when neither --profile nor RMQ_PROFILE is given
//!
//! [profiles.local]
//! url = "amqp://guest:guest@localhost:5672/%2F"
//!
//! [profiles.prod]
//! url = "amqp://app:secret@mq.example.com:5672"   # several: separated by spaces, tried in order
//! vhost = "orders"                   # replaces the URL's vhost
//! api_url = "http://mq.example.com:15672"
//! tls_ca_cert = "/etc/rmq/ca.pem"
//! tls_cert = "/etc/rmq/client.pem"
//! tls_key = "/etc/rmq/client.key"
//! ```

use crate::client::{DEFAULT_URL, redact};
use crate::exit::{self, coded};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The config file's contents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when neither `--profile` nor `RMQ_PROFILE` names one.
    pub default_profile: Option<String>,
    /// Named brokers.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One named broker.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// AMQP URI (RabbitMQ URI spec).
    pub url: Option<String>,
    /// Management API base URL (default: the AMQP host, the URL's `?api_port=` or 15672).
    pub api_url: Option<String>,
    /// Virtual host; replaces the vhost of this profile's URL.
    pub vhost: Option<String>,
    /// CA certificate file for amqps:// (PEM).
    pub tls_ca_cert: Option<PathBuf>,
    /// Client certificate file for amqps:// (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Client private key file for amqps:// (PEM).
    pub tls_key: Option<PathBuf>,
}

/// What the command line said; `None` where a flag was not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config PATH`.
    pub config: Option<PathBuf>,
    /// `--profile NAME`.
    pub profile: Option<String>,
    /// `--url URL`.
    pub url: Option<String>,
    /// `--tls-ca-cert-file FILE`.
    pub tls_ca_cert: Option<PathBuf>,
    /// `--tls-cert-file FILE`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key-file FILE`.
    pub tls_key: Option<PathBuf>,
}

/// Where a setting's value came from (shown by `rmq config show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A profile of the config file.
    Profile(String),
    /// The config file's `default_profile`.
    ConfigDefault,
    /// Built in (or derived from another setting).
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Profile(name) => write!(f, "profile {name}"),
            Source::ConfigDefault => f.write_str("config default_profile"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its origin.
    pub source: Source,
}

impl<T> Sourced<T> {
    fn new(value: T, source: Source) -> Sourced<T> {
        Sourced { value, source }
    }
}

/// Every connection setting, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file consulted, whether or not it exists.
    pub config_path: Option<Sourced<PathBuf>>,
    /// Whether that file existed and was read.
    pub config_loaded: bool,
    /// The profile in use, if any.
    pub profile: Option<Sourced<String>>,
    /// The AMQP URI to connect to.
    pub url: Sourced<String>,
    /// The management API base URL, when one is configured (else derived from `url`).
    pub api_url: Option<Sourced<String>>,
    /// The profile's vhost, when it set one (already applied to `url`).
    pub vhost: Option<Sourced<String>>,
    /// CA certificates for amqps:// and https:// (flag, else profile).
    pub tls_ca_cert: Option<Sourced<PathBuf>>,
    /// Client certificate (flag, else profile).
    pub tls_cert: Option<Sourced<PathBuf>>,
    /// Client key (flag, else profile).
    pub tls_key: Option<Sourced<PathBuf>>,
}

impl Settings {
    /// The TLS files in effect, plus `--insecure` (a flag only: never a saved default).
    pub fn tls(&self, insecure: bool) -> crate::client::TlsOptions {
        let path = |o: &Option<Sourced<PathBuf>>| o.as_ref().map(|s| s.value.clone());
        crate::client::TlsOptions {
            ca_cert: path(&self.tls_ca_cert),
            cert: path(&self.tls_cert),
            key: path(&self.tls_key),
            insecure,
        }
    }

    /// `(setting, value, source)` rows with secrets masked, for `rmq config show`.
    pub fn rows(&self) -> Vec<(String, String, String)> {
        let mut rows = Vec::new();
        let mut push = |name: &str, value: String, source: String| {
            rows.push((name.to_string(), value, source));
        };
        match &self.config_path {
            Some(p) => push(
                "config",
                format!(
                    "{}{}",
                    p.value.display(),
                    if self.config_loaded {
                        ""
                    } else {
                        " (not found)"
                    }
                ),
                p.source.to_string(),
            ),
            None => push("config", String::new(), "none".into()),
        }
        let text = |o: &Option<Sourced<String>>| {
            o.as_ref()
                .map(|s| (redact(&s.value), s.source.to_string()))
                .unwrap_or_default()
        };
        let path = |o: &Option<Sourced<PathBuf>>| {
            o.as_ref()
                .map(|s| (s.value.display().to_string(), s.source.to_string()))
                .unwrap_or_default()
        };
        let (v, s) = text(&self.profile);
        push("profile", v, s);
        for (i, u) in split_urls(&self.url.value).enumerate() {
            let name = if i == 0 { "url" } else { "url (next)" };
            push(name, redact(u), self.url.source.to_string());
        }
        match &self.api_url {
            Some(_) => {
                let (v, s) = text(&self.api_url);
                push("api_url", v, s);
            }
            None => push(
                "api_url",
                String::new(),
                "default (the URL's host, its ?api_port= or 15672)".into(),
            ),
        }
        let (v, s) = text(&self.vhost);
        push("vhost", v, s);
        for (name, value) in [
            ("tls_ca_cert", &self.tls_ca_cert),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ] {
            let (v, s) = path(value);
            push(name, v, s);
        }
        rows
    }
}

/// The default config file: `$XDG_CONFIG_HOME/rmq/config.toml`, else `~/.config/rmq/config.toml`.
pub fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(xdg) = env("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(xdg).join("rmq").join("config.toml"));
    }
    env("HOME").map(|home| PathBuf::from(home).join(".config/rmq/config.toml"))
}

/// The process environment, empty values treated as unset.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// Resolve every setting. `env` looks a variable up (empty counts as unset), so tests can
/// pass their own. Errors: an explicit config file that cannot be read or parsed, a bad
/// default config file, or a profile that does not exist.
pub fn resolve(o: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
    let config_path = match (&o.config, env("RMQ_CONFIG")) {
        (Some(p), _) => Some(Sourced::new(p.clone(), Source::Flag("--config"))),
        (None, Some(p)) => Some(Sourced::new(PathBuf::from(p), Source::Env("RMQ_CONFIG"))),
        (None, None) => default_config_path(env).map(|p| Sourced::new(p, Source::Default)),
    };
    let (file, loaded) = match &config_path {
        Some(p) => match load(&p.value, p.source != Source::Default)? {
            Some(f) => (f, true),
            None => (ConfigFile::default(), false),
        },
        None => (ConfigFile::default(), false),
    };

    let profile = match (&o.profile, env("RMQ_PROFILE"), &file.default_profile) {
        (Some(p), _, _) => Some(Sourced::new(p.clone(), Source::Flag("--profile"))),
        (None, Some(p), _) => Some(Sourced::new(p, Source::Env("RMQ_PROFILE"))),
        (None, None, Some(p)) => Some(Sourced::new(p.clone(), Source::ConfigDefault)),
        (None, None, None) => None,
    };
    let chosen = match &profile {
        None => None,
        Some(p) => Some(file.profiles.get(&p.value).cloned().ok_or_else(|| {
            let where_ = config_path
                .as_ref()
                .map(|c| format!("'{}'", c.value.display()))
                .unwrap_or_else(|| "the config file".into());
            let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
            let code = if p.source == Source::ConfigDefault {
                exit::DATA_ERR
            } else {
                exit::USAGE
            };
            coded(
                code,
                format!(
                    "no profile '{}' (from {}) in {where_}: {}",
                    p.value,
                    p.source,
                    if known.is_empty() {
                        "it defines none".to_string()
                    } else {
                        format!("known profiles are {}", known.join(", "))
                    }
                ),
            )
        })?),
    };
    let from_profile = || {
        Source::Profile(
            profile
                .as_ref()
                .map(|p| p.value.clone())
                .unwrap_or_default(),
        )
    };
    let prof = chosen.unwrap_or_default();

    let url = if let Some(u) = &o.url {
        Sourced::new(u.clone(), Source::Flag("--url"))
    } else if let Some(u) = env("RMQ_URL") {
        Sourced::new(u, Source::Env("RMQ_URL"))
    } else if let Some(u) = env("AMQP_URL") {
        Sourced::new(u, Source::Env("AMQP_URL"))
    } else if prof.url.is_some() || prof.vhost.is_some() {
        let base = prof.url.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
        let url = match &prof.vhost {
            Some(v) => split_urls(&base)
                .map(|u| with_vhost(u, v))
                .collect::<Vec<_>>()
                .join(" "),
            None => base,
        };
        Sourced::new(url, from_profile())
    } else {
        Sourced::new(DEFAULT_URL.to_string(), Source::Default)
    };
    // The profile's vhost belongs to the profile's broker: a URL from a flag or the
    // environment names its own vhost.
    let vhost = match (&prof.vhost, &url.source) {
        (Some(v), Source::Profile(_)) => Some(Sourced::new(v.clone(), from_profile())),
        _ => None,
    };
    let api_url = match (env("RMQ_API_URL"), &prof.api_url) {
        (Some(u), _) => Some(Sourced::new(u, Source::Env("RMQ_API_URL"))),
        (None, Some(u)) => Some(Sourced::new(u.clone(), from_profile())),
        (None, None) => None,
    };
    let file_setting = |flag: &Option<PathBuf>, name: &'static str, p: &Option<PathBuf>| match flag
    {
        Some(v) => Some(Sourced::new(v.clone(), Source::Flag(name))),
        None => p.clone().map(|v| Sourced::new(v, from_profile())),
    };
    Ok(Settings {
        config_loaded: loaded,
        config_path,
        url,
        api_url,
        vhost,
        tls_ca_cert: file_setting(&o.tls_ca_cert, "--tls-ca-cert-file", &prof.tls_ca_cert),
        tls_cert: file_setting(&o.tls_cert, "--tls-cert-file", &prof.tls_cert),
        tls_key: file_setting(&o.tls_key, "--tls-key-file", &prof.tls_key),
        profile,
    })
}

/// Read and parse a config file; `Ok(None)` when it does not exist and was not asked
/// for explicitly (the default location is optional, `--config`/`RMQ_CONFIG` are not).
fn load(path: &Path, explicit: bool) -> anyhow::Result<Option<ConfigFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => {
            return Err(coded(
                exit::DATA_ERR,
                format!("cannot read the config file '{}': {e}", path.display()),
            ));
        }
    };
    toml::from_str(&text).map(Some).map_err(|e| {
        coded(
            exit::DATA_ERR,
            format!(
                "the config file '{}' is not valid: {}",
                path.display(),
                e.to_string().trim_end()
            ),
        )
    })
}

/// The URLs of a setting: several brokers are separated by whitespace, tried in order.
/// Not commas: the RabbitMQ URI spec allows them unescaped in the user info.
pub fn split_urls(value: &str) -> impl Iterator<Item = &str> {
    value.split_whitespace()
}

/// The URL with its vhost replaced (percent-encoded, so `/` becomes `%2F`).
pub fn with_vhost(url: &str, vhost: &str) -> String {
    let encoded: String = vhost
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let base = match head[authority_start..].find('/') {
        Some(i) => &head[..authority_start + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{encoded}?{q}"),
        None => format!("{base}/{encoded}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn vhost_replacement() {
        assert_eq!(
            with_vhost("amqp://u:p@h:5672/%2F?heartbeat=5", "orders"),
            "amqp://u:p@h:5672/orders?heartbeat=5"
        );
        assert_eq!(with_vhost("amqp://h", "/"), "amqp://h/%2F");
    }

    #[test]
    fn flag_beats_env_beats_profile_beats_default() {
        let dir = std::env::temp_dir().join(format!("rmq-config-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(
            &path,
            "default_profile = \"a\"\n[profiles.a]\nurl = \"amqp://u:pw@a:1/%2F\"\n[profiles.b]\nurl = \"amqp://b:2\"\nvhost = \"v\"\n",
        )
        .unwrap();
        let cfg = path.to_str().unwrap();
        let o = Overrides::default();
        let s = resolve(&o, &env_of(&[("RMQ_CONFIG", cfg)])).unwrap();
        assert_eq!(s.url.value, "amqp://u:pw@a:1/%2F");
        assert_eq!(s.profile.unwrap().source, Source::ConfigDefault);
        let s = resolve(&o, &env_of(&[("RMQ_CONFIG", cfg), ("RMQ_PROFILE", "b")])).unwrap();
        assert_eq!(s.url.value, "amqp://b:2/v");
        let s = resolve(&o, &env_of(&[("RMQ_CONFIG", cfg), ("RMQ_URL", "amqp://e")])).unwrap();
        assert_eq!(s.url.source, Source::Env("RMQ_URL"));
        assert!(s.vhost.is_none());
        let flag = Overrides {
            url: Some("amqp://f".into()),
            ..Overrides::default()
        };
        let s = resolve(
            &flag,
            &env_of(&[("RMQ_CONFIG", cfg), ("RMQ_URL", "amqp://e")]),
        )
        .unwrap();
        assert_eq!(s.url.value, "amqp://f");
        let s = resolve(&o, &env_of(&[("HOME", "/nonexistent")])).unwrap();
        assert_eq!(s.url.value, DEFAULT_URL);
        assert!(!s.config_loaded);
        let missing = Overrides {
            profile: Some("zz".into()),
            ..Overrides::default()
        };
        let err = resolve(&missing, &env_of(&[("RMQ_CONFIG", cfg)])).unwrap_err();
        assert!(
            format!("{err:#}").contains("known profiles are a, b"),
            "{err:#}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
