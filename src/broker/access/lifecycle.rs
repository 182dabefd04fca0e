//! Who may do what: seeding users, vhosts and permissions at start-up, creating and
//! deleting vhosts, and keeping `access.json` in the data directory current.
//!
//! Start-up order, each step overriding the one before: what the data directory kept,
//! then the definitions file (`--definitions`), then `--vhost` and `--user` (operators:
//! `administrator`, full permissions on `/` and every `--vhost`). When no user exists
//! after that, `guest:guest` is created as RabbitMQ does on a fresh node (loopback only).

use crate::broker::access::password::PasswordHash;
use crate::broker::access::records::{self, parse_permission, parse_topic_permission, parse_user};
use crate::broker::access::{Permission, User};
use crate::broker::model::policy::{self, Policy, PolicyKind, Source};
use crate::broker::model::vhost::VHost;
use crate::broker::state::BrokerState;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl BrokerState {
    pub(crate) fn seed_access(&self) -> io::Result<()> {
        if let Some(dir) = &self.config.data_dir
            && let Some(doc) = records::load(dir)?
        {
            self.apply_access(&doc).map_err(|e| {
                invalid(format_args!(
                    "{}: {e}",
                    dir.join(records::ACCESS_FILE).display()
                ))
            })?;
        }
        if let Some(path) = &self.config.definitions {
            let doc = read_definitions(path)?;
            self.apply_access(&doc)
                .map_err(|e| invalid(format_args!("{}: {e}", path.display())))?;
        }
        let mut granted: Vec<&str> = vec!["/"];
        for v in &self.config.vhosts {
            self.create_vhost(v);
            granted.push(v);
        }
        let operators: Vec<(&str, &str)> = if self.config.users.is_empty() && self.auth.is_empty() {
            vec![("guest", "guest")]
        } else {
            self.config
                .users
                .iter()
                .map(|(u, p)| (u.as_str(), p.as_str()))
                .collect()
        };
        for (name, password) in operators {
            self.auth.put_user(User {
                name: name.to_string(),
                hash: PasswordHash::new(password),
                tags: vec!["administrator".into()],
            });
            for v in &granted {
                self.auth.set_permission(v, name, Permission::full());
            }
        }
        match self.save_access() {
            // A full disk must not keep the broker from starting (and so from being
            // drained): the users above apply now, and are given again at the next start.
            Err(e) if e.kind() == io::ErrorKind::StorageFull => Ok(()),
            other => other,
        }
    }

    /// Users, vhosts, permissions, topic permissions, vhost limits, policies and operator policies of a
    /// definitions document (the topology is `mgmt::import_topology`'s).
    pub(crate) fn apply_access(&self, doc: &Value) -> Result<(), String> {
        let list = |key: &str| -> Result<Vec<Value>, String> {
            match doc.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => Ok(items.clone()),
                Some(_) => Err(format!("'{key}' must be a list")),
            }
        };
        // Validate everything before changing anything.
        let users = list("users")?
            .iter()
            .map(parse_user)
            .collect::<Result<Vec<_>, _>>()?;
        let vhosts = list("vhosts")?
            .iter()
            .map(|v| records::str_field(v, "name").map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        let permissions = list("permissions")?
            .iter()
            .map(parse_permission)
            .collect::<Result<Vec<_>, _>>()?;
        let topic_permissions = list("topic_permissions")?
            .iter()
            .map(parse_topic_permission)
            .collect::<Result<Vec<_>, _>>()?;
        let parameters = list("parameters")?;
        let component = |p: &Value, c: &str| p.get("component").and_then(Value::as_str) == Some(c);
        // Of the other runtime parameters only vhost limits mean something here.
        let limits: Vec<(String, Value)> = parameters
            .iter()
            .filter(|p| component(p, "vhost-limits"))
            .map(|p| {
                let vhost = records::str_field(p, "vhost")?.to_string();
                Ok((vhost, p.get("value").cloned().unwrap_or(Value::Null)))
            })
            .collect::<Result<_, String>>()?;
        let mut policies = list("policies")?
            .iter()
            .map(policy_entry)
            .collect::<Result<Vec<_>, _>>()?;
        for p in parameters
            .iter()
            .filter(|p| component(p, "operator_policy"))
        {
            policies.push(operator_policy_parameter(p)?);
        }
        for u in users {
            self.auth.put_user(u);
        }
        for v in vhosts {
            self.create_vhost(&v);
        }
        for (vhost, user, p) in permissions {
            if self.vhost(&vhost).is_none() {
                return Err(format!("permission of user '{user}': no vhost '{vhost}'"));
            }
            if self.auth.user(&user).is_none() {
                return Err(format!("permission in vhost '{vhost}': no user '{user}'"));
            }
            self.auth.set_permission(&vhost, &user, p);
        }
        for (vhost, user, exchange, p) in topic_permissions {
            if self.vhost(&vhost).is_none() || self.auth.user(&user).is_none() {
                return Err(format!(
                    "topic permission of user '{user}' in vhost '{vhost}': no such user or vhost"
                ));
            }
            self.auth.set_topic_permission(&vhost, &user, &exchange, p);
        }
        for (vhost, value) in limits {
            let v = self
                .vhost(&vhost)
                .ok_or_else(|| format!("vhost limits: no vhost '{vhost}'"))?;
            v.limits
                .replace_from_json(&value)
                .map_err(|e| format!("vhost '{vhost}': {e}"))?;
        }
        self.apply_policies(policies)
    }

    /// Put policies in force, each vhost's at once (one walk over its objects).
    fn apply_policies(&self, policies: Vec<Policy>) -> Result<(), String> {
        let mut by_vhost: BTreeMap<String, Vec<Policy>> = BTreeMap::new();
        for p in policies {
            by_vhost.entry(p.vhost.clone()).or_default().push(p);
        }
        for (vhost, ps) in by_vhost {
            let v = self
                .vhost(&vhost)
                .ok_or_else(|| format!("policy '{}': no vhost '{vhost}'", ps[0].name))?;
            v.change_policies(|set| {
                for p in ps {
                    set.put(p);
                }
            });
        }
        Ok(())
    }

    /// Every policy of `kind`, by vhost then name.
    pub(crate) fn policies(&self, kind: PolicyKind) -> Vec<Arc<Policy>> {
        let mut vhosts: Vec<Arc<VHost>> = self
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        vhosts
            .iter()
            .flat_map(|v| v.policies.read().list(kind))
            .collect()
    }

    /// Users, vhosts, permissions, limits and policies as a definitions document: what
    /// `access.json` holds and `/api/definitions` exports.
    pub(crate) fn access_doc(&self) -> Value {
        records::export(
            &self.auth,
            &self.vhost_limits(),
            &self.policies(PolicyKind::User),
            &self.policies(PolicyKind::Operator),
        )
    }

    /// Create a vhost (with the standard exchanges); false when it already existed.
    pub(crate) fn create_vhost(&self, name: &str) -> bool {
        let mut vhosts = self.vhosts.write().unwrap_or_else(|e| e.into_inner());
        if vhosts.contains_key(name) {
            return false;
        }
        vhosts.insert(
            name.to_string(),
            Arc::new(VHost::new(name, self.store.clone())),
        );
        true
    }

    /// Delete a vhost with everything in it: its queues (and their messages), its
    /// exchanges, the permissions granting it, and its connections (320 "vhost 'x' is
    /// down", as RabbitMQ).
    pub(crate) fn delete_vhost(&self, name: &str) -> bool {
        let Some(vhost) = self
            .vhosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
        else {
            return false;
        };
        for conn in self.registry.connections() {
            if conn.vhost == name {
                conn.force_close(format!("vhost '{name}' is down"));
            }
        }
        let queues: Vec<_> = vhost.queue_list();
        for q in queues {
            vhost.delete_queue(&q);
        }
        let exchanges: Vec<String> = vhost
            .exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|n| !n.is_empty() && !n.starts_with("amq."))
            .cloned()
            .collect();
        for x in exchanges {
            vhost.delete_exchange(&x);
        }
        self.auth.clear_vhost(name);
        true
    }

    /// Every vhost name with its limits, sorted by name.
    pub(crate) fn vhost_limits(&self) -> Vec<(String, Option<Value>)> {
        let mut all: Vec<_> = self
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, v)| (name.clone(), v.limits.to_json()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Persist users, vhosts and permissions (no-op in memory).
    pub(crate) fn save_access(&self) -> io::Result<()> {
        let Some(dir) = &self.config.data_dir else {
            return Ok(());
        };
        records::save(dir, &self.access_doc()).inspect_err(|e| {
            tracing::error!(
                "cannot save {}: {e}",
                dir.join(records::ACCESS_FILE).display()
            );
        })
    }
}

