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
    /// The AMQP URI, e.g. `amqp://user:pass@host:5672/vhost?heartbeat=30`; the first broker
    /// tried, and the one whose management API is meant.
    pub url: String,
    /// Further brokers (of the same cluster), tried in order when the one before fails.
    pub fallbacks: Vec<String>,
    /// Name shown in the broker's connection list, so operators can tell rmq's connections apart.
    pub connection_name: String,
    /// Certificates for amqps:// (unused for amqp://).
    pub tls: TlsOptions,
    /// Told when the broker blocks or unblocks the connection.
    pub events: Option<EventHook>,
}

impl ConnectOptions {
    /// Every URL, in the order they are tried.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.fallbacks.iter().map(String::as_str))
    }
}

/// What the broker says about a connection while it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// `connection.blocked` (a memory or disk alarm): publishes wait. The broker's reason.
    Blocked(String),
    /// `connection.unblocked`.
    Unblocked,
}

/// The function behind an [`EventHook`]: the broker's `host:port` and what it said.
pub type EventFn = dyn Fn(&str, LinkEvent) + Send + Sync;

/// A callback for [`LinkEvent`]s, with the broker's `host:port`.
#[derive(Clone)]
pub struct EventHook(pub std::sync::Arc<EventFn>);

impl std::fmt::Debug for EventHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventHook")
    }
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
    /// `host:port`, for messages.
    target: String,
}

/// Pass the broker's blocked/unblocked notices to the hook while the connection lives.
fn watch_events(conn: &Connection, target: String, hook: EventHook) {
    use futures_lite::StreamExt;
    let mut events = Box::pin(conn.events_listener());
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                lapin::Event::ConnectionBlocked(reason) => {
                    (hook.0)(&target, LinkEvent::Blocked(reason))
                }
                lapin::Event::ConnectionUnblocked => (hook.0)(&target, LinkEvent::Unblocked),
                _ => {}
            }
        }
    });
}

impl Session {
    /// Connect to the first broker that answers, in the order of [`ConnectOptions::urls`];
    /// each attempt gives up after its URL's `connection_timeout` (ms) or 10 s: scripts
    /// need an ending, and lapin itself does not bound the handshake.
    pub async fn connect(opts: &ConnectOptions) -> anyhow::Result<Session> {
        Session::connect_from(opts, 0).await.map(|(s, _)| s)
    }

    /// [`Session::connect`], starting with the `first`-th URL and wrapping around (a
    /// reconnect tries the other brokers before the one just lost). Returns the index of
    /// the URL that answered.
    pub async fn connect_from(
        opts: &ConnectOptions,
        first: usize,
    ) -> anyhow::Result<(Session, usize)> {
        let urls: Vec<&str> = opts.urls().collect();
        // Every URL is checked before any is tried: a typo in the third must not wait
        // for the first two to fail.
        for url in &urls {
            parse_url(url)?;
        }
        let mut failures: Vec<anyhow::Error> = Vec::new();
        for i in 0..urls.len() {
            let at = (first + i) % urls.len();
            match Session::connect_one(opts, urls[at]).await {
                Ok(s) => return Ok((s, at)),
                // Wrong credentials or certificates are wrong on every node: say so now.
                Err(e) if crate::exit::code(&e) != exit::UNAVAILABLE => return Err(e),
                Err(e) => failures.push(e),
            }
        }
        if failures.len() == 1 {
            return Err(failures.remove(0));
        }
        let all: Vec<String> = failures.iter().map(|e| format!("{e:#}")).collect();
        Err(coded(
            exit::UNAVAILABLE,
            format!("no broker of {} answered: {}", urls.len(), all.join("; ")),
        ))
    }

    async fn connect_one(opts: &ConnectOptions, url: &str) -> anyhow::Result<Session> {
        let uri = parse_url(url)?;
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
        let conn = match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(describe_connect(&target, &user, &vhost, e)),
            Err(_) => {
                return Err(coded(
                    exit::UNAVAILABLE,
                    format!(
                        "cannot connect to {target}: no answer within {limit:?} (is the broker running and reachable? raise it with ?connection_timeout=MS)"
                    ),
                ));
            }
        };
        if let Some(hook) = &opts.events {
            watch_events(&conn, target.clone(), hook.clone());
        }
        Ok(Session { conn, uri, target })
    }

    /// `host:port` of the broker this session is connected to.
    pub fn target(&self) -> &str {
        &self.target
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
