//! Connection-level defences: caps on open connections (in total and per
//! client address), an idle timeout on the socket, and a deadline on reading
//! a request body. They run before any request is parsed, so a slow or
//! silent client costs a file descriptor for a bounded time and no more.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Open connections, in total and per client address. A slot is held by a
/// [`Slot`] and freed when it drops.
#[derive(Debug)]
pub(crate) struct Connections {
    open: Mutex<(usize, HashMap<String, usize>)>,
    max_total: usize,
    max_per_address: usize,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Total,
    PerAddress,
}

impl Refused {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerAddress => "per_address",
        }
    }
}

/// One open connection's place in [`Connections`].
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    address: Option<String>,
}

impl Connections {
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<Connections> {
        Arc::new(Connections {
            open: Mutex::new((0, HashMap::new())),
            max_total,
            max_per_address,
        })
    }

    /// A slot for a connection from `address` (`None`: a trusted proxy,
    /// counted only in the total).
    pub(crate) fn admit(self: &Arc<Self>, address: Option<String>) -> Result<Slot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.max_total {
            return Err(Refused::Total);
        }
        if let Some(address) = &address {
            let count = open.1.entry(address.clone()).or_insert(0);
            if *count >= self.max_per_address {
                return Err(Refused::PerAddress);
            }
            *count += 1;
        }
        open.0 += 1;
        metrics::gauge!("dynagate_http_connections_open").set(open.0 as f64);
        Ok(Slot {
            connections: Arc::clone(self),
            address,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.0 -= 1;
        if let Some(address) = &self.address
            && let Some(count) = open.1.get_mut(address)
        {
            *count -= 1;
            if *count == 0 {
                open.1.remove(address);
            }
        }
        metrics::gauge!("dynagate_http_connections_open").set(open.0 as f64);
    }
}

/// A socket that fails with `TimedOut` once it has moved no byte for
/// `idle`: a silent connection, an idle keep-alive, a client that stopped
/// sending its body. hyper then closes the connection.
#[derive(Debug)]
pub(crate) struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub(crate) fn new(inner: T, idle: Duration) -> IdleTimeout<T> {
        IdleTimeout {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.sleep.as_mut().reset(Instant::now() + self.idle);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.sleep.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that must be read whole before a deadline (from its first
/// poll): a client that trickles its body a byte at a time is cut off.
#[derive(Debug)]
pub(crate) struct BodyDeadline<B> {
    inner: B,
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

/// The error a body past its deadline ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not sent within {0:?}")]
pub(crate) struct BodyTooSlow(Duration);

impl<B> BodyDeadline<B> {
    pub(crate) fn new(inner: B, limit: Duration) -> BodyDeadline<B> {
        BodyDeadline {
            inner,
            limit,
            sleep: None,
        }
    }
}

impl<B> Body for BodyDeadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let limit = self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTooSlow(limit)))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_address_and_in_total_and_freed_on_drop() {
        let connections = Connections::new(3, 2);
        let a1 = connections.admit(Some("a".into())).unwrap();
        let _a2 = connections.admit(Some("a".into())).unwrap();
        assert_eq!(
            connections.admit(Some("a".into())).unwrap_err(),
            Refused::PerAddress
        );
        let _proxy = connections.admit(None).unwrap();
        assert_eq!(
            connections.admit(Some("b".into())).unwrap_err(),
            Refused::Total
        );
        drop(a1);
        assert_eq!(connections.open(), 2);
        let _b = connections.admit(Some("b".into())).unwrap();
        assert_eq!(connections.open(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_socket_times_out_and_a_busy_one_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, Duration::from_secs(5));
        let mut client = client;
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(4)).await;
            client.write_all(b"x").await.unwrap();
            assert_eq!(server.read(&mut buf).await.unwrap(), 1);
        }
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
