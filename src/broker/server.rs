//! The accept loop (mini-redis shape): one task per connection, every loop watching the
//! shutdown signal; on shutdown every connection is closed with 320 CONNECTION_FORCED
//! and given a bounded time to finish.

use super::config::BrokerConfig;
use super::mgmt;
use super::state::BrokerState;
use crate::broker::amqp::connection;
use crate::broker::ops::alarm::{self, AlarmControl};
use crate::broker::wire::tls::Acceptors;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

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
    /// The amqps listener and the TLS set-up for it and for https, when TLS is configured.
    tls: Option<(TcpListener, Acceptors)>,
    /// Everything connections share.
    state: Arc<BrokerState>,
}

impl Server {
    /// Bind the AMQP listener, the amqps one when TLS is configured, and the management
    /// API's (all on the same interface). Unreadable TLS files fail here, before serving.
    pub async fn bind(config: BrokerConfig) -> std::io::Result<Server> {
        let acceptors = config.tls.as_ref().map(Acceptors::load).transpose()?;
        let listener = TcpListener::bind(config.amqp_addr).await?;
        let tls = match (&config.tls, acceptors) {
            (Some(t), Some(acceptors)) => {
                let addr = SocketAddr::new(config.amqp_addr.ip(), t.port);
                let l = TcpListener::bind(addr).await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("amqps listener on {addr}: {e}"))
                })?;
                Some((l, acceptors))
            }
            _ => None,
        };
        let mgmt_addr = SocketAddr::new(config.amqp_addr.ip(), config.mgmt_port);
        let mgmt = match TcpListener::bind(mgmt_addr).await {
            Ok(l) => Some(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::error!(
                    "management API not started: {mgmt_addr} is in use ({e}); pass --mgmt-port 0 for a free port"
                );
                None
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("management API on {mgmt_addr}: {e}"),
                ));
            }
        };
        let state = Arc::new(BrokerState::open(config)?);
        // Users and vhosts came in with the state; the topology needs them first.
        if let Some(path) = &state.config.definitions {
            let doc = crate::broker::access::lifecycle::read_definitions(path)?;
            mgmt::import_topology(&state, &doc).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
        }
        Ok(Server {
            listener,
            mgmt,
            tls,
            state,
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

    /// The amqps listener's bound address, when TLS is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
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
        let listeners = mgmt::Listeners {
            amqp: self.local_addr(),
            amqps: self.tls_addr(),
        };
        let https = self.tls.as_ref().map(|(_, a)| a.http.clone());
        let mgmt = self.mgmt.map(|listener| {
            tokio::spawn(mgmt::serve(
                listener,
                https,
                self.state.clone(),
                listeners,
                stop_rx.clone(),
            ))
        });
        let amqps = self.tls.map(|(l, a)| (l, a.amqp));
        tokio::spawn(alarm::monitor(self.state.alarms.clone(), stop_rx.clone()));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(connection::serve_tcp(self.state.clone(), stream, peer, stop_rx.clone()));
                    }
                    Err(e) => accept_failed(e).await,
                },
                accepted = accept_tls(amqps.as_ref()) => match accepted {
                    Ok((stream, peer, acceptor)) => {
                        connections.spawn(crate::broker::amqp::connection::serve_tls(self.state.clone(), acceptor, stream, peer, stop_rx.clone()));
                    }
                    Err(e) => accept_failed(e).await,
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
            tracing::error!("management API did not stop in time");
        }
    }
}

/// Accept on the amqps listener if there is one; never resolves without one.
async fn accept_tls(
    amqps: Option<&(TcpListener, TlsAcceptor)>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, TlsAcceptor)> {
    match amqps {
        Some((l, acceptor)) => l
            .accept()
            .await
            .map(|(stream, peer)| (stream, peer, acceptor.clone())),
        None => std::future::pending().await,
    }
}

/// EMFILE and friends: log, back off briefly, keep serving the others.
async fn accept_failed(e: std::io::Error) {
    tracing::error!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
