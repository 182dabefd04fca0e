//! One connection's permission in its vhost, re-read only when the auth database
//! changed: the check on every publish is an atomic load and (usually) no regex.

use super::topic::TopicRules;
use super::{Access, AuthDb, Permission, Resource};
use crate::broker::error::{AmqpError, AmqpResult};
use crate::broker::model::topology::Permit;
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct Grant {
    user: String,
    vhost: String,
    generation: u64,
    permission: Option<Arc<Permission>>,
    /// The user's topic permissions in the vhost, compiled when first needed (a
    /// publish or bind on a topic exchange) after each change of the database.
    topic: Option<TopicRules>,
}

impl Grant {
    pub(crate) fn new(db: &AuthDb, user: &str, vhost: &str) -> Grant {
        Grant {
            user: user.to_string(),
            vhost: vhost.to_string(),
            generation: db.generation(),
            permission: db.permission(vhost, user),
            topic: None,
        }
    }

    /// Re-read the permission when the database changed.
    fn refresh(&mut self, db: &AuthDb) {
        let now = db.generation();
        if now != self.generation {
            self.generation = now;
            self.permission = db.permission(&self.vhost, &self.user);
            self.topic = None;
        }
    }

    /// 403 ACCESS_REFUSED unless the user's topic permissions on the topic exchange
    /// `exchange` allow `routing_key` (write: publish; read: bind and unbind).
    pub(crate) fn check_topic(
        &mut self,
        db: &AuthDb,
        access: Access,
        exchange: &str,
        routing_key: &str,
    ) -> AmqpResult<()> {
        self.refresh(db);
        let rules = self
            .topic
            .get_or_insert_with(|| db.topic_rules(&self.vhost, &self.user));
        if rules.is_empty() {
            return Ok(());
        }
        rules.check(access, exchange, routing_key, &self.user, &self.vhost)
    }

    /// 403 ACCESS_REFUSED (a channel error) unless the user may do `access` to the
    /// resource, with RabbitMQ's text; the default exchange is checked as `amq.default`.
    pub(crate) fn check(
        &mut self,
        db: &AuthDb,
        access: Access,
        kind: Resource,
        name: &str,
    ) -> AmqpResult<()> {
        self.refresh(db);
        let (kind, name) = match kind {
            Resource::Queue => ("queue", name),
            Resource::Exchange if name.is_empty() => ("exchange", "amq.default"),
            Resource::Exchange => ("exchange", name),
        };
        if self
            .permission
            .as_ref()
            .is_some_and(|p| p.allows(access, name))
        {
            return Ok(());
        }
        Err(AmqpError::access_refused(format_args!(
            "access to {kind} '{name}' in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        )))
    }
}

/// A grant checked against the database it was read from: what the topology service
/// asks (one check per operation, for AMQP and the management API alike).
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    pub(crate) grant: &'a mut Grant,
    pub(crate) db: &'a AuthDb,
}

impl Permit for Checked<'_> {
    fn check(&mut self, access: Access, kind: Resource, name: &str) -> AmqpResult<()> {
        self.grant.check(self.db, access, kind, name)
    }

    fn check_topic(&mut self, access: Access, exchange: &str, key: &str) -> AmqpResult<()> {
        self.grant.check_topic(self.db, access, exchange, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::access::password::PasswordHash;
    use crate::broker::access::{Permission, User};

    #[test]
    fn refuses_with_rabbitmqs_text_and_sees_changes() {
        let db = AuthDb::default();
        db.put_user(User {
            name: "bob".into(),
            hash: PasswordHash::new("pw"),
            tags: vec![],
        });
        db.set_permission(
            "/",
            "bob",
            Permission::new("^bob-", "^bob-", "^bob-").unwrap(),
        );
        let mut g = Grant::new(&db, "bob", "/");
        assert!(
            g.check(&db, Access::Configure, Resource::Queue, "bob-q")
                .is_ok()
        );
        let e = g
            .check(&db, Access::Write, Resource::Exchange, "")
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.text,
            "ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'bob'"
        );
        db.set_permission("/", "bob", Permission::full());
        assert!(g.check(&db, Access::Write, Resource::Exchange, "").is_ok());
        db.clear_permission("/", "bob");
        assert!(
            g.check(&db, Access::Read, Resource::Queue, "bob-q")
                .is_err()
        );
    }
}
