//! The management API over TLS. axum takes connections from a `Listener`, one at a time;
//! a TLS handshake done there would let one slow or silent client stall every other, so
//! a task accepts sockets and runs each handshake on its own task (bounded by the
//! handshake timeout), and the listener hands axum the finished streams.

use crate::broker::wire::tls::handshake;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Finished handshakes waiting for axum; a few, so a burst is not refused.
const QUEUE: usize = 64;

/// TLS connections ready for HTTP.
pub(super) struct Listener {
    /// Streams whose handshake succeeded, with their peer address.
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    /// The bound address, reported by `local_addr`.
    local: SocketAddr,
    /// The accepting task; stopped with the listener.
    acceptor: JoinHandle<()>,
}

impl Listener {
    /// Start accepting on `listener`.
    pub(super) fn new(listener: TcpListener, tls: TlsAcceptor) -> Listener {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(QUEUE);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!("management API accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let tx = tx.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Some(stream) = handshake(&tls, stream, peer).await {
                        let _ = tx.send((stream, peer)).await;
                    }
                });
            }
        });
        Listener {
            ready,
            local,
            acceptor,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task is gone (only when we are being dropped): wait for the
            // shutdown that is already under way.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
