//! Connection negotiation (AMQP 0-9-1 §2.2.4): protocol header, Start/StartOk with PLAIN
//! or AMQPLAIN, Tune/TuneOk, Open. RabbitMQ's answers on failure: a wrong protocol header
//! gets the right one back; bad credentials a 403 close (to clients that advertise
//! `authentication_failure_close`, else just a closed socket); an unknown vhost a 530.

use crate::broker::error::{AmqpError, code};
use crate::broker::model::vhost::VHost;
use crate::broker::ops::conn_limit::ConnSlot;
use crate::broker::state::BrokerState;
use crate::codec::{self, FRAME_HEARTBEAT, FRAME_METHOD, PROTOCOL_HEADER};
use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a successful handshake agreed on.
#[derive(Debug)]
pub(crate) struct Negotiated {
    pub(crate) user: String,
    pub(crate) vhost: Arc<VHost>,
    pub(crate) frame_max: u32,
    pub(crate) channel_max: u16,
    pub(crate) heartbeat: u16,
    /// Listed by the management API (`client_properties`).
    pub(crate) client_properties: FieldTable,
    pub(crate) cancel_notify: bool,
    /// The client understands connection.blocked / unblocked.
    pub(crate) blocked_notify: bool,
    /// Bytes read past the handshake (a pipelining client may already have sent more).
    pub(crate) leftover: BytesMut,
    /// This connection's place under `--max-connections`, held until it ends.
    pub(crate) slot: ConnSlot,
    /// Its place under the vhost's `max-connections`, held until it ends.
    pub(crate) vhost_slot: Option<crate::broker::ops::vhost_limits::VhostConnSlot>,
}

/// Why negotiation stopped; the caller logs it and closes the socket.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The peer went away, timed out or sent something unusable (already answered).
    Dropped(String),
}

fn capability(props: &FieldTable, name: &str) -> bool {
    matches!(
        props
            .inner()
            .get("capabilities")
            .and_then(|c| c.as_field_table())
            .and_then(|t| t.inner().get(name)),
        Some(AMQPValue::Boolean(true))
    )
}

fn server_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()));
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props.insert("product".into(), s("rmq"));
    props.insert("version".into(), s(env!("CARGO_PKG_VERSION")));
    props.insert("platform".into(), s("Rust"));
    props.insert("cluster_name".into(), s("rmq"));
    props.insert("copyright".into(), s("the rmq authors"));
    props.insert(
        "information".into(),
        s("rmq serve: an AMQP 0-9-1 broker compatible with RabbitMQ"),
    );
    props
}

async fn write_method(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    method: AMQPClass,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    codec::put_method(&mut out, 0, method);
    stream.write_all(&out).await?;
    // We read the answer next: over TLS, what is written must reach the socket first.
    stream.flush().await
}

