//! Queue arguments (RabbitMQ's `x-` extensions): validated once at declare time into a
//! typed `QueueArgs`, with RabbitMQ's 406 texts for bad values and for inequivalent
//! redeclares (rabbit_amqqueue:declare_args and rabbit_misc:assert_args_equivalence).

use crate::broker::error::{AmqpError, AmqpResult};
use amq_protocol::types::{AMQPValue, FieldTable};

/// What `x-overflow` does when a length limit is hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Overflow {
    /// Drop (and dead-letter) the oldest ready message.
    #[default]
    DropHead,
    /// Refuse the new message: nack to confirming publishers.
    RejectPublish,
    /// Refuse and dead-letter the new message.
    RejectPublishDlx,
}

/// The queue arguments rmq acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct QueueArgs {
    /// `x-message-ttl`, milliseconds.
    pub(crate) message_ttl: Option<u64>,
    /// `x-expires`, milliseconds of disuse before the queue is deleted.
    pub(crate) expires: Option<u64>,
    /// `x-max-length`: ready messages.
    pub(crate) max_length: Option<u64>,
    /// `x-max-length-bytes`: ready message bodies.
    pub(crate) max_length_bytes: Option<u64>,
    /// `x-overflow` (None: not given, which is drop-head; a policy may set it).
    pub(crate) overflow: Option<Overflow>,
    /// `x-dead-letter-exchange`.
    pub(crate) dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub(crate) dead_letter_routing_key: Option<String>,
    /// `x-max-priority` (1..=255; 0 means none).
    pub(crate) max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub(crate) single_active_consumer: bool,
    /// `x-queue-type: quorum`: RabbitMQ's quorum semantics (delivery count and limit).
    pub(crate) quorum: bool,
    /// `x-delivery-limit` of a quorum queue: a message returned more often than this is
    /// dropped or dead-lettered (reason `delivery_limit`). Classic queues ignore it, as
    /// RabbitMQ 3.10's do.
    pub(crate) delivery_limit: Option<u64>,
}

/// Arguments RabbitMQ compares on redeclare (others are ignored, as there).
const EQUIVALENCE_CHECKED: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
];

/// RabbitMQ's name of an AMQP field type, as it appears in its error texts.
pub(crate) fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

/// An integer argument's value, whatever width the client encoded it in.
pub(crate) fn as_int(v: &AMQPValue) -> Option<i64> {
    Some(match v {
        AMQPValue::ShortShortInt(x) => i64::from(*x),
        AMQPValue::ShortShortUInt(x) => i64::from(*x),
        AMQPValue::ShortInt(x) => i64::from(*x),
        AMQPValue::ShortUInt(x) => i64::from(*x),
        AMQPValue::LongInt(x) => i64::from(*x),
        AMQPValue::LongUInt(x) => i64::from(*x),
        AMQPValue::LongLongInt(x) => *x,
        _ => return None,
    })
}

