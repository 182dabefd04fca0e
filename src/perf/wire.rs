//! A minimal raw AMQP 0-9-1 connection for `rmq perf`: the handshake and a few methods
//! through amq-protocol, then frames read in big batches and written pre-encoded. lapin
//! costs several µs of CPU per message, which would make the load client the bottleneck.

use crate::codec::{self, FRAME_BODY, FRAME_HEADER, FRAME_METHOD, PROTOCOL_HEADER, RawFrame};
use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection, queue};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use anyhow::{Context, bail};
use bytes::BytesMut;
use lapin::uri::AMQPUri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The channel every perf connection uses.
pub(crate) const CH: u16 = 1;

/// Reads frames in big batches.
pub(crate) struct Reader {
    rd: OwnedReadHalf,
    buf: BytesMut,
    frame_max: u32,
}

impl Reader {
    /// The next complete frame (heartbeats included).
    pub(crate) async fn frame(&mut self) -> anyhow::Result<RawFrame> {
        loop {
            if let Some(f) = codec::next_frame(&mut self.buf, self.frame_max)
                .map_err(|e| anyhow::anyhow!(e.text))?
            {
                return Ok(f);
            }
            if self.buf.capacity() - self.buf.len() < 64 * 1024 {
                self.buf.reserve(256 * 1024);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                bail!("the broker closed the connection");
            }
        }
    }

    /// A frame if one is already buffered (no read).
    pub(crate) fn buffered(&mut self) -> anyhow::Result<Option<RawFrame>> {
        codec::next_frame(&mut self.buf, self.frame_max).map_err(|e| anyhow::anyhow!(e.text))
    }

    /// The next method, skipping heartbeats; a close from the broker is an error.
    pub(crate) async fn method(&mut self) -> anyhow::Result<AMQPClass> {
        loop {
            let f = self.frame().await?;
            if f.kind != FRAME_METHOD {
                continue;
            }
            let m = codec::decode_method(&f.payload).map_err(|e| anyhow::anyhow!(e.text()))?;
            match &m {
                AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                    bail!(
                        "the broker closed the connection: {} {}",
                        c.reply_code,
                        c.reply_text
                    )
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
                    bail!(
                        "the broker closed the channel: {} {}",
                        c.reply_code,
                        c.reply_text
                    )
                }
                _ => return Ok(m),
            }
        }
    }
}

/// A connected, opened AMQP connection with channel 1 open.
pub(crate) struct Conn {
    pub(crate) reader: Reader,
    pub(crate) writer: OwnedWriteHalf,
    pub(crate) frame_max: u32,
}

fn method_bytes(ch: u16, m: AMQPClass) -> BytesMut {
    let mut out = BytesMut::with_capacity(128);
    codec::put_method(&mut out, ch, m);
    out
}

impl Conn {
    /// Connect, authenticate (PLAIN), tune without heartbeats, open the vhost and channel 1.
    pub(crate) async fn open(uri: &AMQPUri) -> anyhow::Result<Conn> {
        Conn::open_with(uri, &[]).await
    }

