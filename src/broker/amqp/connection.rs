//! One client connection's lifetime: negotiate, then read frames in big batches and
//! handle them inline (no task hop per message), while a writer task batches outgoing
//! frames and sends heartbeats when idle. Ends on client close, a connection error,
//! a dead peer (two missed heartbeats) or broker shutdown; then everything the
//! connection held is released (unacked messages requeued, exclusive queues deleted).

use crate::broker::amqp::handshake;
use crate::broker::amqp::registry::NewConn;
use crate::broker::amqp::session::{End, Session};
use crate::broker::amqp::session_disk::{DiskWait, Resume};
use crate::broker::error::{AmqpError, code};
use crate::broker::log;
use crate::broker::state::BrokerState;
use crate::broker::wire::HANDSHAKE_TIMEOUT;
use crate::broker::wire::flow::Throttle;
use crate::broker::wire::outbound::{self, ConnShared, Outbound};
use crate::broker::wire::sink::{Sink, Transport};
use crate::broker::wire::tls;
use crate::codec::{self, FRAME_METHOD};
use amq_protocol::protocol::{AMQPClass, connection};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// Read buffer sizes: a quiet connection reads into 4 KiB, a busy one (whose reads fill
/// the buffer) into up to 64 KiB, in big batches.
const MIN_READ_CHUNK: usize = 4 * 1024;
const MAX_READ_CHUNK: usize = 64 * 1024;

/// The next read size: double when a read filled the spare room, halve when it used
/// little of it.
fn next_read_chunk(chunk: usize, read: usize, spare: usize) -> usize {
    if read >= spare {
        (chunk * 2).min(MAX_READ_CHUNK)
    } else if read < chunk / 8 {
        (chunk / 2).max(MIN_READ_CHUNK)
    } else {
        chunk
    }
}

/// How long we wait for close-ok after sending connection.close.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(3);

/// Serve one accepted plain-TCP socket until it ends.
pub(crate) async fn serve_tcp(
    broker: Arc<BrokerState>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(broker.config.amqp_addr);
    serve(broker, stream, peer, local, shutdown).await;
}

