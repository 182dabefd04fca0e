//! A policy as the management API or a definitions file gives it, validated as
//! RabbitMQ 3.10 does (rabbit_policy:validate, rabbit_policies:validate_policy), with
//! its texts: every failing field is reported, definition first, then `apply-to`,
//! `pattern`, `priority`, under `Validation failed`.
//!
//! Refused on purpose, as "not recognised policy settings": what rmq does not do —
//! classic mirroring (`ha-*`, which RabbitMQ 3.10 accepts; rmq has one node and
//! nothing to mirror to), federation, streams (`max-age`, ...), quorum internals
//! (`max-in-memory-*`, `dead-letter-strategy`, `queue-leader-locator`, ...) and
//! `queue-version`. A setting that is accepted and then silently does nothing would let
//! an operator believe a queue is mirrored or capped when it is not.

use super::{ApplyTo, Policy, PolicyKind, Settings};
use crate::broker::model::args::Overflow;
use crate::broker::model::policy::erlang_term::Term;
use crate::broker::model::policy::pcre;
use serde_json::{Number, Value};
use std::collections::BTreeMap;

/// The settings of user policies rmq supports.
const USER_KEYS: &[&str] = &[
    "alternate-exchange",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "delivery-limit",
    "expires",
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "queue-mode",
];

/// Operator policies take only limits (rabbit_policies' operator_policy_validator).
const OPERATOR_KEYS: &[&str] = &[
    "delivery-limit",
    "expires",
    "max-length",
    "max-length-bytes",
    "message-ttl",
];

/// `~p` of a JSON value.
fn p(v: &Value) -> String {
    Term::from_json(v).pretty()
}

/// One setting checked; its error text names the value as RabbitMQ prints it.
fn setting(key: &str, v: &Value, out: &mut Settings) -> Result<(), String> {
    let int = |min: u64, what: &str| -> Result<u64, String> {
        match v {
            Value::Number(n) if !n.is_f64() => n
                .as_u64()
                .filter(|i| *i >= min)
                .ok_or_else(|| format!("{} is not a valid {what}", p(v))),
            _ => Err(format!("{} is not a valid {what}", p(v))),
        }
    };
    let string = |what: &str| -> Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{} is not a valid {what}", p(v)))
    };
    match key {
        "message-ttl" => out.message_ttl = Some(int(0, "message TTL")?),
        "expires" => out.expires = Some(int(1, "queue expiry")?),
        "max-length" => out.max_length = Some(int(0, "maximum length")?),
        "max-length-bytes" => out.max_length_bytes = Some(int(0, "maximum length in bytes")?),
        "delivery-limit" => out.delivery_limit = Some(int(0, "delivery limit")?),
        "overflow" => {
            out.overflow = Some(match v.as_str() {
                Some("drop-head") => Overflow::DropHead,
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => return Err(format!("{} is not a valid overflow value", p(v))),
            })
        }
        "dead-letter-exchange" => {
            out.dead_letter_exchange = Some(string("dead letter exchange name")?)
        }
        "dead-letter-routing-key" => {
            out.dead_letter_routing_key = Some(string("dead letter routing key")?)
        }
        "alternate-exchange" => out.alternate_exchange = Some(string("alternate exchange name")?),
        "queue-mode" => match v.as_str() {
            Some(m @ ("default" | "lazy")) => out.queue_mode = Some(m.to_string()),
            _ => return Err(format!("{} is not a valid queue-mode value", p(v))),
        },
        other => unreachable!("'{other}' is not a known setting"),
    }
    Ok(())
}

/// The definition's settings, or its first problem: a known setting's bad value wins
/// over unknown settings, which are listed together (in key order, as Erlang's map).
fn definition(kind: PolicyKind, v: &Value) -> Result<(BTreeMap<String, Value>, Settings), String> {
    let Value::Object(m) = v else {
        // RabbitMQ's API fails with a 500 here; its validator's words say what is wrong.
        return Err(format!("definition must be a dictionary: {}", p(v)));
    };
    if m.is_empty() {
        return Err("no policy provided".into());
    }
    let known = match kind {
        PolicyKind::User => USER_KEYS,
        PolicyKind::Operator => OPERATOR_KEYS,
    };
    let sorted: BTreeMap<String, Value> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut settings = Settings::default();
    let mut unknown = Vec::new();
    for (k, v) in &sorted {
        if known.contains(&k.as_str()) {
            setting(k, v, &mut settings)?;
        } else {
            unknown.push(Term::Tuple(vec![Term::Bin(k.clone()), Term::from_json(v)]));
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "{} are not recognised policy settings",
            Term::List(unknown).pretty()
        ));
    }
    Ok((sorted, settings))
}

