//! The writing half of a connection's socket, as its writer task uses it. Plain TCP
//! shares its half with `ConnShared`, so other tasks can write small batches directly
//! when the writer is idle; TLS sessions cannot be written from two places.

use crate::broker::wire::outbound::DirectWrite;
use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::tcp::OwnedWriteHalf;

pub(crate) trait Sink: Send + 'static {
    /// Write all of `buf` (and push it out of any buffering layer).
    fn write_frames(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Close the writing direction.
    fn close(self) -> impl Future<Output = ()> + Send;
    /// A handle for direct non-blocking writes from other tasks, when possible.
    fn direct(&self) -> Option<Arc<dyn DirectWrite>>;
}

/// A TCP write half, shared with direct writers.
pub(crate) struct TcpSink(pub(crate) Arc<OwnedWriteHalf>);

impl Sink for TcpSink {
    async fn write_frames(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.0.try_write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.0.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn close(self) {
        // When a direct writer still holds a clone for a moment, its drop shuts the
        // half down instead (dropping an OwnedWriteHalf does).
        if let Ok(mut w) = Arc::try_unwrap(self.0) {
            let _ = w.shutdown().await;
        }
    }

    fn direct(&self) -> Option<Arc<dyn DirectWrite>> {
        Some(self.0.clone())
    }
}

/// Any other byte stream (a TLS session's write half): written by the writer task only.
pub(crate) struct StreamSink<W>(pub(crate) W);

impl<W: AsyncWrite + Unpin + Send + 'static> Sink for StreamSink<W> {
    async fn write_frames(&mut self, buf: &[u8]) -> io::Result<()> {
        // The flush matters for TLS: it may hold encrypted records back when the socket
        // is full, and nothing else would push them out before we idle.
        self.0.write_all(buf).await?;
        self.0.flush().await
    }

    async fn close(mut self) {
        let _ = self.0.shutdown().await;
    }

    fn direct(&self) -> Option<Arc<dyn DirectWrite>> {
        None
    }
}

/// A socket the broker speaks AMQP on: whole for the handshake, then split so the
/// writer task and the read loop each own a half. Generic rather than boxed, so plain
/// TCP keeps its lock-free `into_split` halves.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The half the read loop owns.
    type Reader: AsyncRead + Unpin + Send + 'static;
    /// The half the writer task owns.
    type Writer: Sink;
    /// Split for reading and writing concurrently.
    fn into_halves(self) -> (Self::Reader, Self::Writer);
    /// Connections over it are amqps (the management API's `ssl`).
    const TLS: bool = false;
}

impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = TcpSink;

    fn into_halves(self) -> (OwnedReadHalf, TcpSink) {
        let (rd, wr) = self.into_split();
        (rd, TcpSink(Arc::new(wr)))
    }
}