/// Serve one socket (plain or already through TLS) until it ends; `local` is the
/// address it was accepted on.
pub(crate) async fn serve<S: Transport>(
    broker: Arc<BrokerState>,
    mut stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut neg = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake::negotiate(&broker, &mut stream, peer),
    )
    .await
    {
        Ok(Ok(n)) => n,
        Ok(Err(handshake::HandshakeError::Dropped(why))) => {
            tracing::info!("connection from {peer} refused: {why}");
            return;
        }
        Err(_) => {
            tracing::info!("connection from {peer} closed: handshake timeout");
            return;
        }
    };
    let id = broker.next_id();
    tracing::info!(
        "connection {id} from {peer} opened (user '{}', vhost '{}')",
        neg.user,
        neg.vhost.name
    );
    let (mut rd, wr) = stream.into_halves();
    let conn = ConnShared::new(id, neg.frame_max, neg.cancel_notify);
    conn.set_direct(wr.direct());
    let writer = tokio::spawn(write_loop(wr, conn.clone(), neg.heartbeat));
    let heartbeat = Duration::from_secs(u64::from(neg.heartbeat));
    let mut buf = std::mem::take(&mut neg.leftover);
    let frame_max = neg.frame_max;
    let listed = Listed {
        broker: &broker,
        id,
        conn: conn.clone(),
    };
    let registered = broker.registry.add(NewConn {
        tls: S::TLS,
        user: neg.user.clone(),
        vhost: neg.vhost.name.clone(),
        peer,
        local,
        client_properties: neg.client_properties.clone(),
        frame_max: neg.frame_max,
        channel_max: neg.channel_max,
        heartbeat: neg.heartbeat,
        shared: conn.clone(),
    });
    // A vhost deleted between the handshake's lookup and this registration did not see
    // this connection when it closed its connections: close it the same way, before any
    // frame of it is handled (one could declare a queue in the deleted vhost).
    let vhost_gone = !broker
        .vhost(&neg.vhost.name)
        .is_some_and(|v| Arc::ptr_eq(&v, &neg.vhost));
    let vhost_name = neg.vhost.name.clone();
    let mut throttle = Throttle::new(
        broker.alarms.subscribe(),
        neg.blocked_notify,
        &registered.flow,
    );
    let mut session = Session::new(broker.clone(), conn.clone(), neg);
    session.waits_for_disk = true;
    // A handler waiting for its disk work (`session_disk`): nothing else is read or
    // handled until it has finished, so replies keep their order.
    let mut waiting: Option<DiskWait> = None;

    let mut last_read = Instant::now();
    // Unacked deliveries are checked against the consumer timeout a few times per period.
    let ack_timeout = broker.config.consumer_timeout;
    let check_every = ack_timeout.map_or(Duration::from_secs(3600), |t| {
        (t / 4).clamp(Duration::from_millis(20), Duration::from_secs(15))
    });
    let mut next_check = Instant::now() + check_every;
    let mut read_chunk = MIN_READ_CHUNK;
    // Frames a client pipelined behind connection.open came with the handshake's reads:
    // they are handled before waiting for more (STYLE rule 11), or they would wait for
    // the client's next write, which may never come.
    let mut unprocessed = !buf.is_empty();
    if buf.capacity() - buf.len() < read_chunk {
        buf.reserve(read_chunk);
    }
    let end = loop {
        if vhost_gone {
            break End::Close(AmqpError::new(
                code::CONNECTION_FORCED,
                format_args!("vhost '{vhost_name}' is down"),
            ));
        }
        if unprocessed && waiting.is_none() {
            unprocessed = false;
            let alarms = throttle.alarms_now();
            let handled = handle_batch(&mut session, &mut buf);
            waiting = session.disk_wait.take();
            if let Err(end) = handled {
                break end;
            }
            let published = std::mem::take(&mut session.published);
            throttle.after_batch(alarms, published, &conn, &registered.flow);
            if buf.is_empty() {
                // Nothing half-read: let go of the buffer (queued bodies keep their own
                // slices of it), so idle connections hold little.
                buf = BytesMut::new();
            }
            if buf.capacity() - buf.len() < read_chunk / 4 {
                buf.reserve(read_chunk);
            }
        }
        // A peer that does not read what we send (replies, confirms, deliveries) is not
        // read either until its backlog drains: its unsent frames stay bounded.
        let backlogged = conn.backlogged();
        let reading = throttle.reading() && !backlogged && waiting.is_none();
        let spare = buf.capacity() - buf.len();
        let dead_at = last_read + heartbeat * 2 + Duration::from_millis(500);
        tokio::select! {
            _ = tokio::time::sleep_until(next_check), if ack_timeout.is_some() => {
                next_check = Instant::now() + check_every;
                if let Some(limit) = ack_timeout {
                    session.enforce_ack_timeout(limit);
                }
            }
            resume = async { waiting.as_mut()?.done().await }, if waiting.is_some() => {
                let Some(wait) = waiting.take() else { continue };
                let resumed = resume_handler(&mut session, wait, resume);
                waiting = session.disk_wait.take();
                if let Err(end) = resumed {
                    break end;
                }
                // The frames that came behind it; and what the peer sent meanwhile,
                // unread, is not a missed heartbeat.
                unprocessed = true;
                last_read = Instant::now();
            }
            r = rd.read_buf(&mut buf), if reading => match r {
                Ok(0) => break End::PeerGone("client closed the socket".into()),
                Err(e) => break End::PeerGone(format!("read error: {e}")),
                Ok(n) => {
                    last_read = Instant::now();
                    read_chunk = next_read_chunk(read_chunk, n, spare);
                    unprocessed = true;
                }
            },
            () = conn.drained(), if backlogged => {
                // Reading again: what the peer sent meanwhile is not a missed heartbeat.
                last_read = Instant::now();
            }
            () = throttle.changed() => {
                if throttle.apply(&conn, &registered.flow) {
                    last_read = Instant::now();
                }
            }
            _ = tokio::time::sleep_until(dead_at), if !heartbeat.is_zero() && reading => {
                break End::PeerGone(format!("missed heartbeats from client, timeout: {}s", heartbeat.as_secs()));
            }
            err = conn.failed() => break End::Close(err),
            () = registered.close.notified() => {
                let reason = registered.close_reason();
                break End::Close(AmqpError::new(code::CONNECTION_FORCED, format_args!("{reason}")));
            }
            _ = shutdown.changed() => {
                break End::Close(AmqpError::new(code::CONNECTION_FORCED, "broker forced connection closure with reason 'shutdown'"));
            }
        }
    };
    let reason = match end {
        End::Close(err) => {
            if err.code == code::CONNECTION_FORCED {
                tracing::info!("connection {id} from {peer} closing: {}", err.text);
            } else {
                tracing::error!("connection {id} from {peer}: {}", err.text);
            }
            // Release consumers and unacked messages before telling the client, as
            // RabbitMQ does: nothing may be delivered to a connection that is closing
            // (a no-ack delivery would be lost, an ack-mode one only come back late).
            teardown(&mut session, id);
            conn.send_method(0, err.connection_close());
            let _ = tokio::time::timeout(
                CLOSE_OK_TIMEOUT,
                await_close_ok(&mut rd, &mut buf, frame_max, &conn),
            )
            .await;
            err.text
        }
        End::ClientClosed => "closed by client".to_string(),
        End::PeerGone(why) => why,
    };
    teardown(&mut session, id);
    drop(listed);
    let _ = tokio::time::timeout(CLOSE_OK_TIMEOUT, writer).await;
    tracing::info!("connection {id} from {peer} closed: {reason}");
}

