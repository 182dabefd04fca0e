//! The broker's settings, free of clap: `cli/serve.rs` builds one, tests build their own.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Everything `rmq serve` can be told.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address for AMQP; loopback by default so a fresh broker is not exposed.
    pub amqp_addr: SocketAddr,
    /// Management HTTP API port (served by the management module once present).
    pub mgmt_port: u16,
    /// Operators as (name, password): administrators with full permissions on `/` and
    /// every vhost in `vhosts`. With none, and no user from the data directory or the
    /// definitions file, `guest:guest` exists (loopback only, as in RabbitMQ).
    pub users: Vec<(String, String)>,
    /// A RabbitMQ definitions export (users, vhosts, permissions, exchanges, queues,
    /// bindings) loaded at start-up.
    pub definitions: Option<PathBuf>,
    /// Virtual hosts that exist from the start; `/` is always there.
    pub vhosts: Vec<String>,
    /// Heartbeat the server proposes in Tune, in seconds (0 disables).
    pub heartbeat: u16,
    /// frame_max the server proposes in Tune (RabbitMQ: 131072).
    pub frame_max: u32,
    /// channel_max the server proposes in Tune (RabbitMQ: 2047).
    pub channel_max: u16,
    /// Largest message body accepted; larger publishes close the channel with 406.
    pub max_message_size: u64,
    /// Where durable state would live; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Message body bytes a durable queue keeps in memory; further persistent messages
    /// are paged out to its log and read back when they reach the head.
    pub queue_resident_bytes: u64,
    /// How long a delivery may stay unacknowledged before its channel is closed with 406
    /// and the message requeued (RabbitMQ's `consumer_timeout`, 30 minutes); None: never.
    pub consumer_timeout: Option<std::time::Duration>,
    /// TLS: when set, amqps is served on its own port beside plain AMQP, and the
    /// management API speaks https instead of http.
    pub tls: Option<TlsConfig>,
}

/// TLS settings, named after RabbitMQ's `ssl_options` so its docs carry over.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Port for amqps on the AMQP address's interface (RabbitMQ: 5671); 0 picks a free one.
    pub port: u16,
    /// The server's PEM certificate chain, leaf first (`ssl_options.certfile`).
    pub cert: PathBuf,
    /// The server's PEM private key (`ssl_options.keyfile`).
    pub key: PathBuf,
    /// PEM CA certificates that client certificates are checked against
    /// (`ssl_options.cacertfile`); `None`: client certificates are not asked for.
    pub ca_cert: Option<PathBuf>,
    /// A client without a certificate is refused (`fail_if_no_peer_cert = true`); when
    /// false, one that presents a certificate must still present a valid one
    /// (`verify = verify_peer`). Only meaningful with `ca_cert`.
    pub fail_if_no_peer_cert: bool,
}

impl TlsConfig {
    /// TLS on `port` with this certificate and key, no client certificates.
    pub fn new(port: u16, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsConfig {
        TlsConfig {
            port,
            cert: cert.into(),
            key: key.into(),
            ca_cert: None,
            fail_if_no_peer_cert: false,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            amqp_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5672),
            mgmt_port: 15672,
            users: Vec::new(),
            definitions: None,
            vhosts: vec!["/".into()],
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            max_message_size: 128 * 1024 * 1024,
            data_dir: None,
            queue_resident_bytes: 16 * 1024 * 1024,
            consumer_timeout: Some(std::time::Duration::from_secs(30 * 60)),
            tls: None,
        }
    }
}