/// Read the next method frame on channel 0, skipping heartbeats.
async fn read_method(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    buf: &mut BytesMut,
    frame_max: u32,
) -> Result<AMQPClass, String> {
    loop {
        match codec::next_frame(buf, frame_max) {
            Err(e) => return Err(e.text),
            Ok(Some(f)) if f.kind == FRAME_HEARTBEAT => continue,
            Ok(Some(f)) if f.kind == FRAME_METHOD && f.channel == 0 => {
                return codec::decode_method(&f.payload).map_err(|e| e.text());
            }
            Ok(Some(f)) => {
                return Err(format!("unexpected frame type {} during handshake", f.kind));
            }
            Ok(None) => {}
        }
        match stream.read_buf(buf).await {
            Ok(0) => return Err("client closed the connection during the handshake".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
}

/// Send connection.close and give the peer a moment to answer close-ok.
async fn refuse(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    buf: &mut BytesMut,
    err: &AmqpError,
    frame_max: u32,
) {
    if write_method(stream, err.connection_close()).await.is_ok() {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), read_method(stream, buf, frame_max)).await;
    }
}

/// Decode PLAIN (`\0user\0pass`) or AMQPLAIN (a field table without its length prefix).
pub(crate) fn credentials(mechanism: &str, response: &[u8]) -> Option<(String, String)> {
    match mechanism {
        "PLAIN" => {
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next()?;
            let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
            let pass = String::from_utf8(parts.next()?.to_vec()).ok()?;
            Some((user, pass))
        }
        "AMQPLAIN" => {
            let mut framed = (response.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(response);
            // Before login too: walked without recursion first (bounds.rs).
            let framed = crate::codec::bounds::check_tables(&framed, &[0]).ok()?;
            let (_, table) = amq_protocol::types::parsing::parse_field_table(&framed[..]).ok()?;
            let get = |k: &str| match table.inner().get(k)? {
                AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
                AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
                _ => None,
            };
            Some((get("LOGIN")?, get("PASSWORD")?))
        }
        _ => None,
    }
}

/// Run the whole negotiation on a fresh socket.
pub(crate) async fn negotiate(
    broker: &BrokerState,
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    peer: SocketAddr,
) -> Result<Negotiated, HandshakeError> {
    let drop = |why: String| HandshakeError::Dropped(why);
    let mut header = [0u8; 8];
    if let Err(e) = stream.read_exact(&mut header).await {
        return Err(drop(format!("no protocol header: {e}")));
    }
    if &header != PROTOCOL_HEADER {
        // AMQP 0-9-1 §4.2.2: answer with the protocol we speak, then close.
        let _ = stream.write_all(PROTOCOL_HEADER).await;
        // Send FIN, then read what the peer already sent: closing with unread bytes would
        // make the kernel answer RST, and the peer could lose our header.
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut total = 0;
            while total < 64 * 1024 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
        return Err(drop(format!("unsupported protocol header {header:?}")));
    }
    let our_frame_max = broker.config.frame_max;
    write_method(
        stream,
        AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: "PLAIN AMQPLAIN".into(),
            locales: "en_US".into(),
        })),
    )
    .await
    .map_err(|e| drop(e.to_string()))?;

    let mut buf = BytesMut::with_capacity(4096);
    let start_ok = match read_method(stream, &mut buf, our_frame_max)
        .await
        .map_err(drop)?
    {
        AMQPClass::Connection(connection::AMQPMethod::StartOk(s)) => s,
        other => return Err(drop(format!("expected connection.start-ok, got {other:?}"))),
    };
    let mechanism = start_ok.mechanism.as_str().to_string();
    let failure_close = capability(&start_ok.client_properties, "authentication_failure_close");
    let creds = credentials(&mechanism, start_ok.response.as_bytes());
    let login_ok = match &creds {
        Some((user, pass)) => {
            broker.auth.login(user, pass).is_some() && (user != "guest" || peer.ip().is_loopback())
        }
        None => false,
    };
    if !login_ok {
        let user = creds.map(|c| c.0).unwrap_or_default();
        let why = if user == "guest" && !peer.ip().is_loopback() {
            "user 'guest' can only connect via localhost".to_string()
        } else {
            format!("user '{user}' - invalid credentials")
        };
        if failure_close {
            let err = AmqpError::new(
                code::ACCESS_REFUSED,
                format_args!(
                    "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
                ),
            );
            refuse(stream, &mut buf, &err, our_frame_max).await;
        }
        return Err(drop(format!("login refused ({mechanism}): {why}")));
    }
    let user = creds.map(|c| c.0).unwrap_or_default();

    write_method(
        stream,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: broker.config.channel_max,
            frame_max: our_frame_max,
            heartbeat: broker.config.heartbeat,
        })),
    )
    .await
    .map_err(|e| drop(e.to_string()))?;
    let tune_ok = match read_method(stream, &mut buf, our_frame_max)
        .await
        .map_err(drop)?
    {
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(t)) => t,
        other => return Err(drop(format!("expected connection.tune-ok, got {other:?}"))),
    };
    let frame_max = match tune_ok.frame_max {
        0 => our_frame_max,
        n => n.min(our_frame_max),
    };
    if frame_max < 4096 {
        let err = AmqpError::new(
            code::NOT_ALLOWED,
            format_args!("frame_max={frame_max} < 4096 min size"),
        );
        refuse(stream, &mut buf, &err, our_frame_max).await;
        return Err(drop(err.text));
    }
    let channel_max = match tune_ok.channel_max {
        0 => broker.config.channel_max,
        n => n.min(broker.config.channel_max),
    };

    let open = match read_method(stream, &mut buf, frame_max)
        .await
        .map_err(drop)?
    {
        AMQPClass::Connection(connection::AMQPMethod::Open(o)) => o,
        other => return Err(drop(format!("expected connection.open, got {other:?}"))),
    };
    // RabbitMQ checks the node's connection limit before the vhost (rabbit_reader).
    let slot = match broker.conn_slots.try_acquire() {
        Ok(slot) => slot,
        Err(limit) => {
            let err = AmqpError::new(
                code::NOT_ALLOWED,
                format_args!("connection refused: node connection limit ({limit}) is reached"),
            )
            .on_method(10, 40);
            refuse(stream, &mut buf, &err, frame_max).await;
            return Err(drop(err.text));
        }
    };
    let vhost_name = open.virtual_host.as_str().to_string();
    let Some(vhost) = broker.vhost(&vhost_name) else {
        let err = AmqpError::new(
            code::NOT_ALLOWED,
            format_args!("vhost {vhost_name} not found"),
        )
        .on_method(10, 40);
        refuse(stream, &mut buf, &err, frame_max).await;
        return Err(drop(err.text));
    };
    // The vhost's connection place is taken in the same atomic step as it is counted.
    let place = match broker.auth.permission(&vhost_name, &user) {
        None => Err(format!(
            "access to vhost '{vhost_name}' refused for user '{user}'"
        )),
        Some(_) => vhost.limits.try_connect().map_err(|max| {
            format!(
                "access to vhost '{vhost_name}' refused for user '{user}': connection limit ({max}) is reached"
            )
        }),
    };
    let vhost_slot = match place {
        Ok(slot) => slot,
        Err(text) => {
            let err = AmqpError::new(code::NOT_ALLOWED, text).on_method(10, 40);
            refuse(stream, &mut buf, &err, frame_max).await;
            return Err(drop(err.text));
        }
    };
    write_method(
        stream,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    )
    .await
    .map_err(|e| drop(e.to_string()))?;

    Ok(Negotiated {
        user,
        vhost,
        frame_max,
        channel_max,
        heartbeat: tune_ok.heartbeat,
        cancel_notify: capability(&start_ok.client_properties, "consumer_cancel_notify"),
        blocked_notify: capability(&start_ok.client_properties, "connection.blocked"),
        client_properties: start_ok.client_properties,
        leftover: buf,
        slot,
        vhost_slot: Some(vhost_slot),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_amqplain_credentials() {
        assert_eq!(
            credentials("PLAIN", b"\0guest\0secret"),
            Some(("guest".into(), "secret".into()))
        );
        let mut t = FieldTable::default();
        t.insert("LOGIN".into(), AMQPValue::LongString("bob".into()));
        t.insert("PASSWORD".into(), AMQPValue::LongString("pw".into()));
        let (v, _) = cookie_factory::r#gen(
            amq_protocol::types::generation::gen_field_table(&t),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(
            credentials("AMQPLAIN", &v[4..]),
            Some(("bob".into(), "pw".into()))
        );
        assert_eq!(credentials("EXTERNAL", b""), None);
        assert_eq!(credentials("PLAIN", b"junk"), None);
    }
}
