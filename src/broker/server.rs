//! The accept loop (mini-redis shape): one task per connection, every loop watching the
//! shutdown signal; on shutdown every connection is closed with 320 CONNECTION_FORCED
//! and given a bounded time to finish.

use super::alarm::{self, AlarmControl};
use super::config::BrokerConfig;
use super::connection;
use super::log;
use super::mgmt;
use super::state::BrokerState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long connections get to close cleanly after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound broker, ready to run.
#[derive(Debug)]
pub struct Server {
    /// The AMQP listener (bound in `bind` so `--port 0` can be reported before serving).
    listener: TcpListener,
    /// The management HTTP API's listener (same address, `mgmt_port`); `None` when that
    /// port was taken (RabbitMQ's own management plugin, say): AMQP is served regardless.
    mgmt: Option<TcpListener>,
    /// Everything connections share.
    state: Arc<BrokerState>,
}

impl Server {
    /// Bind the AMQP listener and the management API's (on the same interface).
    pub async fn bind(config: BrokerConfig) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.amqp_addr).await?;
        let mgmt_addr = SocketAddr::new(config.amqp_addr.ip(), config.mgmt_port);
        let mgmt = match TcpListener::bind(mgmt_addr).await {
            Ok(l) => Some(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                log::error(format_args!(
                    "management API not started: {mgmt_addr} is in use ({e}); pass --mgmt-port 0 for a free port"
                ));
                None
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("management API on {mgmt_addr}: {e}"),
                ));
            }
        };
        Ok(Server {
            listener,
            mgmt,
            state: Arc::new(BrokerState::open(config)?),
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has a local address; fall back to the configured one.
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.amqp_addr)
    }

    /// The management HTTP API's bound address (with the real port when 0 was asked
    /// for); `None` when its port was in use.
    pub fn mgmt_addr(&self) -> Option<SocketAddr> {
        self.mgmt.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle to change the memory watermark and disk free limit while the broker runs.
    pub fn alarm_control(&self) -> AlarmControl {
        AlarmControl {
            alarms: self.state.alarms.clone(),
        }
    }

    /// Serve until `shutdown` resolves, then close every connection.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let amqp_addr = self.local_addr();
        let mgmt = self.mgmt.map(|listener| {
            tokio::spawn(mgmt::serve(
                listener,
                self.state.clone(),
                amqp_addr,
                stop_rx.clone(),
            ))
        });
        tokio::spawn(alarm::monitor(self.state.alarms.clone(), stop_rx.clone()));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(connection::serve(self.state.clone(), stream, peer, stop_rx.clone()));
                    }
                    Err(e) => {
                        // EMFILE and friends: log, back off briefly, keep serving the others.
                        log::error(format_args!("accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            connections.abort_all();
        }
        // In-flight HTTP requests finish; then the API task ends on its own.
        if let Some(mgmt) = mgmt
            && tokio::time::timeout(DRAIN_TIMEOUT, mgmt).await.is_err()
        {
            log::error(format_args!("management API did not stop in time"));
        }
    }
}
