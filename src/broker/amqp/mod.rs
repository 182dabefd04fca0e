//! AMQP 0-9-1 connections: the socket loop, the handshake, and an open connection's
//! session with its channels and method handlers. Handlers decode a method, call one
//! vhost operation in `model`, and reply; they hold no topology logic of their own.
//!
//! - `channel`          a channel's content assembly, confirm and tx state, settings
//! - `connection`       one socket: read batches, writer task, heartbeats, teardown
//! - `handshake`        protocol header, Start/Tune/Open, authentication
//! - `registry`         open connections and channels (listing, closing from outside)
//! - `session`          an open connection's channels, confirms, exceptions
//! - `session_close`    channel exceptions, releasing a channel, teardown, consumer timeout
//! - `session_confirms` publisher confirms, batched, after the fsync when needed
//! - `session_content`  content assembly: method, header, body frames
//! - `session_disk`     handlers that wait for disk work off the runtime's threads
//! - `methods_exchange` exchange.* handlers
//! - `methods_queue`    queue.* handlers
//! - `methods_basic`    basic.*, confirm.*, tx.* handlers
//! - `publish`          a complete message: checks, routing, returns, transactions

pub(crate) mod channel;
pub(crate) mod connection;
pub(crate) mod handshake;
pub(crate) mod methods_basic;
pub(crate) mod methods_exchange;
pub(crate) mod methods_queue;
pub(crate) mod publish;
pub(crate) mod registry;
pub(crate) mod session;
pub(crate) mod session_close;
pub(crate) mod session_confirms;
pub(crate) mod session_content;
pub(crate) mod session_disk;

/// The pseudo-queue a client consumes to use direct reply-to (RabbitMQ's), named by
/// basic.consume, queue.declare (passive) and the `reply-to` of a publish.
pub(crate) const REPLY_TO: &str = "amq.rabbitmq.reply-to";