/// A definitions file's policy (RabbitMQ's add_policy), with its texts: the error names
/// the policy as ` (vhost/name)`.
fn policy_entry(v: &Value) -> Result<Policy, String> {
    let vhost = records::str_field(v, "vhost")?;
    let Some(name) = v.get("name").and_then(Value::as_str) else {
        return Err(format!(
            "policy in virtual host '{vhost}' has undefined name"
        ));
    };
    policy::parse_from(Source::Policy, PolicyKind::User, vhost, name, v)
        .map_err(|e| format!("{e} ({vhost}/{name})"))
}

/// A definitions file's `operator_policy` parameter (RabbitMQ's add_parameter).
fn operator_policy_parameter(p: &Value) -> Result<Policy, String> {
    let vhost = records::str_field(p, "vhost")?;
    let name = records::str_field(p, "name")?;
    let empty = Value::Object(Default::default());
    let value = p.get("value").unwrap_or(&empty);
    policy::parse_from(Source::Parameter, PolicyKind::Operator, vhost, name, value)
        .map_err(|e| format!("{e} ({vhost}/operator_policy/{name})"))
}

/// A definitions file (RabbitMQ's JSON export format).
pub(crate) fn read_definitions(path: &std::path::Path) -> io::Result<Value> {
    let bytes = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(invalid(format_args!(
            "{}: a definitions file is a JSON object",
            path.display()
        ))),
        Err(e) => Err(invalid(format_args!("{}: not JSON: {e}", path.display()))),
    }
}
