//! The embedded AMQP 0-9-1 broker behind `rmq serve`.
//!
//! Layers, each a folder whose `mod.rs` maps its files. Dependencies run one way:
//! `mgmt` and `amqp` → `model` → `store`; `amqp` and `model` write through `wire`;
//! `access` and `ops` are called by the layers above them. Where a lower layer must
//! wake an upper one it calls a trait it owns (`wire::outbound::DrainWaiter`).
//!
//! - `wire`     bytes to a socket: outbound buffers with high-water marks, writer, TLS, flow
//! - `amqp`     the connection loop, handshake, and a session's channels and method handlers
//! - `model`    vhosts (the topology service), exchanges, queues, messages,
//!   dead-lettering, arguments, policies
//! - `store`    persistence: definitions log, queue message logs, group commit
//! - `access`   users, password hashes, permissions, vhost lifecycle
//! - `mgmt`     the RabbitMQ-compatible management HTTP API and `/metrics`
//! - `ops`      alarms, connection and vhost limits, counters, sysinfo, memory reclaim
//!
//! At the root, what ties the layers together:
//!
//! - `server`   accept loops (amqp, amqps) and graceful shutdown
//! - `state`    broker-wide state: vhosts, users, registry, store, direct reply-to
//! - `recover`  start-up from the data directory
//! - `config`   `BrokerConfig`: what `rmq serve`'s flags become
//! - `log`      the broker's log: levels, the line format, connection and channel events
//! - `error`    typed AMQP errors with RabbitMQ's codes and texts
//! - `fuzz_tests`, `fuzz_structured` (tests only): hostile and structured wire input

mod access;
mod amqp;
pub mod config;
pub(crate) mod error;
#[cfg(test)]
mod fuzz_structured;
#[cfg(test)]
mod fuzz_tests;
pub mod log;
mod mgmt;
mod model;
mod ops;
mod recover;
mod server;
mod state;
mod store;
mod wire;

pub use config::{BrokerConfig, MemoryWatermark, TlsConfig};
pub use ops::alarm::AlarmControl;
pub use ops::reclaim;
pub use server::Server;
