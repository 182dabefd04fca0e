//! `rmq serve`: run the embedded broker in the foreground until Ctrl-C or SIGTERM.

use crate::broker::config::parse_size;
use crate::broker::{BrokerConfig, MemoryWatermark, Server, TlsConfig, log};
use crate::exit::{self, coded};
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Run the embedded AMQP 0-9-1 broker.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq serve                      # amqp://127.0.0.1:5672\n  rmq serve --port 0             # pick a free port and print it\n  rmq serve --user app:secret --vhost staging\n  rmq serve --tls-cert server.pem --tls-key server.key            # also amqps://127.0.0.1:5671, https API\n  rmq serve --tls-cert server.pem --tls-key server.key --tls-ca-cert ca.pem --tls-verify-peer\n\nTLS flags mirror RabbitMQ's ssl_options: --tls-cert = certfile, --tls-key = keyfile,\n--tls-ca-cert = cacertfile, --tls-verify-peer = verify_peer with fail_if_no_peer_cert = true."
)]
pub(crate) struct ServeArgs {
    /// Address to listen on (loopback by default: exposing a broker is a choice).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// AMQP port; 0 picks a free one and prints it.
    #[arg(long, default_value_t = 5672)]
    port: u16,
    /// Management HTTP API port (RabbitMQ-compatible /api and Prometheus /metrics); 0 picks a free one.
    #[arg(long, default_value_t = 15672)]
    mgmt_port: u16,
    /// Directory for durable queues, exchanges, bindings and persistent messages
    /// [default: $XDG_DATA_HOME/rmq, else ~/.local/share/rmq].
    #[arg(long, value_name = "DIR", conflicts_with = "in_memory")]
    data_dir: Option<PathBuf>,
    /// Keep everything in memory: nothing survives a restart.
    #[arg(long)]
    in_memory: bool,
    /// An administrator as NAME:PASSWORD with full permissions on `/` and every --vhost
    /// (repeatable). When no user exists at all, `guest:guest` is created (loopback only).
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user)]
    users: Vec<(String, String)>,
    /// Load users, vhosts, permissions, exchanges, queues and bindings from a RabbitMQ
    /// definitions export (JSON) at start.
    #[arg(long, value_name = "FILE")]
    definitions: Option<PathBuf>,
    /// A virtual host to create at start (repeatable); `/` always exists.
    #[arg(long = "vhost", value_name = "NAME")]
    vhosts: Vec<String>,
    /// Heartbeat interval proposed to clients, in seconds (0 disables).
    #[arg(long, default_value_t = 60)]
    heartbeat: u16,
    /// Largest accepted message body, in bytes (RabbitMQ 3.10: 128 MiB).
    #[arg(long, default_value_t = 128 * 1024 * 1024)]
    max_message_size: u64,
    /// Close a channel (406) whose delivery stays unacknowledged this long, requeueing it
    /// (RabbitMQ's consumer_timeout); 0 disables.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    consumer_timeout: u64,
    /// Serve amqps (and the management API over https) with this PEM certificate chain,
    /// leaf first (RabbitMQ's ssl_options.certfile). Plain AMQP keeps being served.
    #[arg(long, value_name = "FILE", requires = "tls_key", help_heading = "TLS")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (ssl_options.keyfile).
    #[arg(long, value_name = "FILE", requires = "tls_cert", help_heading = "TLS")]
    tls_key: Option<PathBuf>,
    /// amqps port (RabbitMQ: 5671); 0 picks a free one and prints it.
    #[arg(
        long,
        default_value_t = 5671,
        requires = "tls_cert",
        help_heading = "TLS"
    )]
    tls_port: u16,
    /// PEM CA certificates that client certificates must be signed by (ssl_options.cacertfile).
    #[arg(
        long,
        value_name = "FILE",
        requires_all = ["tls_cert", "tls_verify_peer"],
        help_heading = "TLS"
    )]
    tls_ca_cert: Option<PathBuf>,
    /// Require amqps clients to present a certificate signed by --tls-ca-cert, refusing the
    /// handshake otherwise (verify_peer, fail_if_no_peer_cert = true). The https API does
    /// not ask for client certificates.
    #[arg(long, requires = "tls_ca_cert", help_heading = "TLS")]
    tls_verify_peer: bool,
    /// With --tls-verify-peer: accept clients that present no certificate, still refusing
    /// invalid ones (fail_if_no_peer_cert = false).
    #[arg(long, requires = "tls_verify_peer", help_heading = "TLS")]
    tls_peer_cert_optional: bool,
    /// Refuse new connections (530 NOT_ALLOWED at connection.open) while this many are
    /// open (RabbitMQ's connection_max) [default: unlimited].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Block publishing connections while the broker's memory (RSS) is above this: a
    /// fraction of RAM (0.4; the cgroup limit counts when lower) or a size (512MiB, 2GB,
    /// bytes) (RabbitMQ's vm_memory_high_watermark).
    #[arg(long, value_name = "FRACTION|SIZE", default_value = "0.4")]
    memory_high_watermark: MemoryWatermark,
    /// Block publishing connections while the data directory's filesystem has less free
    /// space than this (50MB, 1GiB, bytes) (RabbitMQ's disk_free_limit); not checked with
    /// --in-memory.
    #[arg(long, value_name = "SIZE", default_value = "50MB", value_parser = parse_size)]
    disk_free_limit: u64,
    /// Size of the segment files of a durable queue's message log (16MiB, 64KiB, bytes):
    /// disk space is reclaimed a segment at a time.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_segment_size)]
    log_segment_size: u64,
    /// Only log errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Log more (repeat for more detail).
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log lines as text (timestamp, level, module, message) or as one JSON object per
    /// line for log shippers (default: RMQ_LOG_FORMAT, else text). RUST_LOG filters.
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((name, pass)) if !name.is_empty() => Ok((name.to_string(), pass.to_string())),
        _ => Err(format!("expected NAME:PASSWORD, got '{s}'")),
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(format) = args.log_format.as_deref().and_then(log::LogFormat::parse) {
        log::set_format(format);
    }
    log::set_level(if args.quiet { 0 } else { 1 + args.verbose });
    let mut vhosts = vec!["/".to_string()];
    vhosts.extend(args.vhosts.into_iter().filter(|v| v != "/"));
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig {
            ca_cert: args.tls_ca_cert,
            fail_if_no_peer_cert: args.tls_verify_peer && !args.tls_peer_cert_optional,
            ..TlsConfig::new(args.tls_port, cert, key)
        }),
        _ => None,
    };
    let config = BrokerConfig {
        tls,
        amqp_addr: SocketAddr::new(args.bind, args.port),
        mgmt_port: args.mgmt_port,
        users: args.users,
        definitions: args.definitions,
        vhosts,
        heartbeat: args.heartbeat,
        max_message_size: args.max_message_size,
        consumer_timeout: (args.consumer_timeout > 0)
            .then(|| std::time::Duration::from_secs(args.consumer_timeout)),
        max_connections: args.max_connections,
        memory_high_watermark: args.memory_high_watermark,
        disk_free_limit: args.disk_free_limit,
        log_segment_bytes: args.log_segment_size,
        data_dir: if args.in_memory {
            None
        } else {
            Some(match args.data_dir {
                Some(dir) => dir,
                None => default_data_dir()?,
            })
        },
        ..BrokerConfig::default()
    };
    if let Some(dir) = &config.data_dir {
        log::info(format_args!("data directory {}", dir.display()));
    }
    let server = Server::bind(config).await.map_err(|e| {
        // A bare OS error is the AMQP port's; the amqps port's comes wrapped with its address.
        let plain = e.get_ref().is_none();
        match e.kind() {
            std::io::ErrorKind::AddrInUse if plain => anyhow::anyhow!(
                "cannot listen on {}:{}: {e} (is another broker running? try --port 0)",
                args.bind,
                args.port
            ),
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                "cannot listen for {e} (is another broker running? try --tls-port 0)"
            ),
            // Unreadable or mismatched TLS files: bad input, named in the message.
            std::io::ErrorKind::InvalidInput => {
                coded(exit::DATA_ERR, format!("cannot start the broker: {e}"))
            }
            _ => anyhow::anyhow!("cannot start the broker: {e}"),
        }
    })?;
    let addr = server.local_addr();
    let mgmt = server.mgmt_addr();
    let tls = server.tls_addr();
    // One write, errors ignored: scripts read the first line and may close the pipe, and a
    // broker must not die of a reader that went away.
    let mut banner = format!("rmq serve: listening on amqp://{addr}\n");
    if let Some(tls) = tls {
        banner.push_str(&format!("rmq serve: listening on amqps://{tls}\n"));
    }
    if let Some(mgmt) = mgmt {
        let scheme = if tls.is_some() { "https" } else { "http" };
        banner.push_str(&format!("rmq serve: management API on {scheme}://{mgmt}\n"));
        // One setting that carries both ports: `rmq list-queues` and the other API
        // commands find this API from it, not RabbitMQ's default 15672.
        banner.push_str(&format!(
            "rmq serve: for rmq clients: export RMQ_URL='amqp://{addr}/%2F?api_port={}'\n",
            mgmt.port()
        ));
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    log::info(format_args!("AMQP 0-9-1 broker ready on amqp://{addr}"));
    if let Some(tls) = tls {
        log::info(format_args!("amqps (TLS) ready on amqps://{tls}"));
    }
    // Ctrl-C or SIGTERM is a clean stop for a foreground broker; a second one ends it at once.
    server.run(super::signals::stop_signal()).await;
    log::info(format_args!("broker stopped"));
    Ok(())
}

/// The per-user data directory (XDG base directory spec).
/// A segment size: at least 4 KiB, so that a record or two do not each get a file.
fn parse_segment_size(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if n < 4096 {
        return Err(format!(
            "'{s}' is too small: segments must be at least 4KiB"
        ));
    }
    Ok(n)
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("rmq"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/rmq")),
        None => anyhow::bail!(
            "no home directory for the default data directory: pass --data-dir DIR or --in-memory"
        ),
    }
}
