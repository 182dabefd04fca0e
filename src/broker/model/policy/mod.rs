//! Policies and operator policies (RabbitMQ 3.10's rabbit_policy): named patterns over
//! the queue and exchange names of a vhost whose definition supplies optional arguments
//! in bulk. Of the policies matching an object the one with the highest priority
//! applies, and so does one operator policy, which an administrator uses to cap what
//! users' policies and arguments may ask for (the lower value wins).
//!
//! - a policy's `pattern` is a PCRE regular expression matched unanchored (`re:run`)
//! - `apply-to`: `queues`, `exchanges` or `all` (3.10 has no per-queue-type targets)
//! - a policy naming a setting a queue's type does not support does not apply to that
//!   queue at all (rabbit_queue_type:is_policy_applicable): `delivery-limit` skips
//!   classic queues, `queue-mode` quorum queues
//! - equal priorities: RabbitMQ takes whichever its table lists first (an internal hash
//!   order); rmq takes the name that sorts first, so the choice is at least stable
//!
//! How a policy combines with a queue's own `x-` arguments is in `effective.rs`;
//! `pcre` reads RabbitMQ's (PCRE) patterns with the regex crate and gives PCRE's error
//! texts; `erlang_term` prints values as RabbitMQ's texts print them (`~p`).

mod effective;
pub(crate) mod erlang_term;
pub(crate) mod pcre;
mod validate;

pub(crate) use effective::effective_args;
pub(crate) use validate::{Source, parse, parse_from};

use crate::broker::model::args::Overflow;
use regex::Regex;
use serde_json::{Map, Number, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A user's policy or an administrator's operator policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyKind {
    /// `/api/policies`; RabbitMQ's runtime parameter component `policy`.
    User,
    /// `/api/operator-policies`; component `operator_policy`.
    Operator,
}

/// What a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyTo {
    Queues,
    Exchanges,
    All,
}

impl ApplyTo {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }
}

/// The settings rmq acts on, validated. Every other key is refused at validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) message_ttl: Option<u64>,
    pub(crate) expires: Option<u64>,
    pub(crate) max_length: Option<u64>,
    pub(crate) max_length_bytes: Option<u64>,
    pub(crate) delivery_limit: Option<u64>,
    pub(crate) overflow: Option<Overflow>,
    pub(crate) dead_letter_exchange: Option<String>,
    pub(crate) dead_letter_routing_key: Option<String>,
    pub(crate) alternate_exchange: Option<String>,
    /// `default` or `lazy`: accepted and shown, no effect (rmq pages by its own rule).
    pub(crate) queue_mode: Option<String>,
}

/// The settings whose operator-policy value caps the user's (rabbit_policies:
/// merge_policy_value: the lower value wins).
const CAPPED: &[&str] = &[
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "delivery-limit",
];

/// One policy.
#[derive(Debug)]
pub(crate) struct Policy {
    pub(crate) vhost: String,
    pub(crate) name: String,
    pub(crate) kind: PolicyKind,
    /// The pattern as given (listings, exports).
    pub(crate) pattern: String,
    re: Regex,
    pub(crate) apply_to: ApplyTo,
    /// The definition as given, keys in Erlang's map order (bytewise).
    pub(crate) definition: BTreeMap<String, Value>,
    /// Any JSON number, as RabbitMQ accepts; compared numerically.
    pub(crate) priority: Number,
    pub(crate) settings: Settings,
}

impl Policy {
    /// RabbitMQ's JSON for a policy (`/api/policies`, definitions' `policies`).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "vhost": self.vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to.as_str(),
            "definition": self.definition,
            "priority": self.priority,
        })
    }

    /// The runtime-parameter `value` of an operator policy in a definitions export.
    pub(crate) fn parameter_value(&self) -> Value {
        json!({
            "pattern": self.pattern,
            "definition": self.definition,
            "priority": self.priority,
            "apply-to": self.apply_to.as_str(),
        })
    }

    fn priority(&self) -> f64 {
        self.priority.as_f64().unwrap_or(0.0)
    }

    /// The same policy, as far as a re-PUT goes: an unchanged one changes nothing.
    fn same_as(&self, other: &Policy) -> bool {
        self.pattern == other.pattern
            && self.apply_to == other.apply_to
            && self.definition == other.definition
            && self.priority == other.priority
    }

    fn matches(&self, target: &Target<'_>) -> bool {
        let applicable = match target {
            Target::Queue { quorum, .. } => {
                self.apply_to != ApplyTo::Exchanges
                    && !self.definition.contains_key(if *quorum {
                        "queue-mode"
                    } else {
                        "delivery-limit"
                    })
            }
            Target::Exchange { .. } => self.apply_to != ApplyTo::Queues,
        };
        applicable && self.re.is_match(target.name())
    }
}

