//! The broker's domain: vhosts with their exchanges, queues and bindings, messages,
//! dead-lettering, arguments and policies. `vhost` is the topology service both AMQP
//! and HTTP call; this layer persists through `store` and never calls up into `amqp`
//! or `mgmt`.
//!
//! - `vhost`      a vhost's exchanges and queues, routing across exchanges
//! - `topology`   declare, delete, bind, unbind, purge: permission, equivalence, limits,
//!   the durable record, creation (the one path AMQP and HTTP share)
//! - `exchange`   direct / fanout / topic / headers routing, exchange bindings
//! - `queue`      ready messages, consumers, dispatch, TTL, length limits, policy changes
//! - `delivery`   what a queue shares with a consuming channel: unacked, credit
//! - `message`    a published message and its content header
//! - `deadletter` dead-lettered copies with `x-death`, cycle detection
//! - `args`       the `x-` queue arguments, validated, and redeclare equivalence
//! - `policy`     policies and operator policies: validation, matching, effective arguments

pub(crate) mod args;
pub(crate) mod deadletter;
pub(crate) mod delivery;
pub(crate) mod exchange;
pub(crate) mod message;
pub(crate) mod policy;
pub(crate) mod queue;
pub(crate) mod topology;
pub(crate) mod vhost;
