//! The accepted-connection side of both ports, with the bounds a public
//! network service needs before any request is read.
//!
//! - At most `max_connections` open at once (per port): past it, new
//!   connections wait in the kernel's accept backlog instead of each costing
//!   a task and buffers.
//! - A connection must send its first byte (the HTTP/2 preface, an HTTP/1.1
//!   request line, a TLS hello) within `first_byte_timeout`, or it is closed:
//!   idle sockets cannot hold the connection slots.
//!
//! What a connection may do once it speaks is bounded by the server builder
//! (`server::server_builder`: HTTP/2 streams per connection, keepalive).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How many connections a port holds, and how long one may stay silent.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub first_byte_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { max_connections: 10_000, first_byte_timeout: Duration::from_secs(10) }
    }
}

/// Connections handed to the server at once, once they have spoken.
const HANDOFF: usize = 64;
/// After a failed accept (out of file descriptors, say), the next try waits
/// this long rather than spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A connection holding one of its port's slots until it closes.
pub struct Limited {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

/// Accepts on `listener` within `limits`, on the current runtime; stops when
/// the server drops the stream.
pub fn incoming(listener: TcpListener, limits: ConnectionLimits) -> ReceiverStream<io::Result<Limited>> {
    let (handoff, connections) = mpsc::channel(HANDOFF);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let accepted = tokio::select! {
                _ = handoff.closed() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(hand_off_once_it_speaks(stream, slot, limits.first_byte_timeout, handoff.clone()));
                }
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    });
    ReceiverStream::new(connections)
}

async fn hand_off_once_it_speaks(
    stream: TcpStream,
    slot: OwnedSemaphorePermit,
    timeout: Duration,
    handoff: mpsc::Sender<io::Result<Limited>>,
) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1..)) => {}
        // Closed, failed, or silent for too long: the slot goes back.
        _ => return,
    }
    let _ = stream.set_nodelay(true);
    let _ = handoff.send(Ok(Limited { stream, _slot: slot })).await;
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Limited {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio_stream::StreamExt;

    async fn port(limits: ConnectionLimits) -> (std::net::SocketAddr, ReceiverStream<io::Result<Limited>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (addr, incoming(listener, limits))
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_and_frees_its_slot_for_one_that_speaks() {
        let limits = ConnectionLimits { max_connections: 1, first_byte_timeout: Duration::from_millis(200) };
        let (addr, mut accepted) = port(limits).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut speaking = TcpStream::connect(addr).await.unwrap();
        speaking.write_all(b"P").await.unwrap();
        let connection = tokio::time::timeout(Duration::from_secs(5), accepted.next()).await;
        assert!(connection.is_ok_and(|c| c.is_some_and(|c| c.is_ok())), "the speaking one got the slot");
        // The silent one was closed by the server.
        let mut buf = [0u8; 1];
        let read =
            tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read(&mut silent, &mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }

    #[tokio::test]
    async fn past_the_limit_a_connection_waits_until_a_slot_is_free() {
        let limits = ConnectionLimits { max_connections: 1, first_byte_timeout: Duration::from_secs(5) };
        let (addr, mut accepted) = port(limits).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        first.write_all(b"1").await.unwrap();
        let held = accepted.next().await.unwrap().unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap(); // in the backlog
        second.write_all(b"2").await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(200), accepted.next()).await;
        assert!(early.is_err(), "a second connection was taken beyond the limit");
        drop(held);
        let later = tokio::time::timeout(Duration::from_secs(5), accepted.next()).await;
        assert!(later.is_ok_and(|c| c.is_some()), "the freed slot went to the waiting connection");
    }
}