    /// `open`, advertising `capabilities` beyond confirms (e.g. `connection.blocked`).
    pub(crate) async fn open_with(uri: &AMQPUri, capabilities: &[&str]) -> anyhow::Result<Conn> {
        let addr = format!("{}:{}", uri.authority.host, uri.authority.port);
        let stream = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            TcpStream::connect(&addr),
        )
        .await
        .with_context(|| format!("connecting to {addr} timed out"))?
        .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (rd, mut writer) = stream.into_split();
        let mut reader = Reader {
            rd,
            buf: BytesMut::with_capacity(256 * 1024),
            frame_max: 131_072,
        };
        writer.write_all(PROTOCOL_HEADER).await?;
        match reader.method().await? {
            AMQPClass::Connection(connection::AMQPMethod::Start(_)) => {}
            other => bail!("expected connection.start, got {other:?}"),
        }
        let creds = &uri.authority.userinfo;
        let mut caps = FieldTable::default();
        caps.insert("publisher_confirms".into(), AMQPValue::Boolean(true));
        caps.insert("basic.nack".into(), AMQPValue::Boolean(true));
        for cap in capabilities {
            caps.insert((*cap).into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert(
            "product".into(),
            AMQPValue::LongString(LongString::from("rmq perf")),
        );
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        let response = format!("\0{}\0{}", creds.username, creds.password);
        let start_ok =
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: response.into(),
                locale: "en_US".into(),
            }));
        writer.write_all(&method_bytes(0, start_ok)).await?;
        let tune = match reader.method().await? {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
            other => bail!("login refused or unexpected reply: {other:?}"),
        };
        let frame_max = if tune.frame_max == 0 {
            131_072
        } else {
            tune.frame_max
        };
        reader.frame_max = frame_max;
        let tune_ok = AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: tune.channel_max,
            frame_max,
            heartbeat: 0,
        }));
        writer.write_all(&method_bytes(0, tune_ok)).await?;
        let open = AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: uri.vhost.as_str().into(),
        }));
        writer.write_all(&method_bytes(0, open)).await?;
        match reader.method().await? {
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => {}
            other => bail!("expected connection.open-ok, got {other:?}"),
        }
        let mut conn = Conn {
            reader,
            writer,
            frame_max,
        };
        conn.call(AMQPClass::Channel(channel::AMQPMethod::Open(
            channel::Open {},
        )))
        .await?;
        Ok(conn)
    }

    /// Send a method on channel 1 and wait for its reply.
    pub(crate) async fn call(&mut self, m: AMQPClass) -> anyhow::Result<AMQPClass> {
        self.writer.write_all(&method_bytes(CH, m)).await?;
        self.reader.method().await
    }

    pub(crate) async fn confirm_select(&mut self) -> anyhow::Result<()> {
        self.call(AMQPClass::Confirm(confirm::AMQPMethod::Select(
            confirm::Select { nowait: false },
        )))
        .await
        .map(|_| ())
    }

    pub(crate) async fn qos(&mut self, prefetch: u16) -> anyhow::Result<()> {
        self.call(AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: prefetch,
            global: false,
        })))
        .await
        .map(|_| ())
    }

    /// Start consuming; returns when consume-ok arrived.
    pub(crate) async fn consume(&mut self, queue_name: &str, no_ack: bool) -> anyhow::Result<()> {
        let m = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: queue_name.into(),
            consumer_tag: "".into(),
            no_local: false,
            no_ack,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        }));
        self.call(m).await.map(|_| ())
    }

    pub(crate) async fn declare_queue(
        &mut self,
        name: &str,
        durable: bool,
        arguments: &FieldTable,
    ) -> anyhow::Result<()> {
        self.call(AMQPClass::Queue(queue::AMQPMethod::Declare(
            queue::Declare {
                queue: name.into(),
                passive: false,
                durable,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: arguments.clone(),
            },
        )))
        .await
        .map(|_| ())
    }

    pub(crate) async fn delete_queue(&mut self, name: &str) -> anyhow::Result<()> {
        self.call(AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: name.into(),
            if_unused: false,
            if_empty: false,
            nowait: false,
        })))
        .await
        .map(|_| ())
    }

    pub(crate) async fn declare_exchange(
        &mut self,
        name: &str,
        kind: &str,
        durable: bool,
    ) -> anyhow::Result<()> {
        use amq_protocol::protocol::exchange;
        self.call(AMQPClass::Exchange(exchange::AMQPMethod::Declare(
            exchange::Declare {
                exchange: name.into(),
                kind: kind.into(),
                passive: false,
                durable,
                auto_delete: false,
                internal: false,
                nowait: false,
                arguments: FieldTable::default(),
            },
        )))
        .await
        .map(|_| ())
    }

    pub(crate) async fn bind(
        &mut self,
        queue_name: &str,
        exchange: &str,
        key: &str,
    ) -> anyhow::Result<()> {
        self.call(AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: queue_name.into(),
            exchange: exchange.into(),
            routing_key: key.into(),
            nowait: false,
            arguments: FieldTable::default(),
        })))
        .await
        .map(|_| ())
    }

    /// Close politely (bounded).
    pub(crate) async fn close(mut self) {
        let close = AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        }));
        // Bounded as a whole: a broker that stopped reading (blocked) takes neither the
        // close nor the rest of a write.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            if self
                .writer
                .write_all(&method_bytes(0, close))
                .await
                .is_err()
            {
                return;
            }
            while let Ok(f) = self.reader.frame().await {
                if f.kind == FRAME_METHOD && f.channel == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

/// Encode one publish (method, header, body frames) into a template, and the offset of
/// the body's first byte in it (where each copy gets its stamp).
pub(crate) fn publish_template(
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    persistent: bool,
    frame_max: u32,
) -> (BytesMut, usize) {
    let mut out = BytesMut::with_capacity(body.len() + 256);
    codec::put_method(
        &mut out,
        CH,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        })),
    );
    let props = if persistent {
        amq_protocol::protocol::BasicProperties::default().with_delivery_mode(2)
    } else {
        amq_protocol::protocol::BasicProperties::default()
    };
    let header = crate::codec::header::encode_header(body.len() as u64, &props);
    // method frame, then the header frame (7 + payload + end octet), then the body frame's 7.
    let body_at = out.len() + 8 + header.len() + 7;
    codec::put_content(&mut out, CH, &header, body, frame_max);
    (out, body_at)
}

/// Frame kinds a consumer sees.
pub(crate) use codec::FRAME_METHOD as METHOD;
pub(crate) const HEADER: u8 = FRAME_HEADER;
pub(crate) const BODY: u8 = FRAME_BODY;
