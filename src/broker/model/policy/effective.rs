//! How the policies that apply to a queue combine with its own `x-` arguments.

use super::Applied;
use crate::broker::model::args::{MAX_TTL_MS, QueueArgs};

/// A queue's arguments with the policies that apply to it, as RabbitMQ 3.10 combines
/// them (rabbit_amqqueue_process:process_args_policy for classic queues,
/// rabbit_quorum_queue:ra_machine_config for quorum ones):
///
/// | setting | classic | quorum |
/// |---|---|---|
/// | message-ttl, max-length, max-length-bytes | lower of argument and policy | lower |
/// | expires | lower | policy wins |
/// | overflow | argument wins | policy wins |
/// | dead-letter-exchange, dead-letter-routing-key | argument wins | argument wins |
/// | delivery-limit | not applicable | lower |
///
/// TTLs from a policy are capped at the ten years RabbitMQ allows in arguments (a
/// later deadline than that is never reached by a running broker anyway).
pub(crate) fn effective_args(declared: &QueueArgs, applied: Option<&Applied>) -> QueueArgs {
    let Some(applied) = applied else {
        return declared.clone();
    };
    let p = &applied.settings;
    let lower = |arg: Option<u64>, pol: Option<u64>| match (arg, pol) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let ttl = |v: Option<u64>| v.map(|ms| ms.min(MAX_TTL_MS));
    let quorum = declared.quorum;
    let mut out = declared.clone();
    out.message_ttl = lower(declared.message_ttl, ttl(p.message_ttl));
    out.max_length = lower(declared.max_length, p.max_length);
    out.max_length_bytes = lower(declared.max_length_bytes, p.max_length_bytes);
    out.dead_letter_exchange = declared
        .dead_letter_exchange
        .clone()
        .or_else(|| p.dead_letter_exchange.clone());
    out.dead_letter_routing_key = declared
        .dead_letter_routing_key
        .clone()
        .or_else(|| p.dead_letter_routing_key.clone());
    if quorum {
        out.expires = ttl(p.expires).or(declared.expires);
        out.overflow = p.overflow.or(declared.overflow);
        out.delivery_limit = lower(declared.delivery_limit, p.delivery_limit);
    } else {
        out.expires = lower(declared.expires, ttl(p.expires));
        out.overflow = declared.overflow.or(p.overflow);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::PolicyKind;
    use super::super::PolicySet;
    use super::super::Target;
    use super::super::parse;
    use super::*;
    use crate::broker::model::args::Overflow;
    use serde_json::{Value, json};

    fn policy(kind: PolicyKind, name: &str, body: Value) -> super::super::Policy {
        parse(kind, "/", name, &body).unwrap()
    }

    fn queue(name: &str) -> Target<'_> {
        Target::Queue {
            name,
            quorum: false,
        }
    }

    #[test]
    fn arguments_and_policies_combine_as_in_rabbitmq() {
        let declared = QueueArgs {
            max_length: Some(10),
            message_ttl: Some(100),
            dead_letter_exchange: Some("arg-dlx".into()),
            overflow: Some(Overflow::DropHead),
            expires: Some(5000),
            ..QueueArgs::default()
        };
        let mut set = PolicySet::default();
        set.put(policy(
            PolicyKind::User,
            "p",
            json!({"pattern": "", "definition": {
                "max-length": 3, "message-ttl": 1000, "dead-letter-exchange": "pol-dlx",
                "dead-letter-routing-key": "rk", "overflow": "reject-publish", "expires": 60000
            }}),
        ));
        let applied = set.applied(queue("q"));
        let classic = effective_args(&declared, applied.as_deref());
        assert_eq!(classic.max_length, Some(3));
        assert_eq!(classic.message_ttl, Some(100));
        assert_eq!(classic.dead_letter_exchange.as_deref(), Some("arg-dlx"));
        assert_eq!(classic.dead_letter_routing_key.as_deref(), Some("rk"));
        assert_eq!(classic.overflow, Some(Overflow::DropHead));
        assert_eq!(classic.expires, Some(5000));
        let quorum = QueueArgs {
            quorum: true,
            ..declared
        };
        let q = effective_args(&quorum, applied.as_deref());
        assert_eq!(q.overflow, Some(Overflow::RejectPublish));
        assert_eq!(q.expires, Some(60000));
        assert_eq!(effective_args(&quorum, None), quorum);
    }
}
