//! The hub's HTTP listener: HTTP/1.1 with WebSocket upgrades, bounded in
//! connections and in the time a client may take to send a request.
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
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use http_body::Body as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    let io = TokioIo::new(Placed {
        stream,
        _place: place,
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, TowerToHyperService::new(app))
        .with_upgrades()
        .await;
    if let Err(err) = served {
        tracing::debug!(%peer, "connection ended: {err}");
    }
}

/// A connection's stream with its place: the place is given back when the
/// stream is dropped, after an upgrade too.
struct Placed {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
}

impl AsyncRead for Placed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
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
