//! Users, vhosts and permissions in RabbitMQ's definitions JSON: what /api/users and
//! /api/permissions show, what a definitions file seeds, and `access.json` in the data
//! directory (the same format, so the file can be read back with `--definitions`).

use super::password::PasswordHash;
use super::{AuthDb, Permission, User};
use crate::broker::model::policy::Policy;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The file under `--data-dir` that keeps users, vhosts and permissions across restarts.
pub(crate) const ACCESS_FILE: &str = "access.json";

pub(crate) fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.hash.encoded(),
        "hashing_algorithm": u.hash.algorithm,
        "tags": u.tags,
        "limits": {},
    })
}

pub(crate) fn permission_json(vhost: &str, user: &str, p: &Permission) -> Value {
    json!({
        "user": user,
        "vhost": vhost,
        "configure": p.configure.as_str(),
        "write": p.write.as_str(),
        "read": p.read.as_str(),
    })
}

/// Tags as a JSON list or RabbitMQ's older comma-separated string.
pub(crate) fn parse_tags(v: Option<&Value>) -> Result<Vec<String>, String> {
    let tags = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_string()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(|s| s.trim().to_string()))
            .collect::<Option<Vec<_>>>()
            .ok_or("tags must be strings")?,
        Some(other) => return Err(format!("tags must be a list or a string, got {other}")),
    };
    Ok(tags.into_iter().filter(|t| !t.is_empty()).collect())
}

/// The credential of a user object: `password` (hashed here), or `password_hash` (+
/// `hashing_algorithm`; empty for none); `None` when the object has neither.
pub(crate) fn parse_hash(v: &Value) -> Result<Option<PasswordHash>, String> {
    match (v.get("password"), v.get("password_hash")) {
        (Some(Value::String(p)), _) => Ok(Some(PasswordHash::new(p))),
        (_, Some(Value::String(h))) if h.is_empty() => Ok(Some(PasswordHash::none())),
        (_, Some(Value::String(h))) => {
            PasswordHash::parse(h, v.get("hashing_algorithm").and_then(Value::as_str)).map(Some)
        }
        (None | Some(Value::Null), None | Some(Value::Null)) => Ok(None),
        _ => Err("password and password_hash must be strings".into()),
    }
}

/// A user object: `name`, `password_hash` (+ `hashing_algorithm`) or `password`, `tags`.
pub(crate) fn parse_user(v: &Value) -> Result<User, String> {
    let name = str_field(v, "name")?;
    let hash = parse_hash(v)
        .map_err(|e| format!("user '{name}': {e}"))?
        .unwrap_or_else(PasswordHash::none);
    Ok(User {
        name: name.to_string(),
        hash,
        tags: parse_tags(v.get("tags")).map_err(|e| format!("user '{name}': {e}"))?,
    })
}

/// A permission object: `user`, `vhost`, `configure`, `write`, `read`.
pub(crate) fn parse_permission(v: &Value) -> Result<(String, String, Permission), String> {
    let user = str_field(v, "user")?;
    let vhost = str_field(v, "vhost")?;
    let p = Permission::new(
        str_field(v, "configure")?,
        str_field(v, "write")?,
        str_field(v, "read")?,
    )?;
    Ok((vhost.to_string(), user.to_string(), p))
}

/// A topic permission object: `user`, `vhost`, `exchange`, `write`, `read`; the
/// patterns must compile.
pub(crate) fn parse_topic_permission(
    v: &Value,
) -> Result<(String, String, String, super::topic::TopicPermission), String> {
    let (user, vhost, exchange) = (
        str_field(v, "user")?,
        str_field(v, "vhost")?,
        str_field(v, "exchange")?,
    );
    let p = super::topic::TopicPermission::new(str_field(v, "write")?, str_field(v, "read")?)
        .map_err(|(pattern, e)| {
            format!(
                "topic permission of user '{user}' on exchange '{exchange}' in vhost '{vhost}': \
                 invalid regular expression '{pattern}': {} at {}",
                e.message, e.offset
            )
        })?;
    Ok((vhost.to_string(), user.to_string(), exchange.to_string(), p))
}

pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing or non-string field '{key}' in {v}"))
}

/// Users, vhosts (with their limits as RabbitMQ's `vhost-limits` parameters),
/// permissions, policies and operator policies (as RabbitMQ exports them: runtime
/// parameters of component `operator_policy`) as one definitions document.
pub(crate) fn export(
    db: &AuthDb,
    vhosts: &[(String, Option<Value>)],
    policies: &[Arc<Policy>],
    operator_policies: &[Arc<Policy>],
) -> Value {
    let mut parameters: Vec<Value> = vhosts
        .iter()
        .filter_map(|(v, limits)| {
            limits.as_ref().map(
                |l| json!({"vhost": v, "component": "vhost-limits", "name": "limits", "value": l}),
            )
        })
        .collect();
    parameters.extend(operator_policies.iter().map(|p| {
        json!({
            "vhost": p.vhost, "component": "operator_policy", "name": p.name,
            "value": p.parameter_value(),
        })
    }));
    json!({
        "users": db.users().iter().map(user_json).collect::<Vec<_>>(),
        "vhosts": vhosts.iter().map(|(v, _)| json!({ "name": v })).collect::<Vec<_>>(),
        "permissions": db
            .permissions()
            .iter()
            .map(|(v, u, p)| permission_json(v, u, p))
            .collect::<Vec<_>>(),
        "topic_permissions": db
            .topic_permissions()
            .iter()
            .map(|(v, u, x, p)| {
                json!({"user": u, "vhost": v, "exchange": x, "write": p.write, "read": p.read})
            })
            .collect::<Vec<_>>(),
        "parameters": parameters,
        "policies": policies.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
    })
}

/// Write `access.json` atomically (temporary file, fsync, rename): a crash leaves the
/// old or the new file, never half of one.
pub(crate) fn save(dir: &Path, doc: &Value) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_string_pretty(doc).unwrap_or_default();
    let path = dir.join(ACCESS_FILE);
    // Unchanged (every start-up without changes): nothing to write, so a broker whose
    // disk is full still starts.
    if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    let tmp = dir.join(format!("{ACCESS_FILE}.tmp"));
    let written = (|| {
        // Password hashes: readable by the broker's user only.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Read `access.json`, if there is one.
pub(crate) fn load(dir: &Path) -> std::io::Result<Option<Value>> {
    match std::fs::read(dir.join(ACCESS_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", dir.join(ACCESS_FILE).display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rabbitmq_users_and_permissions() {
        let u = parse_user(&json!({
            "name": "bob",
            "password_hash": "lXS3bqSeWTe8YOBgX7qA1xZ0+Y/QbhWV05qzFGlzvUCtIXGX",
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": "administrator,management",
        }))
        .unwrap();
        assert!(u.hash.verify("secret"));
        assert_eq!(u.tags, ["administrator", "management"]);
        let (v, user, p) = parse_permission(&json!({
            "user": "bob", "vhost": "/", "configure": "^bob-", "write": ".*", "read": ""
        }))
        .unwrap();
        assert_eq!((v.as_str(), user.as_str()), ("/", "bob"));
        assert!(p.configure.allows("bob-1") && !p.read.allows("x"));
        assert!(parse_user(&json!({"password": "x"})).is_err());
        assert!(
            parse_permission(&json!({"user":"a","vhost":"/","configure":"(","write":"","read":""}))
                .is_err()
        );
    }
}