/// Where a policy comes from: its fields are read a little differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The API's PUT or a definitions file's `policies`: `priority` defaults to 0 and
    /// `apply-to` to `all`.
    Policy,
    /// A definitions file's `parameters` entry of component `operator_policy` (how
    /// RabbitMQ exports operator policies): its `value` is checked as a runtime
    /// parameter, so `priority`, `pattern` and `definition` are mandatory and other
    /// keys are refused.
    Parameter,
}

/// Validate a policy of `vhost` named `name` from `body` (`pattern`, `definition`,
/// `priority`, `apply-to`). The error is RabbitMQ's whole text
/// (`Validation failed\n\n...\n`), before the API's HTML escaping.
pub(crate) fn parse(
    kind: PolicyKind,
    vhost: &str,
    name: &str,
    body: &Value,
) -> Result<Policy, String> {
    parse_from(Source::Policy, kind, vhost, name, body)
}

/// [`parse`] for a policy from `source`.
pub(crate) fn parse_from(
    source: Source,
    kind: PolicyKind,
    vhost: &str,
    name: &str,
    body: &Value,
) -> Result<Policy, String> {
    let mut errors = Vec::new();
    if source == Source::Parameter {
        let extra: Vec<Term> = body
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| {
                !["pattern", "definition", "priority", "apply-to"].contains(&k.as_str())
            })
            .map(|(k, v)| Term::Tuple(vec![Term::Bin(k.clone()), Term::from_json(v)]))
            .collect();
        if !extra.is_empty() {
            errors.push(format!(
                "Unrecognised terms {} in {name}",
                Term::List(extra).pretty()
            ));
        }
    }
    let missing = |key: &str, otherwise: String| match source {
        Source::Parameter => format!("Key \"{key}\" not found in {name}"),
        Source::Policy => otherwise,
    };
    // Only a definitions file can leave these out (the API refuses a body without them
    // as `key_missing`); RabbitMQ then validates Erlang's `undefined`.
    let validator = match kind {
        PolicyKind::User => "policy_validator",
        PolicyKind::Operator => "operator_policy_validator",
    };
    let def = match body.get("definition") {
        Some(d) => definition(kind, d).map_err(|e| errors.push(e)).ok(),
        None => {
            errors.push(missing(
                "definition",
                format!(
                    "parse error while reading policy {name}: undefined. Validator: {validator}."
                ),
            ));
            None
        }
    };
    let apply_to = match body.get("apply-to") {
        None => Some(ApplyTo::All),
        Some(Value::String(s)) if s == "all" => Some(ApplyTo::All),
        Some(Value::String(s)) if s == "queues" => Some(ApplyTo::Queues),
        Some(Value::String(s)) if s == "exchanges" => Some(ApplyTo::Exchanges),
        Some(other) => {
            let shown = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_string);
            errors.push(format!(
                "apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
            ));
            None
        }
    };
    let pattern = match body.get("pattern") {
        Some(Value::String(s)) => match pcre::compile(s) {
            Ok(re) => Some((s.clone(), re)),
            Err(e) => {
                let reason = Term::Tuple(vec![Term::Str(e.message), Term::Int(e.offset as i128)]);
                errors.push(format!(
                    "pattern should be regular expression but is invalid: {}",
                    reason.pretty()
                ));
                None
            }
        },
        Some(other) => {
            errors.push(format!("pattern should be a binary but was {}", p(other)));
            None
        }
        None => {
            errors.push(missing(
                "pattern",
                "pattern should be a binary but was undefined".to_string(),
            ));
            None
        }
    };
    let priority = match body.get("priority") {
        None if source == Source::Parameter => {
            errors.push(missing("priority", String::new()));
            None
        }
        None => Some(Number::from(0)),
        Some(Value::Number(n)) => Some(n.clone()),
        Some(other) => {
            errors.push(format!(
                "priority should be a number, actually was {}",
                p(other)
            ));
            None
        }
    };
    match (def, apply_to, pattern, priority) {
        (Some((definition, settings)), Some(apply_to), Some((pattern, re)), Some(priority))
            if errors.is_empty() =>
        {
            Ok(Policy {
                vhost: vhost.to_string(),
                name: name.to_string(),
                kind,
                pattern,
                re,
                apply_to,
                definition,
                priority,
                settings,
            })
        }
        _ => Err(failed(errors)),
    }
}

