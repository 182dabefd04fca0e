//! The broker's domain: vhosts with their exchanges, queues and bindings, messages,
//! dead-lettering, arguments and policies. `topology` (methods on the vhost) is the one
//! service AMQP and HTTP call to change the topology; this layer persists through
//! `store` and never calls up into `amqp` or `mgmt`.
//!
//! - `vhost`      a vhost's exchanges and queues, their locks and durable records
//! - `topology`   declare, delete, bind, unbind, purge: permission, equivalence, limits,
//!   the durable record, creation (the one path AMQP and HTTP share)
//! - `restore`    start-up's door: durable exchanges, queues and bindings from the store
//! - `route`      where a publish goes: bindings, exchange-to-exchange, alternate exchange
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
mod restore;
mod route;
pub(crate) mod topology;
pub(crate) mod vhost;
