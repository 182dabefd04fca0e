//! Users, their tags and per-vhost permissions: RabbitMQ's internal auth backend.
//!
//! A permission is three regular expressions (configure, write, read) per user and
//! vhost, matched unanchored against resource names as RabbitMQ does; the empty pattern
//! grants nothing, and the default exchange is named `amq.default` for the check.
//!
//! - `password` salted SHA-256/512 hashes in RabbitMQ's format
//! - `records`  users and permissions to and from RabbitMQ's definitions JSON
//! - `grant`    one connection's cached view of its permission, checked per operation
//! - `topic`    topic permissions: routing and binding keys allowed on topic exchanges
//! - `lifecycle` seeding and persisting users, vhosts, permissions; creating and deleting vhosts

pub(crate) mod grant;
pub(crate) mod lifecycle;
pub(crate) mod password;
pub(crate) mod records;
pub(crate) mod topic;

use password::PasswordHash;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use topic::{TopicPermission, TopicRules};

/// A user of the broker.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) hash: PasswordHash,
    /// `administrator`, `monitoring`, `management`, `policymaker`, or anything else.
    pub(crate) tags: Vec<String>,
}

/// One of the three permission regexes.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    source: String,
    /// None: the empty pattern, which RabbitMQ treats as "nothing".
    re: Option<Regex>,
    /// `.*` (the common case) skips the regex engine on the publish path.
    everything: bool,
}

impl Pattern {
    pub(crate) fn new(source: &str) -> Result<Pattern, String> {
        let re = if source.is_empty() {
            None
        } else {
            Some(
                Regex::new(source)
                    .map_err(|e| format!("invalid regular expression '{source}': {e}"))?,
            )
        };
        Ok(Pattern {
            source: source.to_string(),
            re,
            everything: source == ".*",
        })
    }

    pub(crate) fn allows(&self, name: &str) -> bool {
        self.everything || self.re.as_ref().is_some_and(|re| re.is_match(name))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }
}

/// What a user may do in one vhost.
#[derive(Debug, Clone)]
pub(crate) struct Permission {
    pub(crate) configure: Pattern,
    pub(crate) write: Pattern,
    pub(crate) read: Pattern,
}

impl Permission {
    /// `.*` for all three: what `--user` and the default `guest` get.
    pub(crate) fn full() -> Permission {
        let all = || Pattern::new(".*").unwrap_or_else(|_| unreachable!("'.*' is a valid regex"));
        Permission {
            configure: all(),
            write: all(),
            read: all(),
        }
    }