/// RabbitMQ's text for failed validations, one a line.
fn failed(errors: Vec<String>) -> String {
    let mut text = String::from("Validation failed\n\n");
    for e in errors {
        text.push_str(&e);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(kind: PolicyKind, body: Value) -> String {
        parse(kind, "/", "p", &body).unwrap_err()
    }

    // The texts RabbitMQ 3.10.8 answered for the same bodies (before HTML escaping).
    #[test]
    fn refuses_with_rabbitmqs_texts() {
        let user = |b| error(PolicyKind::User, b);
        assert_eq!(
            user(json!({"pattern": "^q", "definition": {"ha-mode": "all"}})),
            "Validation failed\n\n[{<<\"ha-mode\">>,<<\"all\">>}] are not recognised policy settings\n"
        );
        assert_eq!(
            user(json!({"pattern": "^q", "definition": {"foo": "x", "bar": 1}})),
            "Validation failed\n\n[{<<\"bar\">>,1},{<<\"foo\">>,<<\"x\">>}] are not recognised policy settings\n"
        );
        assert_eq!(
            user(json!({"pattern": "^q", "definition": {"message-ttl": "x"}})),
            "Validation failed\n\n<<\"x\">> is not a valid message TTL\n"
        );
        assert_eq!(
            user(json!({"pattern": "^q", "definition": {"message-ttl": -1}})),
            "Validation failed\n\n-1 is not a valid message TTL\n"
        );
        assert_eq!(
            user(json!({"pattern": "^q", "definition": {}})),
            "Validation failed\n\nno policy provided\n"
        );
        assert_eq!(
            user(json!({"pattern": "(", "definition": {"message-ttl": 1}})),
            "Validation failed\n\npattern should be regular expression but is invalid: {\"missing )\",1}\n"
        );
        assert_eq!(
            user(
                json!({"pattern": "^q", "definition": {"message-ttl": 1}, "apply-to": "classic_queues"})
            ),
            "Validation failed\n\napply-to 'classic_queues' unrecognised; should be 'queues', 'exchanges' or 'all'\n"
        );
        assert_eq!(
            user(
                json!({"pattern": "(", "definition": {"max-length": "x", "foo": 1}, "apply-to": "x", "priority": "a"})
            ),
            "Validation failed\n\n<<\"x\">> is not a valid maximum length\napply-to 'x' unrecognised; should be 'queues', 'exchanges' or 'all'\npattern should be regular expression but is invalid: {\"missing )\",1}\npriority should be a number, actually was <<\"a\">>\n"
        );
        assert_eq!(
            user(json!({"pattern": "a", "definition": {"max-length": 1}, "priority": null})),
            "Validation failed\n\npriority should be a number, actually was null\n"
        );
        assert_eq!(
            user(json!({"pattern": 5, "definition": {"max-length": 1}})),
            "Validation failed\n\npattern should be a binary but was 5\n"
        );
        assert_eq!(
            user(json!({"pattern": "a", "definition": {"message-ttl": 5.0}})),
            "Validation failed\n\n5.0 is not a valid message TTL\n"
        );
        assert_eq!(
            error(
                PolicyKind::Operator,
                json!({"pattern": "^zz", "definition": {"overflow": "reject-publish"}})
            ),
            "Validation failed\n\n[{<<\"overflow\">>,<<\"reject-publish\">>}] are not recognised policy settings\n"
        );
    }

    #[test]
    fn operator_policy_parameters_are_checked_as_runtime_parameters() {
        let e = parse_from(
            Source::Parameter,
            PolicyKind::Operator,
            "/",
            "op",
            &json!({"pattern": "^a", "definition": {"foo": 1}, "x": 2}),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Validation failed\n\nUnrecognised terms [{<<\"x\">>,2}] in op\n[{<<\"foo\">>,1}] are not recognised policy settings\nKey \"priority\" not found in op\n"
        );
    }

    #[test]
    fn accepts_the_supported_settings() {
        let p = parse(
            PolicyKind::User,
            "/",
            "p",
            &json!({"pattern": "^q", "definition": {
                "message-ttl": 0, "expires": 1, "max-length": 2, "max-length-bytes": 3,
                "overflow": "reject-publish-dlx", "dead-letter-exchange": "dlx",
                "dead-letter-routing-key": "rk", "delivery-limit": 4,
                "alternate-exchange": "ae", "queue-mode": "lazy"
            }, "priority": 7, "apply-to": "queues"}),
        )
        .unwrap();
        assert_eq!(p.settings.message_ttl, Some(0));
        assert_eq!(p.settings.overflow, Some(Overflow::RejectPublishDlx));
        assert_eq!(p.apply_to, ApplyTo::Queues);
        assert_eq!(
            p.to_json()["definition"]["dead-letter-routing-key"],
            json!("rk")
        );
        assert_eq!(p.to_json()["priority"], json!(7));
        assert!(
            error(
                PolicyKind::User,
                json!({"pattern": "a", "definition": {"expires": 0}})
            )
            .contains("0 is not a valid queue expiry")
        );
    }
}
