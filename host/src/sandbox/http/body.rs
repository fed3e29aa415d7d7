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

/// The bytes of one body, counted into the event's tally and held to a
/// limit per body.
struct Meter {
    seen: u64,
    limit: u64,
    tally: Arc<Tally>,
    way: Way,
}

/// Which way a body goes.
#[derive(Clone, Copy)]
enum Way {
    /// A request body, out of the node.
    Out,
    /// A response body, into the node.
    In,
}

impl Meter {
    /// Counts `len` more bytes; past the limit, records the refusal and
    /// answers the total so far.
    fn count(&mut self, len: usize) -> Result<(), u64> {
        let len = len as u64;
        self.seen += len;
        let (counter, what) = match self.way {
            Way::Out => (&self.tally.bytes_out, "request"),
            Way::In => (&self.tally.bytes_in, "response"),
        };
        counter.fetch_add(len, Ordering::Relaxed);
        if self.seen > self.limit {
            self.tally.refuse(
                ErrorCode::HttpLimit,
                format!(
                    "a {what} body went past the limit of {} bytes per {what}",
                    self.limit
                ),
            );
            return Err(self.seen);
        }
        Ok(())
    }
}

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
    meter: Meter,
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
            meter: Meter {
                seen: 0,
                limit,
                tally,
                way: Way::Out,
            },
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
        self.meter
            .count(len)
            .map_err(|sent| Error::HttpRequestBodySize(Some(sent)))
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
    meter: Meter,
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
            meter: Meter {
                seen: 0,
                limit,
                tally,
                way: Way::In,
            },
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
        if let Some(data) = frame.data_ref()
            && let Err(received) = this.meter.count(data.len())
        {
            this.in_flight = None;
            return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(received)))));
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
