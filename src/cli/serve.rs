//! `rmq serve`: run the embedded broker in the foreground until Ctrl-C or SIGTERM.

use crate::broker::config::parse_size;
use crate::broker::{BrokerConfig, MemoryWatermark, Server, log};
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Run the embedded AMQP 0-9-1 broker.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rmq serve                      # amqp://127.0.0.1:5672\n  rmq serve --port 0             # pick a free port and print it\n  rmq serve --user app:secret --vhost staging"
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
    /// A user as NAME:PASSWORD (repeatable). Without any, `guest:guest` exists (loopback only).
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user)]
    users: Vec<(String, String)>,
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
    /// Only log errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Log more (repeat for more detail).
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((name, pass)) if !name.is_empty() => Ok((name.to_string(), pass.to_string())),
        _ => Err(format!("expected NAME:PASSWORD, got '{s}'")),
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    log::set_level(if args.quiet { 0 } else { 1 + args.verbose });
    let mut vhosts = vec!["/".to_string()];
    vhosts.extend(args.vhosts.into_iter().filter(|v| v != "/"));
    let config = BrokerConfig {
        amqp_addr: SocketAddr::new(args.bind, args.port),
        mgmt_port: args.mgmt_port,
        users: if args.users.is_empty() {
            vec![("guest".into(), "guest".into())]
        } else {
            args.users
        },
        vhosts,
        heartbeat: args.heartbeat,
        max_message_size: args.max_message_size,
        consumer_timeout: (args.consumer_timeout > 0)
            .then(|| std::time::Duration::from_secs(args.consumer_timeout)),
        max_connections: args.max_connections,
        memory_high_watermark: args.memory_high_watermark,
        disk_free_limit: args.disk_free_limit,
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
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {}:{}: {e} (is another broker running? try --port 0)",
                args.bind,
                args.port
            )
        } else {
            anyhow::anyhow!("cannot start the broker: {e}")
        }
    })?;
    let addr = server.local_addr();
    let mgmt = server.mgmt_addr();
    // One write, errors ignored: scripts read the first line and may close the pipe, and a
    // broker must not die of a reader that went away.
    let mut banner = format!("rmq serve: listening on amqp://{addr}\n");
    if let Some(mgmt) = mgmt {
        banner.push_str(&format!("rmq serve: management API on http://{mgmt}\n"));
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    log::info(format_args!("AMQP 0-9-1 broker ready on amqp://{addr}"));
    server.run(shutdown_signal()).await;
    log::info(format_args!("broker stopped"));
    Ok(())
}

/// The per-user data directory (XDG base directory spec).
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

/// Resolves on Ctrl-C or SIGTERM: either is a clean stop for a foreground broker.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
