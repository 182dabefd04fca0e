//! Every method of AMQP 0-9-1: its ids, its fields as typed on the wire, and the replies
//! that answer it.

/// How a field is typed on the wire, with the meaning that picks its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum F {
    Octet,
    Short,
    Long,
    LongLong,
    Bit,
    /// A bit rarely set (immediate, internal: refused or unusual when set).
    Rare,
    /// A bit rarely clear (channel.flow active, recover requeue: refused when clear).
    Mostly,
    /// A short string holding a queue or exchange name.
    Name,
    /// A short string holding a routing key.
    Key,
    /// The exchange type.
    Kind,
    /// A consumer tag.
    Tag,
    /// A virtual host.
    Vhost,
    /// A SASL mechanism.
    Mechanism,
    /// Any other short string (texts, reserved fields, locales).
    Text,
    LongStr,
    /// Queue, exchange, binding or consumer arguments.
    Args,
    /// Client or server properties.
    PropsTable,
}

/// One AMQP 0-9-1 method as the spec defines it (reserved fields included).
#[derive(Debug)]
pub(crate) struct MethodSpec {
    pub(crate) class: u16,
    pub(crate) method: u16,
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [F],
    /// The index of the `no-wait` bit among `fields`, if the method has one.
    pub(crate) nowait: Option<usize>,
    /// Methods a server answers a client's request with (same channel); empty when the
    /// method is not a client's synchronous request.
    pub(crate) replies: &'static [u16],
}

const fn m(
    class: u16,
    method: u16,
    name: &'static str,
    fields: &'static [F],
    nowait: Option<usize>,
    replies: &'static [u16],
) -> MethodSpec {
    MethodSpec {
        class,
        method,
        name,
        fields,
        nowait,
        replies,
    }
}

use F::*;