    pub(crate) fn new(configure: &str, write: &str, read: &str) -> Result<Permission, String> {
        Ok(Permission {
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    pub(crate) fn allows(&self, access: Access, name: &str) -> bool {
        match access {
            Access::Configure => self.configure.allows(name),
            Access::Write => self.write.allows(name),
            Access::Read => self.read.allows(name),
        }
    }
}

/// The kinds of access, defined beside the topology service that checks them.
pub(crate) use crate::broker::model::topology::{Access, Resource};

#[derive(Debug, Default)]
struct Inner {
    users: BTreeMap<String, User>,
    /// (vhost, user) → permission.
    permissions: BTreeMap<(String, String), Arc<Permission>>,
    /// (vhost, user, exchange) → topic permission.
    topic: BTreeMap<(String, String, String), TopicPermission>,
}

struct WriteGuard<'a> {
    guard: std::sync::RwLockWriteGuard<'a, Inner>,
    generation: &'a AtomicU64,
}

impl std::ops::Deref for WriteGuard<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl std::ops::DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.guard
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // Still under the write lock: no reader can pair the new generation with the
        // old state.
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// Every user and permission of the broker.
#[derive(Debug, Default)]
pub(crate) struct AuthDb {
    inner: RwLock<Inner>,
    /// Bumped on every change, so connections know when their cached grant is stale.
    generation: AtomicU64,
}

impl AuthDb {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access; the generation moves when the guard is dropped, after the change,
    /// so a connection that re-reads on the new generation sees the new state.
    fn write(&self) -> WriteGuard<'_> {
        WriteGuard {
            guard: self.inner.write().unwrap_or_else(|e| e.into_inner()),
            generation: &self.generation,
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The user, when `password` is theirs.
    pub(crate) fn login(&self, name: &str, password: &str) -> Option<User> {
        self.read()
            .users
            .get(name)
            .filter(|u| u.hash.verify(password))
            .cloned()
    }

    pub(crate) fn user(&self, name: &str) -> Option<User> {
        self.read().users.get(name).cloned()
    }

    pub(crate) fn users(&self) -> Vec<User> {
        self.read().users.values().cloned().collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.read().users.is_empty()
    }

    /// Create or replace a user; true when it is new.
    pub(crate) fn put_user(&self, user: User) -> bool {
        self.write().users.insert(user.name.clone(), user).is_none()
    }

    /// Remove a user and every permission it had; false when there was none.
    pub(crate) fn delete_user(&self, name: &str) -> bool {
        let mut inner = self.write();
        inner.permissions.retain(|(_, u), _| u != name);
        inner.topic.retain(|(_, u, _), _| u != name);
        inner.users.remove(name).is_some()
    }

    pub(crate) fn permission(&self, vhost: &str, user: &str) -> Option<Arc<Permission>> {
        self.read()
            .permissions
            .get(&(vhost.to_string(), user.to_string()))
            .cloned()
    }

    /// Every permission as (vhost, user, permission), ordered by vhost then user.
    pub(crate) fn permissions(&self) -> Vec<(String, String, Arc<Permission>)> {
        self.read()
            .permissions
            .iter()
            .map(|((v, u), p)| (v.clone(), u.clone(), p.clone()))
            .collect()
    }

    /// Set a user's permission in a vhost; true when it had none there before.
    pub(crate) fn set_permission(&self, vhost: &str, user: &str, p: Permission) -> bool {
        self.write()
            .permissions
            .insert((vhost.to_string(), user.to_string()), Arc::new(p))
            .is_none()
    }

    pub(crate) fn clear_permission(&self, vhost: &str, user: &str) -> bool {
        self.write()
            .permissions
            .remove(&(vhost.to_string(), user.to_string()))
            .is_some()
    }

    /// A deleted vhost takes its permissions with it.
    pub(crate) fn clear_vhost(&self, vhost: &str) {
        let mut inner = self.write();
        inner.permissions.retain(|(v, _), _| v != vhost);
        inner.topic.retain(|(v, _, _), _| v != vhost);
    }

    /// Every topic permission as (vhost, user, exchange, permission), in that order.
    pub(crate) fn topic_permissions(&self) -> Vec<(String, String, String, TopicPermission)> {
        self.read()
            .topic
            .iter()
            .map(|((v, u, x), p)| (v.clone(), u.clone(), x.clone(), p.clone()))
            .collect()
    }

    /// Set a user's topic permission on one exchange of a vhost; true when the user had
    /// none in that vhost before (RabbitMQ's 201 rather than 204).
    pub(crate) fn set_topic_permission(
        &self,
        vhost: &str,
        user: &str,
        exchange: &str,
        p: TopicPermission,
    ) -> bool {
        let mut inner = self.write();
        let had = has_topic(&inner, vhost, user);
        inner.topic.insert(
            (vhost.to_string(), user.to_string(), exchange.to_string()),
            p,
        );
        !had
    }

    /// Clear a user's topic permission on `exchange`, or all of them in the vhost;
    /// false when the user had none there.
    pub(crate) fn clear_topic_permissions(
        &self,
        vhost: &str,
        user: &str,
        exchange: Option<&str>,
    ) -> bool {
        let mut inner = self.write();
        if !has_topic(&inner, vhost, user) {
            return false;
        }
        inner
            .topic
            .retain(|(v, u, x), _| !(v == vhost && u == user && exchange.is_none_or(|e| e == x)));
        true
    }

    /// A user's topic permissions in a vhost, compiled for checking.
    pub(crate) fn topic_rules(&self, vhost: &str, user: &str) -> TopicRules {
        let inner = self.read();
        TopicRules::new(
            inner
                .topic
                .iter()
                .filter(|((v, u, _), _)| v == vhost && u == user)
                .map(|((_, _, x), p)| (x.as_str(), p)),
            user,
            vhost,
        )
    }
}

fn has_topic(inner: &Inner, vhost: &str, user: &str) -> bool {
    inner.topic.keys().any(|(v, u, _)| v == vhost && u == user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_unanchored_and_empty_grants_nothing() {
        let p = Pattern::new("^bob-").unwrap();
        assert!(p.allows("bob-q"));
        assert!(!p.allows("alice-q"));
        assert!(Pattern::new("q").unwrap().allows("my-queue"));
        assert!(!Pattern::new("").unwrap().allows(""));
        assert!(!Pattern::new("").unwrap().allows("anything"));
        assert!(Pattern::new(".*").unwrap().allows(""));
        assert!(Pattern::new("(").is_err());
    }

    #[test]
    fn deleting_a_user_drops_its_permissions_and_bumps_the_generation() {
        let db = AuthDb::default();
        db.put_user(User {
            name: "bob".into(),
            hash: PasswordHash::new("pw"),
            tags: vec![],
        });
        db.set_permission("/", "bob", Permission::full());
        let g = db.generation();
        assert!(db.login("bob", "pw").is_some());
        assert!(db.login("bob", "nope").is_none());
        assert!(db.delete_user("bob"));
        assert!(db.permission("/", "bob").is_none());
        assert!(db.generation() > g);
    }
}