/// What a policy is matched against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    Queue { name: &'a str, quorum: bool },
    Exchange { name: &'a str },
}

impl Target<'_> {
    fn name(&self) -> &str {
        match self {
            Target::Queue { name, .. } | Target::Exchange { name } => name,
        }
    }
}

/// The policy and operator policy that apply to one queue or exchange, combined.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) policy: Option<Arc<Policy>>,
    pub(crate) operator: Option<Arc<Policy>>,
    /// The combined settings: the user's, each capped by the operator's.
    pub(crate) settings: Settings,
    /// The same as JSON: the management API's `effective_policy_definition`.
    pub(crate) definition: Map<String, Value>,
}

impl Applied {
    fn new(policy: Option<Arc<Policy>>, operator: Option<Arc<Policy>>) -> Option<Applied> {
        if policy.is_none() && operator.is_none() {
            return None;
        }
        let mut definition = Map::new();
        for p in policy.iter().chain(&operator) {
            for (k, v) in &p.definition {
                let merged = match definition.get(k) {
                    Some(Value::Number(have)) if CAPPED.contains(&k.as_str()) => {
                        match (have.as_u64(), v.as_u64()) {
                            (Some(a), Some(b)) if a <= b => Value::Number(have.clone()),
                            _ => v.clone(),
                        }
                    }
                    _ => v.clone(),
                };
                definition.insert(k.clone(), merged);
            }
        }
        let (user, op) = (
            policy
                .as_ref()
                .map(|p| p.settings.clone())
                .unwrap_or_default(),
            operator.as_ref().map(|p| &p.settings),
        );
        let cap = |mine: Option<u64>, theirs: Option<u64>| match (mine, theirs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let settings = Settings {
            message_ttl: cap(user.message_ttl, op.and_then(|o| o.message_ttl)),
            expires: cap(user.expires, op.and_then(|o| o.expires)),
            max_length: cap(user.max_length, op.and_then(|o| o.max_length)),
            max_length_bytes: cap(user.max_length_bytes, op.and_then(|o| o.max_length_bytes)),
            delivery_limit: cap(user.delivery_limit, op.and_then(|o| o.delivery_limit)),
            ..user
        };
        Some(Applied {
            policy,
            operator,
            settings,
            definition,
        })
    }

    /// The name of the user's policy, if one applies.
    pub(crate) fn policy_name(&self) -> Option<&str> {
        self.policy.as_ref().map(|p| p.name.as_str())
    }

    pub(crate) fn operator_name(&self) -> Option<&str> {
        self.operator.as_ref().map(|p| p.name.as_str())
    }
}

/// Whether two applications are the same policies (the same versions of them).
pub(crate) fn same(a: Option<&Arc<Applied>>, b: Option<&Arc<Applied>>) -> bool {
    let eq = |x: &Option<Arc<Policy>>, y: &Option<Arc<Policy>>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    };
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => eq(&a.policy, &b.policy) && eq(&a.operator, &b.operator),
        _ => false,
    }
}

/// A vhost's policies of both kinds, by name.
#[derive(Debug, Default)]
pub(crate) struct PolicySet {
    user: BTreeMap<String, Arc<Policy>>,
    operator: BTreeMap<String, Arc<Policy>>,
}

impl PolicySet {
    fn of(&self, kind: PolicyKind) -> &BTreeMap<String, Arc<Policy>> {
        match kind {
            PolicyKind::User => &self.user,
            PolicyKind::Operator => &self.operator,
        }
    }

    fn of_mut(&mut self, kind: PolicyKind) -> &mut BTreeMap<String, Arc<Policy>> {
        match kind {
            PolicyKind::User => &mut self.user,
            PolicyKind::Operator => &mut self.operator,
        }
    }

    pub(crate) fn get(&self, kind: PolicyKind, name: &str) -> Option<Arc<Policy>> {
        self.of(kind).get(name).cloned()
    }

    /// Every policy of `kind`, by name.
    pub(crate) fn list(&self, kind: PolicyKind) -> Vec<Arc<Policy>> {
        self.of(kind).values().cloned().collect()
    }

    /// Add or replace a policy; true when it is new. An identical re-PUT keeps the
    /// existing one, so nothing it applies to counts as changed.
    pub(crate) fn put(&mut self, policy: Policy) -> bool {
        let map = self.of_mut(policy.kind);
        match map.get(&policy.name) {
            Some(old) if old.same_as(&policy) => false,
            Some(_) => {
                map.insert(policy.name.clone(), Arc::new(policy));
                false
            }
            None => {
                map.insert(policy.name.clone(), Arc::new(policy));
                true
            }
        }
    }

