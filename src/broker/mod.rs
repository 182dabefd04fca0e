//! The embedded AMQP 0-9-1 broker behind `rmq serve`.
//!
//! - `server`         accept loops (amqp, amqps) and graceful shutdown
//! - `alarm`          memory and disk alarms: the sampling task, run-time limits
//! - `sysinfo`        process RSS, available RAM (cgroup-aware), free disk space
//! - `flow`           a connection's throttle: blocked/unblocked while an alarm is on
//! - `conn_limit`     the node-wide connection limit (`--max-connections`)
//! - `connection`     one socket: read batches, writer task, heartbeats, teardown
//! - `handshake`      protocol header, Start/Tune/Open, authentication
//! - `codec`          frames on the wire around amq-protocol
//! - `bounds`         wire values bounded by construction: table depth, short strings
//! - `session`        an open connection's channels, confirms, exceptions
//! - `session_close` channel exceptions, releasing a channel, teardown, consumer timeout
//! - `session_confirms` publisher confirms, batched, after the fsync when needed
//! - `session_disk`     handlers that wait for disk work off the runtime's threads
//! - `session_content` content assembly: method, header, body frames
//! - `methods_exchange` exchange.* handlers
//! - `methods_queue`  queue.* handlers
//! - `methods_basic`  basic.*, confirm.*, tx.* handlers
//! - `publish`        a complete message: checks, routing, returns, transactions
//! - `channel`        what queues share with a channel: unacked, credit
//! - `outbound`       a connection's outbound frames: writer hand-off, direct writes
//! - `reclaim`        freed memory back to the OS while the memory alarm is on
//! - `sink`           a socket's writing half: writer task, direct writes on plain TCP
//! - `queue`          ready messages, consumers, dispatch, TTL, length limits, policy changes
//! - `queue_args`     the `x-` queue arguments, validated, and redeclare equivalence
//! - `policy`         policies and operator policies: validation, matching, effective arguments
//! - `ready`          ready messages in FIFO or priority order
//! - `deadletter`     dead-lettered copies with `x-death`, cycle detection
//! - `exchange`       direct / fanout / topic / headers routing, exchange bindings
//! - `vhost`          registry of exchanges and queues, routing across exchanges
//! - `vhost_limits`   per-vhost max-connections and max-queues
//! - `state`          broker-wide state: vhosts, users, direct reply-to
//! - `auth`           users, password hashes, per-vhost permissions
//! - `access`         seeding and persisting users, vhosts, permissions; vhost lifecycle
//! - `registry`       open connections and channels (listing, closing from outside)
//! - `counters`       message counters and rates for `message_stats` and `/metrics`
//! - `mgmt`           the RabbitMQ-compatible management HTTP API and `/metrics`
//! - `store`          persistence: definitions log, queue message logs, group commit
//! - `recover`        start-up from the data directory
//! - `tls`            amqps / https: rustls set-up from PEM files, the bounded TLS handshake
//! - `message`        a published message and its content header
//! - `error`          typed AMQP errors with RabbitMQ's codes and texts
//! - `erlang_term`    Erlang terms printed as RabbitMQ's texts print them (`~p`)
//! - `pcre`           RabbitMQ's (PCRE) patterns read with the regex crate, PCRE's error texts

mod access;
mod alarm;
mod auth;
mod bounds;
mod channel;
pub(crate) mod codec;
pub mod config;
mod conn_limit;
mod connection;
mod counters;
mod deadletter;
mod erlang_term;
mod error;
mod exchange;
mod flow;
#[cfg(test)]
mod fuzz_structured;
#[cfg(test)]
mod fuzz_tests;
mod handshake;
pub mod log;
pub(crate) mod message;
mod methods_basic;
mod methods_exchange;
mod methods_queue;
mod mgmt;
mod outbound;
mod pcre;
mod policy;
mod publish;
mod queue;
mod queue_args;
mod ready;
pub mod reclaim;
mod recover;
mod registry;
mod server;
mod session;
mod session_close;
mod session_confirms;
mod session_content;
mod session_disk;
mod sink;
mod state;
mod store;
mod sysinfo;
mod tls;
mod vhost;
mod vhost_limits;

pub use alarm::AlarmControl;
pub use config::{BrokerConfig, MemoryWatermark, TlsConfig};
pub use server::Server;
