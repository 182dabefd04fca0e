//! Bytes between the broker and a socket, below the AMQP session: what a connection
//! writes and how fast. Frame encoding itself is the crate-level `codec` (shared with
//! `rmq perf`). Nothing here knows about sessions or queues; a queue that waits for a
//! writer to drain registers through the `DrainWaiter` trait this layer owns.
//!
//! - `outbound` a connection's outbound frames: writer hand-off, high-water marks, direct writes
//! - `sink`     a socket split for the read loop and the writer task; direct writes on plain TCP
//! - `flow`     a connection's throttle: blocked/unblocked while an alarm is on
//! - `tls`      amqps / https: rustls set-up from PEM files, the bounded TLS handshake

pub(crate) mod flow;
pub(crate) mod outbound;
pub(crate) mod sink;
pub(crate) mod tls;

/// RabbitMQ's handshake_timeout, for the TLS and the AMQP handshake alike: a peer that
/// does not finish negotiating in time is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
