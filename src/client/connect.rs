//! Connecting: the AMQP URI (RabbitMQ URI spec), its sources, and a bounded handshake.

use super::error::{describe, describe_connect};
use super::tls::TlsOptions;
use crate::exit::{self, coded};
use lapin::tcp::{AMQPUriTcpExt, RustlsConnector};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use std::sync::Arc;
use std::time::Duration;

/// The URL used when neither `--url`, `RMQ_URL` nor `AMQP_URL` gives one.
pub const DEFAULT_URL: &str = "amqp://guest:guest@localhost:5672/%2F";

/// How long a connection attempt may take when the URL does not say (`connection_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect and how patiently.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The AMQP URI, e.g. `amqp://user:pass@host:5672/vhost?heartbeat=30`.
    pub url: String,
    /// Name shown in the broker's connection list, so operators can tell rmq's connections apart.
    pub connection_name: String,
    /// Certificates for amqps:// (unused for amqp://).
    pub tls: TlsOptions,
}

/// The URL to use: the flag, then `RMQ_URL`, then `AMQP_URL`, then [`DEFAULT_URL`].
pub fn resolve_url(flag: Option<&str>) -> String {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    flag.map(str::to_string)
        .or_else(|| env("RMQ_URL"))
        .or_else(|| env("AMQP_URL"))
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

/// Parse an AMQP URI; a malformed one is a data error (exit 65).
pub fn parse_url(url: &str) -> anyhow::Result<AMQPUri> {
    url.parse().map_err(|e: String| {
        coded(
            exit::DATA_ERR,
            format!("malformed broker URL '{}': {e} (expected amqp://user:password@host:5672/vhost or amqps://...:5671/vhost, with the vhost '/' written %2F)", redact(url)),
        )
    })
}

/// lapin's own amqps path only adds CA certificates to the system's and cannot skip
/// verification, so the TCP connection is lapin's and the TLS layer ours.
async fn connect_tls(
    uri: AMQPUri,
    props: ConnectionProperties,
    tls: RustlsConnector,
) -> lapin::Result<Connection> {
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connector(
        uri,
        runtime,
        async move |uri: AMQPUri, runtime| {
            let mut tcp = uri.clone();
            tcp.scheme = AMQPScheme::AMQP;
            let stream = tcp.connect_async(&runtime).await?;
            Ok(stream.into_rustls(&tls, &uri.authority.host).await?)
        },
        props,
    )
    .await
}

/// The URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// An open connection to a broker.
pub struct Session {
    /// The lapin connection; every channel comes from it.
    pub(crate) conn: Connection,
    /// The parsed URI, for messages and the management API's defaults.
    pub(crate) uri: AMQPUri,
}

impl Session {
    /// Connect, giving up after the URL's `connection_timeout` (ms) or 10 s: scripts need an
    /// ending, and lapin itself does not bound the handshake.
    pub async fn connect(opts: &ConnectOptions) -> anyhow::Result<Session> {
        let uri = parse_url(&opts.url)?;
        let target = format!("{}:{}", uri.authority.host, uri.authority.port);
        let user = uri.authority.userinfo.username.clone();
        let vhost = uri.vhost.clone();
        let limit = uri
            .query
            .connection_timeout
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let props = ConnectionProperties::default()
            .with_connection_name(opts.connection_name.clone().into());
        // Built before connecting: a missing certificate file is the user's to fix, not
        // something to report as an unreachable broker.
        let tls = match uri.scheme {
            AMQPScheme::AMQP => None,
            AMQPScheme::AMQPS => Some(RustlsConnector::from(Arc::new(opts.tls.client_config()?))),
        };
        let attempt = async {
            match tls {
                None => Connection::connect_uri(uri.clone(), props).await,
                Some(tls) => connect_tls(uri.clone(), props, tls).await,
            }
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(conn)) => Ok(Session { conn, uri }),
            Ok(Err(e)) => Err(describe_connect(&target, &user, &vhost, e)),
            Err(_) => Err(coded(
                exit::UNAVAILABLE,
                format!(
                    "cannot connect to {target}: no answer within {limit:?} (is the broker running and reachable? raise it with ?connection_timeout=MS)"
                ),
            )),
        }
    }

    /// The vhost this session is on.
    pub fn vhost(&self) -> &str {
        &self.uri.vhost
    }

    /// Whether the connection is still open: after a failure, a broker that went away
    /// (retry later) is told apart from one that refused something.
    pub fn is_connected(&self) -> bool {
        self.conn.status().connected()
    }

    /// The parsed URI (host, credentials) — the management API derives its defaults from it.
    pub fn uri(&self) -> &AMQPUri {
        &self.uri
    }

    /// A new channel.
    pub(crate) async fn raw_channel(&self) -> anyhow::Result<lapin::Channel> {
        self.conn
            .create_channel()
            .await
            .map_err(|e| describe("cannot open a channel", e))
    }

    /// Close politely so the broker does not log an abrupt disconnect; bounded, and
    /// errors ignored because the work is already done (or already failed).
    pub async fn close(self) {
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.conn.close(200, "bye".into())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_redact() {
        assert!(
            parse_url("amqp://guest:guest@localhost:5672/%2F?heartbeat=5&connection_timeout=100")
                .is_ok()
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("amqps://h").is_ok());
        assert_eq!(redact("amqp://u:secret@h/v"), "amqp://u:***@h/v");
        assert_eq!(redact("amqp://h/v"), "amqp://h/v");
    }
}
