//! The hub's HTTP listener: HTTP/1.1 with WebSocket upgrades, and HTTP/2
//! with prior knowledge (h2c: no TLS here, that is the proxy's) for callers
//! that send many requests at once over few connections; bounded in
//! connections and in the time a client may take to send a request.
//!
//! Which protocol a connection speaks is told by its first bytes: HTTP/2's
//! preface begins `PRI`, which no HTTP/1.1 request does. Both must come
//! within [`ServeLimits::header_timeout`]. An HTTP/2 connection carries up
//! to [`H2_STREAMS`] requests at once; one that has read nothing for a
//! whole header timeout is shut down gracefully (its requests in flight
//! still get their answers; new ones go to a new connection), as an idle
//! HTTP/1.1 keep-alive connection is closed.
//!
//! A connection holds one place of [`ServeLimits::max_connections`] from
//! accept to close, an upgraded WebSocket included; when every place is
//! taken the hub stops accepting and new clients wait in the kernel's
//! backlog. A client must send a request's headers within
//! [`ServeLimits::header_timeout`] (also the most an idle keep-alive
//! connection is kept), and its body within [`ServeLimits::body_timeout`]
//! of the headers, so a client that trickles bytes cannot hold places.
//! Limits per client address belong to the proxy in front of a public hub:
//! behind one, every client has the proxy's address.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use http_body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests in flight at once on one HTTP/2 connection.
pub const H2_STREAMS: u32 = 256;

/// The most an HTTP/2 request's headers may take, decoded (HTTP/1.1's
/// limit is hyper's, about as large).
const H2_HEADER_BYTES: u32 = 64 << 10;

/// The first bytes of every HTTP/2 connection (RFC 9113, section 3.4); its
/// first three tell it from an HTTP/1.1 request.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How many connections, and how slowly, clients may use the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections open at once, WebSockets included.
    pub max_connections: usize,
    /// The most a client may take to send a request's headers, counted
    /// from the connection's start or the end of its previous request.
    pub header_timeout: Duration,
    /// The most a client may take to send a request's body once its
    /// headers are in.
    pub body_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(120),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::map_request(move |request: Request| {
        std::future::ready(with_body_deadline(request, limits.body_timeout))
    }));
    let places = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let place = match places.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                tracing::warn!(
                    limit = limits.max_connections,
                    "every connection place is taken; new clients wait until one closes"
                );
                tokio::select! {
                    place = places.clone().acquire_owned() => place.expect("the semaphore is never closed"),
                    () = &mut shutdown => return Ok(()),
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: neither ends the hub.
                    tracing::warn!("cannot accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        tokio::spawn(connection(stream, peer, place, app.clone(), limits));
    }
}

/// Serves one connection, holding `place` until it and any WebSocket it
/// was upgraded to close.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    place: OwnedSemaphorePermit,
    app: Router,
    limits: ServeLimits,
) {
    // Events and replies are small frames: without TCP_NODELAY each one can
    // wait out a 40 ms delayed ACK.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY on a connection: {err}");
    }
    let Some(protocol) = sniff(&stream, limits.header_timeout).await else {
        tracing::debug!(%peer, "connection closed before a request began");
        return;
    };
    let reads = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Placed {
        stream,
        reads: reads.clone(),
        _place: place,
    });
    let service = TowerToHyperService::new(app);
    let served = match protocol {
        Protocol::Http1 => {
            hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(io, service)
                .with_upgrades()
                .await
        }
        Protocol::Http2 => {
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(H2_STREAMS)
                .max_header_list_size(H2_HEADER_BYTES)
                .serve_connection(io, service);
            until_idle(connection, &reads, limits.header_timeout, |connection| {
                connection.graceful_shutdown();
            })
            .await
        }
    };
    if let Err(err) = served {
        tracing::debug!(%peer, "connection ended: {err}");
    }
}

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Which protocol the client of `stream` speaks, from its first bytes
/// (peeked: they stay for the protocol to read); `None` when it closed or
/// sent too little within `timeout`.
async fn sniff(stream: &TcpStream, timeout: Duration) -> Option<Protocol> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut first = [0; 3];
    loop {
        let seen = tokio::time::timeout_at(deadline, stream.peek(&mut first))
            .await
            .ok()?
            .ok()?;
        if seen == 0 {
            return None;
        }
        if first[..seen] != H2_PREFACE[..seen] {
            return Some(Protocol::Http1);
        }
        if seen == first.len() {
            return Some(Protocol::Http2);
        }
        // One or two bytes of `PRI`: a peek returns at once while bytes
        // wait unread, so look again a little later.
        let again = tokio::time::Instant::now() + Duration::from_millis(5);
        if again >= deadline {
            return None;
        }
        tokio::time::sleep_until(again).await;
    }
}

/// Serves an HTTP/2 `connection` until it ends, shutting it down gracefully
/// (`shut_down`) once it has read nothing (`reads` unchanged) for a whole
/// `idle` period:
/// new requests are refused (GOAWAY), those in flight answered. A peer
/// that still sends nothing for another period (not even the ack of the
/// shutdown's ping) is not waited for: the connection is dropped.
async fn until_idle<C>(
    connection: C,
    reads: &AtomicU64,
    idle: Duration,
    mut shut_down: impl FnMut(Pin<&mut C>),
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    let mut connection = std::pin::pin!(connection);
    let mut seen = reads.load(Ordering::Relaxed);
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + idle, idle);
    let mut asked = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => return served,
            _ = check.tick() => {
                let now = reads.load(Ordering::Relaxed);
                match (now == seen, asked) {
                    (false, false) => seen = now,
                    (true, false) => {
                        shut_down(connection.as_mut());
                        asked = true;
                    }
                    (true, true) => return Ok(()),
                    // It answered: its requests in flight end by their own
                    // deadlines, and no new one is taken.
                    (false, true) => return connection.await,
                }
            }
        }
    }
}

/// A connection's stream with its place: the place is given back when the
/// stream is dropped, after an upgrade too. Counts its reads that brought
/// bytes.
struct Placed {
    stream: TcpStream,
    reads: Arc<AtomicU64>,
    _place: OwnedSemaphorePermit,
}

impl AsyncRead for Placed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        read
    }
}

impl AsyncWrite for Placed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// `request` with a body that fails once `timeout` has passed, so that a
/// handler reading it gets an error instead of waiting on a trickle.
fn with_body_deadline(request: Request, timeout: Duration) -> Request {
    if request.body().size_hint().exact() == Some(0) {
        return request;
    }
    request.map(|body| {
        Body::new(Deadlined {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        })
    })
}

/// A body that must arrive before `deadline`.
struct Deadlined {
    body: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

/// The error of a body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl http_body::Body for Deadlined {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