/// Serve one socket accepted on the amqps port: TLS first, then AMQP as on plain TCP.
pub(crate) async fn serve_tls(
    broker: Arc<BrokerState>,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(broker.config.amqp_addr);
    if let Some(tls) = tls::handshake(&acceptor, stream, peer).await {
        serve(broker, tls, peer, local, shutdown).await;
    }
}

/// Handle one read batch.
fn handle_batch(session: &mut Session, buf: &mut BytesMut) -> Result<(), End> {
    guarded(|| session.process(buf))
}

/// Finish a handler whose disk work is done, as `handle_batch` handles a frame.
fn resume_handler(
    session: &mut Session,
    wait: DiskWait,
    resume: Option<Resume>,
) -> Result<(), End> {
    guarded(|| session.resume(wait, resume))
}

/// Run frame handling. A panic in it (a bug, never an answer to input) ends only this
/// connection: with 541 INTERNAL_ERROR to the client and the cause in the log, instead of
/// a task that dies and leaves its connection half-alive.
fn guarded(handle: impl FnOnce() -> Result<(), End>) -> Result<(), End> {
    let run = std::panic::AssertUnwindSafe(|| outbound::deferring(handle));
    match std::panic::catch_unwind(run) {
        Ok(result) => result,
        Err(panic) => Err(End::Close(AmqpError::new(
            code::INTERNAL_ERROR,
            format_args!(
                "internal error while handling a frame: {}",
                log::panic_text(&*panic)
            ),
        ))),
    }
}

/// Release what the session holds; a panic in it is logged, not propagated (the caller
/// must still get to close the socket).
fn teardown(session: &mut Session, id: u64) {
    let run = std::panic::AssertUnwindSafe(|| session.teardown());
    if let Err(panic) = std::panic::catch_unwind(run) {
        tracing::error!(
            "connection {id}: internal error while releasing it: {}",
            log::panic_text(&*panic)
        );
    }
}

/// A connection listed in the registry: unlisted and its socket shut when dropped, so a
/// connection task that ends in any way (a panic included) leaves no ghost behind in
/// `/api/connections`.
struct Listed<'a> {
    broker: &'a BrokerState,
    id: u64,
    conn: Arc<ConnShared>,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.broker.registry.remove(self.id);
        self.conn.shutdown();
    }
}

/// After we sent connection.close, discard frames until the client's close-ok
/// (AMQP 0-9-1 §2.2.4: the peer must ignore everything but close/close-ok).
async fn await_close_ok(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    frame_max: u32,
    conn: &ConnShared,
) {
    loop {
        while let Ok(Some(f)) = codec::next_frame(buf, frame_max) {
            if f.kind == FRAME_METHOD && f.channel == 0 {
                match codec::decode_method(&f.payload) {
                    Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => return,
                    Ok(AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                        conn.send_method(
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                connection::CloseOk {},
                            )),
                        );
                        return;
                    }
                    _ => {}
                }
            }
        }
        if codec::next_frame(buf, frame_max).is_err() {
            return;
        }
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Write queued frames: everything queued since the last write goes out in one write;
/// a heartbeat goes out when nothing was queued for half the heartbeat interval.
async fn write_loop(mut wr: impl Sink, conn: Arc<ConnShared>, heartbeat: u16) {
    let idle = if heartbeat == 0 {
        Duration::from_secs(3600 * 24 * 365)
    } else {
        Duration::from_millis(u64::from(heartbeat) * 500)
    };
    loop {
        match conn.take() {
            Outbound::Data(frames) => {
                if wr.write_frames(&frames).await.is_err() {
                    break;
                }
                conn.written(frames.len());
                conn.released();
            }
            Outbound::Shutdown => break,
            Outbound::Idle => {
                if tokio::time::timeout(idle, conn.queued()).await.is_err() {
                    // Queued like any frame: a direct write may own the socket right now.
                    conn.send_with(codec::put_heartbeat);
                }
            }
        }
    }
    conn.set_direct(None);
    wr.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_chunks_grow_when_filled_and_shrink_when_idle() {
        assert_eq!(next_read_chunk(4096, 4096, 4096), 8192);
        assert_eq!(
            next_read_chunk(MAX_READ_CHUNK, 70_000, 70_000),
            MAX_READ_CHUNK
        );
        assert_eq!(next_read_chunk(65536, 100, 65536), 32768);
        assert_eq!(next_read_chunk(MIN_READ_CHUNK, 10, 8000), MIN_READ_CHUNK);
        assert_eq!(next_read_chunk(16384, 5000, 16384), 16384);
    }
}