/// A string argument's value (long or short string).
pub(crate) fn as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// How RabbitMQ prints a value in `inequivalent arg` texts.
fn display(v: &AMQPValue) -> String {
    if let Some(i) = as_int(v) {
        return i.to_string();
    }
    if let Some(s) = as_string(v) {
        return s;
    }
    match v {
        AMQPValue::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn invalid(arg: &str, queue: &str, vhost: &str, why: impl std::fmt::Display) -> AmqpError {
    AmqpError::precondition(format_args!(
        "invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {why}"
    ))
}

/// RabbitMQ's ceiling for `x-message-ttl`, `x-expires` and `expiration` (ten years, ms).
pub(crate) const MAX_TTL_MS: u64 = 315_360_000_000;

impl QueueArgs {
    /// What a full queue does (drop-head unless told otherwise).
    pub(crate) fn overflow_mode(&self) -> Overflow {
        self.overflow.unwrap_or_default()
    }

    /// Validate the declare arguments as RabbitMQ 3.10 does (rabbit_amqqueue:declare_args),
    /// with its three shapes of text: `"expected integer, got T"` for numbers of the wrong
    /// type, Erlang terms for bad values, and `invalid type` for the dead-letter exchange.
    pub(crate) fn parse(args: &FieldTable, queue: &str, vhost: &str) -> AmqpResult<QueueArgs> {
        let mut out = QueueArgs::default();
        let bad = |arg: &str, why: &dyn std::fmt::Display| invalid(arg, queue, vhost, why);
        let int = |arg: &str, v: &AMQPValue| -> AmqpResult<i64> {
            as_int(v).ok_or_else(|| {
                bad(
                    arg,
                    &format_args!("\"expected integer, got {}\"", type_name(v)),
                )
            })
        };
        let non_negative = |arg: &str, v: &AMQPValue| -> AmqpResult<u64> {
            let i = int(arg, v)?;
            if i < 0 {
                return Err(bad(arg, &format_args!("{{value_negative,{i}}}")));
            }
            Ok(i as u64)
        };
        let ttl = |arg: &str, v: &AMQPValue, zero_ok: bool| -> AmqpResult<u64> {
            let i = non_negative(arg, v)?;
            if i == 0 && !zero_ok {
                return Err(bad(arg, &"{value_zero,0}"));
            }
            if i > MAX_TTL_MS {
                return Err(bad(arg, &format_args!("{{value_too_large,{i}}}")));
            }
            Ok(i)
        };
        let string = |arg: &str, v: &AMQPValue| -> AmqpResult<String> {
            as_string(v)
                .ok_or_else(|| bad(arg, &format_args!("{{unacceptable_type,{}}}", type_name(v))))
        };
        for (k, v) in args {
            let arg = k.as_str();
            match arg {
                "x-message-ttl" => out.message_ttl = Some(ttl(arg, v, true)?),
                "x-expires" => out.expires = Some(ttl(arg, v, false)?),
                "x-max-length" => out.max_length = Some(non_negative(arg, v)?),
                "x-max-length-bytes" => out.max_length_bytes = Some(non_negative(arg, v)?),
                "x-max-priority" => {
                    let p = non_negative(arg, v)?;
                    if p > 255 {
                        return Err(bad(arg, &format_args!("{{max_value_exceeded,{p}}}")));
                    }
                    // 0 means "no priorities" in RabbitMQ.
                    out.max_priority = (p > 0).then_some(p as u8);
                }
                "x-overflow" => {
                    out.overflow = Some(match string(arg, v)?.as_str() {
                        "drop-head" => Overflow::DropHead,
                        "reject-publish" => Overflow::RejectPublish,
                        "reject-publish-dlx" => Overflow::RejectPublishDlx,
                        _ => return Err(bad(arg, &"invalid_overflow")),
                    })
                }
                "x-dead-letter-exchange" => {
                    let Some(x) = as_string(v) else {
                        return Err(AmqpError::precondition(format_args!(
                            "invalid type '{}' for arg '{arg}' in queue '{queue}' in vhost '{vhost}'",
                            type_name(v)
                        )));
                    };
                    out.dead_letter_exchange = Some(x);
                }
                "x-dead-letter-routing-key" => out.dead_letter_routing_key = Some(string(arg, v)?),
                "x-single-active-consumer" => match v {
                    AMQPValue::Boolean(b) => out.single_active_consumer = *b,
                    other => {
                        return Err(bad(
                            arg,
                            &format_args!("{{unacceptable_type,{}}}", type_name(other)),
                        ));
                    }
                },
                "x-queue-type" => {
                    let t = string(arg, v)?;
                    if !matches!(t.as_str(), "classic" | "quorum" | "stream") {
                        return Err(bad(arg, &format_args!("\"unsupported queue type '{t}'\"")));
                    }
                    out.quorum = t == "quorum";
                }
                "x-delivery-limit" => out.delivery_limit = Some(non_negative(arg, v)?),
                "x-queue-mode" => {
                    let m = string(arg, v)?;
                    if !matches!(m.as_str(), "default" | "lazy") {
                        return Err(bad(arg, &format_args!("\"unsupported queue mode '{m}'\"")));
                    }
                }
                _ => {}
            }
        }
        if !out.quorum {
            out.delivery_limit = None;
        }
        if out.dead_letter_routing_key.is_some() && out.dead_letter_exchange.is_none() {
            return Err(bad(
                "x-dead-letter-routing-key",
                &"routing_key_but_no_dlx_defined",
            ));
        }
        Ok(out)
    }
}

/// What a queue is declared as, beside its arguments: the properties a queue type may refuse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeclaredAs {
    pub(crate) durable: bool,
    pub(crate) exclusive: bool,
    pub(crate) auto_delete: bool,
    /// Declared with an empty name (the broker picks one).
    pub(crate) server_named: bool,
}

/// RabbitMQ 3.10's refusals for a quorum queue (rabbit_quorum_queue:declare): a quorum
/// queue is durable, not exclusive, not auto-delete, named by its client, and has no
/// priorities. Checked before anything is created, for AMQP and HTTP declares alike.
pub(crate) fn check_queue_type(
    arguments: &FieldTable,
    args: &QueueArgs,
    declared: DeclaredAs,
    queue: &str,
    vhost: &str,
) -> AmqpResult {
    if !args.quorum {
        return Ok(());
    }
    if declared.server_named {
        return Err(AmqpError::precondition(
            "Cannot declare a server-named queue for type rabbit_quorum_queue",
        ));
    }
    if arguments.inner().contains_key("x-max-priority") {
        return Err(AmqpError::precondition(format_args!(
            "invalid arg 'x-max-priority' for queue '{queue}' in vhost '{vhost}' of queue type rabbit_quorum_queue"
        )));
    }
    let property = if !declared.durable {
        "non-durable"
    } else if declared.exclusive {
        "exclusive-owner"
    } else if declared.auto_delete {
        "auto-delete"
    } else {
        return Ok(());
    };
    Err(AmqpError::precondition(format_args!(
        "invalid property '{property}' for queue '{queue}' in vhost '{vhost}'"
    )))
}

/// 406 when a queue redeclare's arguments differ from the queue's, in RabbitMQ's words.
pub(crate) fn assert_equivalent(
    received: &FieldTable,
    current: &FieldTable,
    queue: &str,
    vhost: &str,
) -> AmqpResult {
    assert_args_equivalent(
        received,
        current,
        EQUIVALENCE_CHECKED,
        "queue",
        queue,
        vhost,
    )
}

/// 406 when any of `names` differs between a redeclare and the current object.
pub(crate) fn assert_args_equivalent(
    received: &FieldTable,
    current: &FieldTable,
    names: &[&str],
    kind: &str,
    object: &str,
    vhost: &str,
) -> AmqpResult {
    for name in names {
        let r = received.inner().get(*name);
        let c = current.inner().get(*name);
        let same = match (r, c) {
            (None, None) => true,
            (Some(a), Some(b)) => match (as_int(a), as_int(b)) {
                (Some(x), Some(y)) => x == y,
                _ => as_string(a)
                    .zip(as_string(b))
                    .map_or(a == b, |(x, y)| x == y),
            },
            _ => false,
        };
        if !same {
            let describe = |v: Option<&AMQPValue>| match v {
                None => "none".to_string(),
                Some(v) => format!("the value '{}' of type '{}'", display(v), type_name(v)),
            };
            return Err(AmqpError::precondition(format_args!(
                "inequivalent arg '{name}' for {kind} '{object}' in vhost '{vhost}': received {} but current is {}",
                describe(r),
                describe(c)
            )));
        }
    }
    Ok(())
}

/// Declare arguments kept in their AMQP encoding. A queue reads its table only to
/// answer a redeclare or a listing, and decoded even one argument costs ~700 bytes (a
/// B-tree node) per queue; encoded it is its wire size, and nothing when empty.
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedTable(Box<[u8]>);

impl PackedTable {
    pub(crate) fn pack(t: &FieldTable) -> PackedTable {
        if t.inner().is_empty() {
            return PackedTable::default();
        }
        match cookie_factory::r#gen(
            amq_protocol::types::generation::gen_field_table(t),
            Vec::new(),
        ) {
            Ok((v, _)) => PackedTable(v.into_boxed_slice()),
            Err(_) => PackedTable::default(),
        }
    }

    /// The table (empty when there is none).
    pub(crate) fn table(&self) -> FieldTable {
        if self.0.is_empty() {
            return FieldTable::default();
        }
        amq_protocol::types::parsing::parse_field_table(&self.0[..])
            .map(|(_, t)| t)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn packed_tables_round_trip() {
        let mut t = FieldTable::default();
        t.insert("x-expires".into(), AMQPValue::LongLongInt(60_000));
        t.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("dlx".into()),
        );
        let p = PackedTable::pack(&t);
        assert_eq!(p.table(), t);
        assert!(PackedTable::pack(&FieldTable::default()).0.is_empty());
        assert_eq!(PackedTable::default().table(), FieldTable::default());
    }

    #[test]
    fn parses_and_refuses_like_rabbitmq() {
        let args = table(&[
            ("x-message-ttl", AMQPValue::LongInt(100)),
            ("x-max-priority", AMQPValue::ShortShortUInt(10)),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString("dlx".into()),
            ),
        ]);
        let a = QueueArgs::parse(&args, "q", "/").unwrap();
        assert_eq!(a.message_ttl, Some(100));
        assert_eq!(a.max_priority, Some(10));
        assert_eq!(a.overflow, Some(Overflow::RejectPublish));
        let bad = table(&[("x-message-ttl", AMQPValue::LongString("abc".into()))]);
        let e = QueueArgs::parse(&bad, "q", "/").unwrap_err();
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\""
        );
        let neg = table(&[("x-max-length", AMQPValue::LongInt(-1))]);
        assert!(
            QueueArgs::parse(&neg, "q", "/")
                .unwrap_err()
                .text
                .ends_with("{value_negative,-1}")
        );
    }

    #[test]
    fn equivalence_compares_values_not_encodings() {
        let a = table(&[("x-message-ttl", AMQPValue::LongInt(100))]);
        let b = table(&[("x-message-ttl", AMQPValue::LongLongInt(100))]);
        assert!(assert_equivalent(&a, &b, "q", "/").is_ok());
        let e = assert_equivalent(&FieldTable::default(), &a, "q", "/").unwrap_err();
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received none but current is the value '100' of type 'signedint'"
        );
    }
}
