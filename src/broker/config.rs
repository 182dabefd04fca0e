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
    /// Size past which a durable queue's log starts a new segment file; segments are
    /// the unit of deletion and compaction.
    pub log_segment_bytes: u64,
    /// How long a delivery may stay unacknowledged before its channel is closed with 406
    /// and the message requeued (RabbitMQ's `consumer_timeout`, 30 minutes); None: never.
    pub consumer_timeout: Option<std::time::Duration>,
    /// TLS: when set, amqps is served on its own port beside plain AMQP, and the
    /// management API speaks https instead of http.
    pub tls: Option<TlsConfig>,
    /// Most connections open at once (RabbitMQ's `connection_max`); `None`: unlimited.
    /// Counted at connection.open, as RabbitMQ counts tracked connections.
    pub max_connections: Option<usize>,
    /// Memory use (process RSS) above which publishers are blocked (RabbitMQ's
    /// `vm_memory_high_watermark`, 0.4 of RAM by default).
    pub memory_high_watermark: MemoryWatermark,
    /// Free space on the data directory's filesystem below which publishers are blocked
    /// (RabbitMQ's `disk_free_limit`, 50 MB); not checked without a data directory.
    pub disk_free_limit: u64,
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

/// Where the memory alarm goes off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryWatermark {
    /// A fraction of the RAM available to the process (total RAM, or the cgroup limit
    /// when lower).
    Relative(f64),
    /// An absolute number of bytes.
    Absolute(u64),
}

impl std::str::FromStr for MemoryWatermark {
    type Err = String;

    /// `0.4` (a fraction of RAM, 0 < x <= 1), `512MiB` / `2GB` (a size), or plain bytes.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(x) = s.parse::<f64>()
            && x > 0.0
            && x <= 1.0
        {
            return Ok(MemoryWatermark::Relative(x));
        }
        parse_size(s).map(MemoryWatermark::Absolute).map_err(|_| {
            format!("expected a fraction of RAM (0.4) or a size (512MiB, 2GB, bytes), got '{s}'")
        })
    }
}

/// A size with RabbitMQ's units: `kB`/`MB`/`GB`/`TB` are powers of 10, `KiB`/`MiB`/`GiB`/
/// `TiB` (and the bare `k`/`M`/`G`/`T` RabbitMQ's config accepts) powers of 2.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a size such as 512MiB, 2GB or 1000000, got '{s}'"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "k" | "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        other => return Err(format!("unknown size unit '{other}' in '{s}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' is too large"))
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
            log_segment_bytes: 16 * 1024 * 1024,
            consumer_timeout: Some(std::time::Duration::from_secs(30 * 60)),
            tls: None,
            max_connections: None,
            memory_high_watermark: MemoryWatermark::Relative(0.4),
            disk_free_limit: 50_000_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_watermarks_parse_with_rabbitmqs_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("50000000"), Ok(50_000_000));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("MiB").is_err());
        assert_eq!("0.4".parse(), Ok(MemoryWatermark::Relative(0.4)));
        assert_eq!("1".parse(), Ok(MemoryWatermark::Relative(1.0)));
        assert_eq!("256MiB".parse(), Ok(MemoryWatermark::Absolute(256 << 20)));
        assert_eq!("4096".parse(), Ok(MemoryWatermark::Absolute(4096)));
        assert!("-1".parse::<MemoryWatermark>().is_err());
        assert!("1.5".parse::<MemoryWatermark>().is_err());
    }
}
