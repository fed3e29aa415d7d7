//! Request and response bodies that count their bytes into the event's
//! tally and stop at its limits (and the response body at its deadline).

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::{Error, WasiBody};

use super::{InFlight, Tally};
use crate::sandbox::outcome::ErrorCode;

/// A guest's request body on its way out.
pub(crate) struct RequestBody {
    inner: WasiBody,
    sent: u64,
    limit: u64,
    tally: Arc<Tally>,
}

impl RequestBody {
    pub(crate) fn new(inner: WasiBody, limit: u64, tally: Arc<Tally>) -> Self {
        Self {
            inner,
            sent: 0,
            limit,
            tally,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame
            .as_ref()
            .map(|frame| frame.as_ref().map(Frame::data_ref))
            && let Some(data) = data
        {
            let len = data.len() as u64;
            self.sent += len;
            self.tally.bytes_out.fetch_add(len, Ordering::Relaxed);
            if self.sent > self.limit {
                let limit = self.limit;
                self.tally.refuse(
                    ErrorCode::HttpLimit,
                    format!("a request body went past the limit of {limit} bytes per request"),
                );
                return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(self.sent)))));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body on its way to the guest.
pub(crate) struct ResponseBody {
    inner: hyper::body::Incoming,
    received: u64,
    limit: u64,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    tally: Arc<Tally>,
    /// Released (and the request's time added up) when the body ends or
    /// is dropped.
    in_flight: Option<InFlight>,
}

impl ResponseBody {
    pub(crate) fn new(
        inner: hyper::body::Incoming,
        limit: u64,
        deadline: Option<Instant>,
        tally: Arc<Tally>,
        in_flight: InFlight,
    ) -> Self {
        Self {
            inner,
            received: 0,
            limit,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at.into()))),
            tally,
            in_flight: Some(in_flight),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if let Some(deadline) = &mut this.deadline {
                    ready!(deadline.as_mut().poll(cx));
                    this.in_flight = None;
                    return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
                }
                return Poll::Pending;
            }
        };
        let frame = match frame {
            None => {
                this.in_flight = None;
                return Poll::Ready(None);
            }
            Some(Err(err)) => {
                this.in_flight = None;
                return Poll::Ready(Some(Err(Error::Hyper(err))));
            }
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            this.received += len;
            this.tally.bytes_in.fetch_add(len, Ordering::Relaxed);
            if this.received > this.limit {
                this.in_flight = None;
                this.tally.refuse(
                    ErrorCode::HttpLimit,
                    format!(
                        "a response body went past the limit of {} bytes per response",
                        this.limit
                    ),
                );
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(this.received)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