/// Every method of AMQP 0-9-1 (RabbitMQ's rabbit_framing_amqp_0_9_1, with
/// connection.blocked/unblocked/update-secret and the confirm class), in the order of
/// its fields on the wire.
pub(crate) const METHODS: &[MethodSpec] = &[
    m(
        10,
        10,
        "connection.start",
        &[Octet, Octet, PropsTable, LongStr, LongStr],
        None,
        &[],
    ),
    m(
        10,
        11,
        "connection.start-ok",
        &[PropsTable, Mechanism, LongStr, Text],
        None,
        &[],
    ),
    m(10, 20, "connection.secure", &[LongStr], None, &[]),
    m(10, 21, "connection.secure-ok", &[LongStr], None, &[]),
    m(10, 30, "connection.tune", &[Short, Long, Short], None, &[]),
    m(
        10,
        31,
        "connection.tune-ok",
        &[Short, Long, Short],
        None,
        &[],
    ),
    m(10, 40, "connection.open", &[Vhost, Text, Bit], None, &[]),
    m(10, 41, "connection.open-ok", &[Text], None, &[]),
    m(
        10,
        50,
        "connection.close",
        &[Short, Text, Short, Short],
        None,
        &[51],
    ),
    m(10, 51, "connection.close-ok", &[], None, &[]),
    m(10, 60, "connection.blocked", &[Text], None, &[]),
    m(10, 61, "connection.unblocked", &[], None, &[]),
    m(
        10,
        70,
        "connection.update-secret",
        &[LongStr, Text],
        None,
        &[71],
    ),
    m(10, 71, "connection.update-secret-ok", &[], None, &[]),
    m(20, 10, "channel.open", &[Text], None, &[11]),
    m(20, 11, "channel.open-ok", &[LongStr], None, &[]),
    m(20, 20, "channel.flow", &[Mostly], None, &[21]),
    m(20, 21, "channel.flow-ok", &[Bit], None, &[]),
    m(
        20,
        40,
        "channel.close",
        &[Short, Text, Short, Short],
        None,
        &[41],
    ),
    m(20, 41, "channel.close-ok", &[], None, &[]),
    m(
        30,
        10,
        "access.request",
        &[Text, Bit, Bit, Bit, Bit, Bit],
        None,
        &[11],
    ),
    m(30, 11, "access.request-ok", &[Short], None, &[]),
    m(
        40,
        10,
        "exchange.declare",
        &[Short, Name, Kind, Bit, Bit, Bit, Rare, Bit, Args],
        Some(7),
        &[11],
    ),
    m(40, 11, "exchange.declare-ok", &[], None, &[]),
    m(
        40,
        20,
        "exchange.delete",
        &[Short, Name, Bit, Bit],
        Some(3),
        &[21],
    ),
    m(40, 21, "exchange.delete-ok", &[], None, &[]),
    m(
        40,
        30,
        "exchange.bind",
        &[Short, Name, Name, Key, Bit, Args],
        Some(4),
        &[31],
    ),
    m(40, 31, "exchange.bind-ok", &[], None, &[]),
    m(
        40,
        40,
        "exchange.unbind",
        &[Short, Name, Name, Key, Bit, Args],
        Some(4),
        &[51],
    ),
    m(40, 51, "exchange.unbind-ok", &[], None, &[]),
    m(
        50,
        10,
        "queue.declare",
        &[Short, Name, Bit, Bit, Bit, Bit, Bit, Args],
        Some(6),
        &[11],
    ),
    m(50, 11, "queue.declare-ok", &[Name, Long, Long], None, &[]),
    m(
        50,
        20,
        "queue.bind",
        &[Short, Name, Name, Key, Bit, Args],
        Some(4),
        &[21],
    ),
    m(50, 21, "queue.bind-ok", &[], None, &[]),
    m(50, 30, "queue.purge", &[Short, Name, Bit], Some(2), &[31]),
    m(50, 31, "queue.purge-ok", &[Long], None, &[]),
    m(
        50,
        40,
        "queue.delete",
        &[Short, Name, Bit, Bit, Bit],
        Some(4),
        &[41],
    ),
    m(50, 41, "queue.delete-ok", &[Long], None, &[]),
    m(
        50,
        50,
        "queue.unbind",
        &[Short, Name, Name, Key, Args],
        None,
        &[51],
    ),
    m(50, 51, "queue.unbind-ok", &[], None, &[]),
    m(60, 10, "basic.qos", &[Long, Short, Bit], None, &[11]),
    m(60, 11, "basic.qos-ok", &[], None, &[]),
    m(
        60,
        20,
        "basic.consume",
        &[Short, Name, Tag, Bit, Bit, Bit, Bit, Args],
        Some(6),
        &[21],
    ),
    m(60, 21, "basic.consume-ok", &[Tag], None, &[]),
    m(60, 30, "basic.cancel", &[Tag, Bit], Some(1), &[31]),
    m(60, 31, "basic.cancel-ok", &[Tag], None, &[]),
    m(
        60,
        40,
        "basic.publish",
        &[Short, Name, Key, Bit, Rare],
        None,
        &[],
    ),
    m(60, 50, "basic.return", &[Short, Text, Name, Key], None, &[]),
    m(
        60,
        60,
        "basic.deliver",
        &[Tag, LongLong, Bit, Name, Key],
        None,
        &[],
    ),
    m(60, 70, "basic.get", &[Short, Name, Bit], None, &[71, 72]),
    m(
        60,
        71,
        "basic.get-ok",
        &[LongLong, Bit, Name, Key, Long],
        None,
        &[],
    ),
    m(60, 72, "basic.get-empty", &[Text], None, &[]),
    m(60, 80, "basic.ack", &[LongLong, Bit], None, &[]),
    m(60, 90, "basic.reject", &[LongLong, Bit], None, &[]),
    m(60, 100, "basic.recover-async", &[Mostly], None, &[]),
    m(60, 110, "basic.recover", &[Mostly], None, &[111]),
    m(60, 111, "basic.recover-ok", &[], None, &[]),
    m(60, 120, "basic.nack", &[LongLong, Bit, Bit], None, &[]),
    m(85, 10, "confirm.select", &[Bit], Some(0), &[11]),
    m(85, 11, "confirm.select-ok", &[], None, &[]),
    m(90, 10, "tx.select", &[], None, &[11]),
    m(90, 11, "tx.select-ok", &[], None, &[]),
    m(90, 20, "tx.commit", &[], None, &[21]),
    m(90, 21, "tx.commit-ok", &[], None, &[]),
    m(90, 30, "tx.rollback", &[], None, &[31]),
    m(90, 31, "tx.rollback-ok", &[], None, &[]),
];

/// The spec of a method by name (a typo is a bug in the fuzzer).
pub(crate) fn spec(name: &str) -> &'static MethodSpec {
    METHODS
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no method {name}"))
}

/// The index of a method in [`METHODS`], by ids.
pub(crate) fn method_index(class: u16, method: u16) -> Option<usize> {
    METHODS
        .iter()
        .position(|m| m.class == class && m.method == method)
}
