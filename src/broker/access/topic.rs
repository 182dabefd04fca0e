//! Topic permissions (RabbitMQ's rabbit_auth_backend_internal:check_topic_access): per
//! user, vhost and topic exchange, a `write` pattern the routing key of every publish
//! must match and a `read` pattern every binding key bound from that exchange must.
//!
//! - they apply to topic exchanges only, and only where the user has one for that
//!   exchange: no topic permission means no restriction
//! - an empty pattern allows only the empty key (`^$`)
//! - `{username}` and `{vhost}` in a pattern stand for the user's name and the vhost
//!   (replaced as text before the pattern is compiled, as RabbitMQ does; for AMQP
//!   0-9-1 clients these two are all there is — `{client_id}` is MQTT's)
//! - refusals are 403 ACCESS_REFUSED, `access to topic 'k' in exchange 'x' in vhost 'v'
//!   refused for user 'u'` (rabbit_access_control:check_topic_access)

use super::Access;
use crate::broker::error::{AmqpError, AmqpResult};
use crate::broker::model::policy::pcre;
use regex::Regex;

/// One topic permission as stored: the patterns as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicPermission {
    pub(crate) write: String,
    pub(crate) read: String,
}

impl TopicPermission {
    /// Both patterns must compile as written (RabbitMQ checks before storing); the
    /// error is the pattern and PCRE's text, for the API's `invalid_regexp` answer.
    pub(crate) fn new(
        write: &str,
        read: &str,
    ) -> Result<TopicPermission, (String, pcre::PatternError)> {
        for p in [write, read] {
            pcre::compile(p).map_err(|e| (p.to_string(), e))?;
        }
        Ok(TopicPermission {
            write: write.to_string(),
            read: read.to_string(),
        })
    }
}

/// A pattern with the user's variables in, compiled; None when it does not compile
/// any more (a name with pattern syntax in it): nothing matches then.
fn expand(pattern: &str, user: &str, vhost: &str) -> Option<Regex> {
    let pattern = if pattern.is_empty() { "^$" } else { pattern };
    // RabbitMQ folds over its variable map in key order: username, then vhost.
    let expanded = pattern
        .replace("{username}", user)
        .replace("{vhost}", vhost);
    pcre::compile(&expanded).ok()
}

/// One user's topic permissions in one vhost, compiled for checking.
#[derive(Debug, Default)]
pub(crate) struct TopicRules {
    /// (exchange, write, read).
    rules: Vec<(String, Option<Regex>, Option<Regex>)>,
}

impl TopicRules {
    /// Compile `permissions` (exchange → permission) for `user` in `vhost`.
    pub(crate) fn new<'a>(
        permissions: impl IntoIterator<Item = (&'a str, &'a TopicPermission)>,
        user: &str,
        vhost: &str,
    ) -> TopicRules {
        TopicRules {
            rules: permissions
                .into_iter()
                .map(|(x, p)| {
                    (
                        x.to_string(),
                        expand(&p.write, user, vhost),
                        expand(&p.read, user, vhost),
                    )
                })
                .collect(),
        }
    }

    /// Whether there is nothing to check.
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Ok unless a topic permission on `exchange` (a topic exchange) refuses
    /// `routing_key` for `access` (write: publish; read: bind and unbind).
    pub(crate) fn check(
        &self,
        access: Access,
        exchange: &str,
        routing_key: &str,
        user: &str,
        vhost: &str,
    ) -> AmqpResult<()> {
        let Some((_, write, read)) = self.rules.iter().find(|(x, _, _)| x == exchange) else {
            return Ok(());
        };
        let re = match access {
            Access::Write => write,
            Access::Read => read,
            Access::Configure => return Ok(()),
        };
        if re.as_ref().is_some_and(|re| re.is_match(routing_key)) {
            return Ok(());
        }
        Err(AmqpError::access_refused(format_args!(
            "access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_and_refuses_with_rabbitmqs_text() {
        let p = TopicPermission::new("^{username}\\.", "").unwrap();
        let rules = TopicRules::new([("amq.topic", &p)], "bob", "/");
        let check = |a, x, k| rules.check(a, x, k, "bob", "/");
        assert!(check(Access::Write, "amq.topic", "bob.x").is_ok());
        let e = check(Access::Write, "amq.topic", "alice.x").unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.text,
            "ACCESS_REFUSED - access to topic 'alice.x' in exchange 'amq.topic' in vhost '/' refused for user 'bob'"
        );
        // The empty pattern allows only the empty key.
        assert!(check(Access::Read, "amq.topic", "").is_ok());
        assert!(check(Access::Read, "amq.topic", "a").is_err());
        // Other exchanges are not restricted.
        assert!(check(Access::Write, "other", "anything").is_ok());
        assert!(TopicPermission::new("(", "").is_err());
        let v = TopicPermission::new("^{vhost}-", ".*").unwrap();
        let rules = TopicRules::new([("t", &v)], "u", "prod");
        assert!(
            rules
                .check(Access::Write, "t", "prod-1", "u", "prod")
                .is_ok()
        );
        assert!(
            rules
                .check(Access::Write, "t", "dev-1", "u", "prod")
                .is_err()
        );
    }
}
