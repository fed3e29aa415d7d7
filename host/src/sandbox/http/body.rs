//! Request and response bodies that count their bytes into the event's
//! tally and stop at their limits. Time needs no watch here: the whole
//! event, its requests' tasks included, ends at its deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use wasmtime_wasi_http::{Error, WasiBody};

use super::{InFlight, Tally};
use crate::sandbox::outcome::ErrorCode;

/// A guest's request body on its way out.
///
/// What the guest has written by the time the request leaves is gathered
/// into one chunk first: a body the guest already finished (most bodies: a
/// guest writes it right after `handle`, before it waits) then goes out
/// with a `Content-Length`, in one write with the request's head, instead
/// of chunked in several (each of which wakes the server). The rest, if the
/// guest is still writing, follows as it comes.
pub(crate) struct RequestBody {
    /// Gathered bytes not yet sent.
    gathered: Option<Bytes>,
    /// A trailers frame met while gathering.
    trailers: Option<Frame<Bytes>>,
    /// What the guest has yet to write; `None` once it finished.
    rest: Option<WasiBody>,
    sent: u64,
    limit: u64,
    tally: Arc<Tally>,
}

impl RequestBody {
    /// Gathers what `inner` holds already; fails (and records why) when
    /// that is more than `limit` bytes.
    pub(crate) fn gather(
        mut inner: WasiBody,
        limit: u64,
        tally: Arc<Tally>,
    ) -> Result<Self, Error> {
        let mut body = Self {
            gathered: None,
            trailers: None,
            rest: None,
            sent: 0,
            limit,
            tally,
        };
        let mut gathered = BytesMut::new();
        loop {
            match inner.frame().now_or_never() {
                // Finished.
                Some(None) => break,
                Some(Some(Err(err))) => return Err(err),
                Some(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        body.count(data.len())?;
                        gathered.extend_from_slice(&data);
                    }
                    Err(trailers) => {
                        body.trailers = Some(trailers);
                        body.rest = Some(inner);
                        break;
                    }
                },
                // The guest is still writing.
                None => {
                    body.rest = Some(inner);
                    break;
                }
            }
        }
        body.gathered = Some(gathered.freeze());
        Ok(body)
    }

    /// Counts `len` more bytes out; an error past the limit.
    fn count(&mut self, len: usize) -> Result<(), Error> {
        let len = len as u64;
        self.sent += len;
        self.tally.bytes_out.fetch_add(len, Ordering::Relaxed);
        if self.sent > self.limit {
            self.tally.refuse(
                ErrorCode::HttpLimit,
                format!(
                    "a request body went past the limit of {} bytes per request",
                    self.limit
                ),
            );
            return Err(Error::HttpRequestBodySize(Some(self.sent)));
        }
        Ok(())
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Some(gathered) = self.gathered.take().filter(|bytes| !bytes.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(gathered))));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(trailers)));
        }
        let Some(rest) = &mut self.rest else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(rest).poll_frame(cx));
        if let Some(Ok(data)) = frame
            .as_ref()
            .map(|frame| frame.as_ref().map(Frame::data_ref))
            && let Some(data) = data
            && let Err(err) = self.count(data.len())
        {
            return Poll::Ready(Some(Err(err)));
        }
        if frame.is_none() {
            self.rest = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.gathered.as_ref().is_none_or(Bytes::is_empty)
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let gathered = self.gathered.as_ref().map_or(0, |bytes| bytes.len() as u64);
        match &self.rest {
            None if self.trailers.is_none() => SizeHint::with_exact(gathered),
            None => SizeHint::new(),
            Some(rest) => {
                let mut hint = rest.size_hint();
                hint.set_lower(hint.lower() + gathered);
                if let Some(upper) = hint.upper() {
                    hint.set_upper(upper + gathered);
                }
                hint
            }
        }
    }
}

/// A response body on its way to the guest.
pub(crate) struct ResponseBody {
    inner: hyper::body::Incoming,
    received: u64,
    limit: u64,
    tally: Arc<Tally>,
    /// Released (and the request's time added up) when the body ends or
    /// is dropped.
    in_flight: Option<InFlight>,
}

impl ResponseBody {
    pub(crate) fn new(
        inner: hyper::body::Incoming,
        limit: u64,
        tally: Arc<Tally>,
        in_flight: InFlight,
    ) -> Self {
        Self {
            inner,
            received: 0,
            limit,
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
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
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
