//! The values inputs draw from: methods a client sends on a channel, and names, keys,
//! types and arguments shared by all inputs so that declares, binds, publishes and gets
//! meet.

/// What a client sends on an open channel (the rest of `METHODS` it should not).
pub(super) const CLIENT_CHANNEL_METHODS: &[&str] = &[
    "channel.flow",
    "channel.close",
    "access.request",
    "exchange.declare",
    "exchange.delete",
    "exchange.bind",
    "exchange.unbind",
    "queue.declare",
    "queue.bind",
    "queue.purge",
    "queue.delete",
    "queue.unbind",
    "basic.qos",
    "basic.consume",
    "basic.cancel",
    "basic.publish",
    "basic.get",
    "basic.ack",
    "basic.reject",
    "basic.recover-async",
    "basic.recover",
    "basic.nack",
    "confirm.select",
    "tx.select",
    "tx.commit",
    "tx.rollback",
];

/// Names and keys shared by all inputs, so declares, binds, publishes and gets meet.
pub(super) const NAMES: &[&[u8]] = &[
    b"",
    b"q",
    b"q2",
    b"fz",
    b"dlx",
    b"amq.direct",
    b"amq.fanout",
    b"amq.topic",
    b"amq.headers",
    b"amq.match",
    b"amq.gen-x",
    b"amq.rabbitmq.reply-to",
];
pub(super) const KEYS: &[&[u8]] = &[b"", b"q", b"q2", b"fz", b"#", b"*", b"a.b", b"*.b", b"a.#"];
pub(super) const KINDS: &[&[u8]] = &[b"direct", b"fanout", b"topic", b"headers", b"x-bogus", b""];
pub(super) const TAGS: &[&[u8]] = &[b"", b"t1", b"t2"];
pub(super) const VHOSTS: &[&[u8]] = &[b"/", b"", b"nope"];
pub(super) const MECHANISMS: &[&[u8]] = &[b"PLAIN", b"AMQPLAIN", b"EXTERNAL", b""];
pub(super) const X_ARGS: &[&[u8]] = &[
    b"x-message-ttl",
    b"x-expires",
    b"x-max-length",
    b"x-max-length-bytes",
    b"x-overflow",
    b"x-dead-letter-exchange",
    b"x-dead-letter-routing-key",
    b"x-max-priority",
    b"x-single-active-consumer",
    b"x-queue-type",
    b"x-queue-mode",
    b"x-priority",
    b"x-delivery-limit",
    b"alternate-exchange",
    b"x-match",
    b"CC",
    b"BCC",
];
pub(super) const X_STRINGS: &[&[u8]] = &[
    b"",
    b"drop-head",
    b"reject-publish",
    b"reject-publish-dlx",
    b"classic",
    b"quorum",
    b"stream",
    b"lazy",
    b"all",
    b"any",
    b"dlx",
    b"q",
];
pub(super) const EXPIRATIONS: &[&[u8]] = &[
    b"0",
    b"1",
    b"60000",
    b"-1",
    b"-0",
    b"abc",
    b"",
    b"315360000000",
    b"315360000001",
    b"99999999999999999999999999",
];
