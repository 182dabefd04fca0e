//! amqps and https: rustls server configurations built once at start-up from the PEM
//! files, and the TLS handshake of an accepted socket, bounded like the AMQP one
//! (RabbitMQ has its own `ssl_handshake_timeout` for this step).

use crate::broker::config::TlsConfig;
use crate::broker::wire::HANDSHAKE_TIMEOUT;
use crate::broker::wire::sink::{StreamSink, Transport};
use crate::tls::{provider, read_certs, read_key, read_roots};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The acceptors for both listeners, sharing one certificate.
#[derive(Clone)]
pub(crate) struct Acceptors {
    /// amqps: asks for client certificates when a CA is configured.
    pub(crate) amqp: TlsAcceptor,
    /// https for the management API: never asks for a client certificate, so browsers
    /// and curl work with basic auth alone (RabbitMQ configures the two separately).
    pub(crate) http: TlsAcceptor,
}

impl std::fmt::Debug for Acceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptors")
    }
}

impl Acceptors {
    /// Read the certificate, key and CA files; any problem is one line naming the file.
    pub(crate) fn load(cfg: &TlsConfig) -> std::io::Result<Acceptors> {
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let certs = read_certs(&cfg.cert, "TLS certificate file").map_err(bad)?;
        let key = read_key(&cfg.key, "TLS key file").map_err(bad)?;
        let builder = || {
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| bad(format!("TLS set-up: {e}")))
        };
        let clients = match &cfg.ca_cert {
            Some(ca) => {
                let roots = read_roots(ca, "TLS CA certificate file").map_err(bad)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let verifier = if cfg.fail_if_no_peer_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                Some(
                    verifier
                        .build()
                        .map_err(|e| bad(format!("TLS CA certificate file: {e}")))?,
                )
            }
            None => None,
        };
        let amqp = match clients {
            Some(v) => builder()?.with_client_cert_verifier(v),
            None => builder()?.with_no_client_auth(),
        }
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| {
            bad(format!(
                "TLS key file '{}' does not match the certificate '{}': {e}",
                cfg.key.display(),
                cfg.cert.display()
            ))
        })?;
        let mut http = builder()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad(format!("TLS certificate and key: {e}")))?;
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Acceptors {
            amqp: TlsAcceptor::from(Arc::new(amqp)),
            http: TlsAcceptor::from(Arc::new(http)),
        })
    }
}

/// The TLS handshake of one socket; `None` (logged) when it failed or took too long.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::info!("connection from {peer} refused: TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::info!("connection from {peer} closed: TLS handshake timeout");
            None
        }
    }
}

impl Transport for TlsStream<TcpStream> {
    const TLS: bool = true;
    type Reader = tokio::io::ReadHalf<TlsStream<TcpStream>>;
    type Writer = StreamSink<tokio::io::WriteHalf<TlsStream<TcpStream>>>;

    /// One TLS session cannot be split into owned halves: `tokio::io::split` shares it
    /// behind a lock held only for each poll, so reader and writer still run apart.
    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        let (rd, wr) = tokio::io::split(self);
        (rd, StreamSink(wr))
    }
}
