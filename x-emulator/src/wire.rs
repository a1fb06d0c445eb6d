//! What each connection's socket has taken. A stream logs a tweet as sent when it hands the
//! bytes to the HTTP server; an abrupt close (a reset) drops whatever the server still holds
//! for a client that reads slowly. Before such a close, a stream waits for its bytes to be on
//! the wire, so that "sent" stays true: what the log says was sent did reach the client.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// One connection's socket writes: bytes the kernel took, and whether the last write waited
/// for room (the server then still holds bytes).
#[derive(Clone, Debug, Default)]
pub struct Wire(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    blocked: AtomicBool,
}

impl Wire {
    /// Bytes written to the socket so far (headers and chunk framing included).
    pub fn written(&self) -> u64 {
        self.0.written.load(Ordering::SeqCst)
    }

    /// True while the socket had no room for the server's last write.
    pub fn blocked(&self) -> bool {
        self.0.blocked.load(Ordering::SeqCst)
    }

    fn note(&self, result: &Poll<io::Result<usize>>) {
        match result {
            Poll::Ready(Ok(n)) => {
                self.0.written.fetch_add(*n as u64, Ordering::SeqCst);
                self.0.blocked.store(false, Ordering::SeqCst);
            }
            Poll::Ready(Err(_)) => self.0.blocked.store(false, Ordering::SeqCst),
            Poll::Pending => self.0.blocked.store(true, Ordering::SeqCst),
        }
    }
}

/// A TCP listener whose connections count what they write; the [`Wire`] of each is its
/// connect info (`ConnectInfo<Wire>` in a handler).
pub struct CountingListener {
    pub listener: TcpListener,
    /// SO_SNDBUF of each accepted socket (None: the system's).
    pub send_buffer: Option<usize>,
}

impl Listener for CountingListener {
    type Io = Counted;
    type Addr = Wire;

    async fn accept(&mut self) -> (Counted, Wire) {
        let (stream, _) = Listener::accept(&mut self.listener).await;
        if let Some(bytes) = self.send_buffer {
            if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(bytes) {
                tracing::warn!(error = %e, bytes, "could not set the socket's send buffer");
            }
        }
        let wire = Wire::default();
        let io = Counted {
            inner: stream,
            wire: wire.clone(),
        };
        (io, wire)
    }

    fn local_addr(&self) -> io::Result<Wire> {
        Ok(Wire::default())
    }
}

impl Connected<IncomingStream<'_, CountingListener>> for Wire {
    fn connect_info(stream: IncomingStream<'_, CountingListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP stream that counts its writes into its [`Wire`].
pub struct Counted {
    inner: TcpStream,
    wire: Wire,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wire.note(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wire.note(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