    /// Remove a policy; false when there was none.
    pub(crate) fn remove(&mut self, kind: PolicyKind, name: &str) -> bool {
        self.of_mut(kind).remove(name).is_some()
    }

    /// The highest-priority policy of `kind` matching `target` (the first name on ties).
    fn best(&self, kind: PolicyKind, target: &Target<'_>) -> Option<Arc<Policy>> {
        let mut best: Option<&Arc<Policy>> = None;
        for p in self.of(kind).values().filter(|p| p.matches(target)) {
            if best.is_none_or(|b| p.priority() > b.priority()) {
                best = Some(p);
            }
        }
        best.cloned()
    }

    /// What applies to `target` now.
    pub(crate) fn applied(&self, target: Target<'_>) -> Option<Arc<Applied>> {
        Applied::new(
            self.best(PolicyKind::User, &target),
            self.best(PolicyKind::Operator, &target),
        )
        .map(Arc::new)
    }
}

/// A vhost's policies behind their lock. Creating a queue or exchange reads them and
/// a policy change writes them while it re-evaluates every object, so an object is
/// never created under a set of policies it then misses the change of.
#[derive(Debug, Default)]
pub(crate) struct Policies(RwLock<PolicySet>);

impl Policies {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, PolicySet> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, PolicySet> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(kind: PolicyKind, name: &str, body: Value) -> Policy {
        parse(kind, "/", name, &body).unwrap()
    }

    fn queue(name: &str) -> Target<'_> {
        Target::Queue {
            name,
            quorum: false,
        }
    }

    #[test]
    fn the_highest_priority_applies_and_ties_go_to_the_first_name() {
        let mut set = PolicySet::default();
        set.put(policy(
            PolicyKind::User,
            "low",
            json!({"pattern": "^q", "definition": {"max-length": 1}, "priority": 1}),
        ));
        set.put(policy(
            PolicyKind::User,
            "high",
            json!({"pattern": "^q1$", "definition": {"max-length": 2}, "priority": 2.5}),
        ));
        fn name(set: &PolicySet, t: Target<'_>) -> Option<String> {
            set.applied(t).map(|a| a.policy_name().unwrap().to_string())
        }
        assert_eq!(name(&set, queue("q1")).as_deref(), Some("high"));
        assert_eq!(name(&set, queue("q2")).as_deref(), Some("low"));
        assert_eq!(name(&set, queue("x")), None);
        assert_eq!(
            name(&set, Target::Exchange { name: "q1" }).as_deref(),
            Some("high")
        );
        set.put(policy(
            PolicyKind::User,
            "a-tie",
            json!({"pattern": "^q1$", "definition": {"max-length": 3}, "priority": 2.5}),
        ));
        assert_eq!(name(&set, queue("q1")).as_deref(), Some("a-tie"));
    }

    #[test]
    fn apply_to_and_queue_types_decide_what_a_policy_reaches() {
        let mut set = PolicySet::default();
        set.put(policy(
            PolicyKind::User,
            "x",
            json!({"pattern": "", "definition": {"alternate-exchange": "ae"}, "apply-to": "exchanges"}),
        ));
        assert!(set.applied(queue("q")).is_none());
        assert!(set.applied(Target::Exchange { name: "e" }).is_some());
        set.put(policy(
            PolicyKind::User,
            "dl",
            json!({"pattern": "", "definition": {"delivery-limit": 3}, "apply-to": "queues"}),
        ));
        // delivery-limit is not a classic queue setting: the whole policy skips them.
        assert!(set.applied(queue("q")).is_none());
        let quorum = set.applied(Target::Queue {
            name: "q",
            quorum: true,
        });
        assert_eq!(quorum.unwrap().settings.delivery_limit, Some(3));
    }

    #[test]
    fn operator_policies_cap_the_users_values() {
        let mut set = PolicySet::default();
        set.put(policy(
            PolicyKind::User,
            "u",
            json!({"pattern": "", "definition": {"max-length": 10, "message-ttl": 500, "dead-letter-exchange": "dlx"}}),
        ));
        set.put(policy(
            PolicyKind::Operator,
            "op",
            json!({"pattern": "", "definition": {"max-length": 5, "message-ttl": 900, "expires": 60000}}),
        ));
        let a = set.applied(queue("q")).unwrap();
        assert_eq!(
            (a.policy_name(), a.operator_name()),
            (Some("u"), Some("op"))
        );
        assert_eq!(a.settings.max_length, Some(5));
        assert_eq!(a.settings.message_ttl, Some(500));
        assert_eq!(a.settings.expires, Some(60000));
        assert_eq!(a.settings.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(
            Value::Object(a.definition.clone()),
            json!({"dead-letter-exchange": "dlx", "expires": 60000, "max-length": 5, "message-ttl": 500})
        );
    }
}
