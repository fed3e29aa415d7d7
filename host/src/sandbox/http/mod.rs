//! Outbound HTTP for nodes granted it: `wasi:http/outgoing-handler` with
//! every request checked against the node's allowed origins, its account's
//! client and the event's limits and deadline.
//!
//! wasmtime-wasi-http calls [`WasiHttpHooks::send_request`] synchronously
//! from the guest's `handle`, before anything leaves, so every check is made
//! there: a refused request never reaches the network. The request then
//! runs on the account's pooled client; redirects are not followed by the
//! host (a guest that follows one makes a new request, checked again).

mod address;
mod body;
mod client;
mod origin;

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

pub use address::is_private;
pub use client::{Outbound, OutboundError, OutboundSettings};
pub use origin::{Origin, OriginError, Scheme};

use self::body::{RequestBody, ResponseBody};
use self::client::ProhibitedAddress;
use super::outcome::{ErrorCode, Failure};

/// Requests one event may make, by default.
pub const DEFAULT_HTTP_REQUESTS: u32 = 32;
/// Requests one event may have open at once, by default.
pub const DEFAULT_HTTP_CONCURRENT: u32 = 4;
/// Bytes of one request body, by default.
pub const DEFAULT_HTTP_REQUEST_BYTES: u64 = 1 << 20;
/// Bytes of one response body, by default.
pub const DEFAULT_HTTP_RESPONSE_BYTES: u64 = 8 << 20;

/// The syntax of a header value the host fills with a secret: the guest
/// writes `Bearer ${secret:API_KEY}` and never holds the key itself.
const SECRET_OPEN: &str = "${secret:";

/// Limits on one event's outbound HTTP. Time is the event's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpLimits {
    /// Requests per event; `http_limit` beyond.
    pub requests: u32,
    /// Requests open at once (sent, response body not yet read to its end
    /// or dropped); `http_limit` beyond.
    pub concurrent: u32,
    /// Bytes of each request body; `http_limit` beyond.
    pub request_bytes: u64,
    /// Bytes of each response body; `http_limit` beyond.
    pub response_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            requests: DEFAULT_HTTP_REQUESTS,
            concurrent: DEFAULT_HTTP_CONCURRENT,
            request_bytes: DEFAULT_HTTP_REQUEST_BYTES,
            response_bytes: DEFAULT_HTTP_RESPONSE_BYTES,
        }
    }
}

/// How loading treats a node that imports `wasi:http`.
#[derive(Debug, Clone, Default)]
pub enum HttpGrant {
    /// Refuse to load it ([`LoadError::HttpNotGranted`](crate::sandbox::LoadError)).
    #[default]
    Refused,
    /// Load it with every request refused, for a caller that decides on
    /// the grant once it knows the node's name (see
    /// [`NodeComponent::with_http`](crate::sandbox::NodeComponent::with_http)).
    Later,
    /// Load it with this access.
    Given(Arc<HttpAccess>),
}

impl From<Option<Arc<HttpAccess>>> for HttpGrant {
    fn from(access: Option<Arc<HttpAccess>>) -> Self {
        access.map_or(HttpGrant::Refused, HttpGrant::Given)
    }
}

/// What a loaded node may reach: allowed origins in one or more layers (a
/// request must be allowed by every layer: an account's policy above a
/// node's own grant), its limits, and its account's client.
pub struct HttpAccess {
    /// Replaced in place when a grant or policy changes, so nodes already
    /// loaded (and their instances made ahead) follow at once.
    layers: RwLock<Vec<Vec<Origin>>>,
    limits: HttpLimits,
    outbound: Arc<Outbound>,
    account: String,
}

impl std::fmt::Debug for HttpAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAccess")
            .field("layers", &self.layers)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl HttpAccess {
    /// Access through `account`'s client: a request must match an origin
    /// of every layer.
    pub fn new(
        outbound: &Arc<Outbound>,
        account: &str,
        layers: Vec<Vec<Origin>>,
        limits: HttpLimits,
    ) -> Arc<Self> {
        Arc::new(Self {
            layers: RwLock::new(layers),
            limits,
            outbound: outbound.clone(),
            account: account.to_owned(),
        })
    }

    /// The limits of each event.
    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// Replaces the layers of allowed origins.
    pub fn set_layers(&self, layers: Vec<Vec<Origin>>) {
        *self
            .layers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = layers;
    }

    /// The layers of allowed origins.
    pub fn layers(&self) -> Vec<Vec<Origin>> {
        self.layers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn allows(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        let layers = self
            .layers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !layers.is_empty()
            && layers
                .iter()
                .all(|layer| layer.iter().any(|origin| origin.allows(scheme, host, port)))
    }
}

/// One event's outbound HTTP, added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpUsage {
    /// Requests the guest made (refused ones included).
    pub requests: u32,
    /// Request body bytes sent.
    pub bytes_out: u64,
    /// Response body bytes received.
    pub bytes_in: u64,
    /// Time requests were open, summed over requests (from `handle` to
    /// the end of the response body), in microseconds.
    pub waiting_us: u64,
}

/// The live counters of one event, shared with its requests' tasks.
#[derive(Debug)]
pub(crate) struct Tally {
    /// What the start times of requests are counted from.
    base: Instant,
    requests: AtomicU32,
    in_flight: AtomicU32,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    /// Time of the requests that ended.
    waiting_nanos: AtomicU64,
    /// The sum of the start times of the requests still open, so their
    /// time so far is counted when the event ends before them.
    open_since_nanos: AtomicU64,
    refusal: Mutex<Option<Failure>>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            requests: AtomicU32::default(),
            in_flight: AtomicU32::default(),
            bytes_out: AtomicU64::default(),
            bytes_in: AtomicU64::default(),
            waiting_nanos: AtomicU64::default(),
            open_since_nanos: AtomicU64::default(),
            refusal: Mutex::default(),
        }
    }
}

impl Tally {
    /// Records why the host refused a request (the first reason is kept).
    pub(crate) fn refuse(&self, code: ErrorCode, message: String) {
        let mut refusal = self
            .refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        refusal.get_or_insert(Failure::new(code, message));
    }

    /// The first request the host refused, if any.
    pub(crate) fn refusal(&self) -> Option<Failure> {
        self.refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn usage(&self) -> HttpUsage {
        let open = u64::from(self.in_flight.load(Ordering::Acquire));
        let so_far =
            (open * self.nanos_now()).saturating_sub(self.open_since_nanos.load(Ordering::Acquire));
        HttpUsage {
            requests: self.requests.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            waiting_us: (self.waiting_nanos.load(Ordering::Relaxed) + so_far) / 1_000,
        }
    }

    /// True while a request of the event is open.
    pub(crate) fn any_open(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    fn nanos_now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Counts a request as open from now.
    fn open(self: &Arc<Self>) -> InFlight {
        let started = self.nanos_now();
        self.open_since_nanos.fetch_add(started, Ordering::AcqRel);
        InFlight {
            tally: self.clone(),
            started,
        }
    }
}

/// One open request: counted in the event's concurrency while it lives,
/// and its time added to the tally when it ends.
pub(crate) struct InFlight {
    tally: Arc<Tally>,
    /// Nanoseconds from the tally's base.
    started: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let tally = &self.tally;
        let nanos = tally.nanos_now().saturating_sub(self.started);
        tally.waiting_nanos.fetch_add(nanos, Ordering::Relaxed);
        tally
            .open_since_nanos
            .fetch_sub(self.started, Ordering::AcqRel);
        tally.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The `wasi:http` hooks of one event.
#[derive(Default)]
pub(crate) struct EventHttp {
    /// `None`: every request is refused (a node loaded without a grant,
    /// and pre-initialization's `info` call).
    access: Option<Arc<HttpAccess>>,
    /// The node's declared secrets, for `${secret:NAME}` in headers.
    secrets: Vec<(String, String)>,
    pub(crate) tally: Arc<Tally>,
}

/// A refusal: the error the guest sees, and the event's failure if the
/// event then fails.
type Refusal = (Error, ErrorCode, String);

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl EventHttp {
    pub(crate) fn new(access: Option<Arc<HttpAccess>>, secrets: Vec<(String, String)>) -> Self {
        Self {
            access,
            secrets,
            tally: Arc::default(),
        }
    }

    /// True when the node was loaded with a grant.
    pub(crate) fn granted(&self) -> bool {
        self.access.is_some()
    }

    /// Every check a request must pass before it leaves.
    fn admit(
        &self,
        request: &mut Request<WasiBody>,
    ) -> Result<(Arc<HttpAccess>, InFlight), Refusal> {
        let denied = |message: String| (Error::HttpRequestDenied, ErrorCode::HttpDenied, message);
        let Some(access) = &self.access else {
            return Err(denied(
                "this node has no outbound HTTP grant, so every request is refused".into(),
            ));
        };
        let uri = request.uri();
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err(denied("only http and https URLs may be requested".into())),
        };
        let Some(authority) = uri.authority() else {
            return Err(denied("the request names no host".into()));
        };
        if authority.as_str().contains('@') {
            return Err(denied(
                "URLs with a user name or password are refused; send credentials in a header"
                    .into(),
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(scheme.default_port());
        // Only a refusal's message shows the origin: no string per request.
        let shown = || match authority.port_u16() {
            Some(port) => format!("{}://{}:{port}", scheme.as_str(), authority.host()),
            None => format!("{}://{}", scheme.as_str(), authority.host()),
        };
        if !access.allows(scheme, &host, port) {
            return Err(denied(format!(
                "{} is not an allowed origin of this node; grant it to the node \
                 (and to its account's policy on a hub) to let it through",
                shown()
            )));
        }
        if let Ok(ip) = host.parse()
            && is_private(ip)
            && !access.outbound.private_addresses()
        {
            return Err((
                Error::DestinationIpProhibited,
                ErrorCode::HttpDenied,
                format!(
                    "{} is a private address; nodes reach private addresses only when \
                     the operator starts node-host with --allow-private-addresses",
                    shown()
                ),
            ));
        }
        let limits = access.limits;
        let made = self.tally.requests.fetch_add(1, Ordering::AcqRel) + 1;
        if made > limits.requests {
            return Err((
                Error::ConnectionLimitReached,
                ErrorCode::HttpLimit,
                format!(
                    "the event made more than {} requests, its limit",
                    limits.requests
                ),
            ));
        }
        let open = self.tally.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let in_flight = self.tally.open();
        if open > limits.concurrent {
            return Err((
                Error::ConnectionLimitReached,
                ErrorCode::HttpLimit,
                format!(
                    "the event had more than {} requests open at once, its limit \
                     (read or drop a response's body before the next request)",
                    limits.concurrent
                ),
            ));
        }
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if let Some(length) = declared.filter(|length| *length > limits.request_bytes) {
            return Err((
                Error::HttpRequestBodySize(Some(length)),
                ErrorCode::HttpLimit,
                format!(
                    "a request body of {length} bytes is past the limit of {} bytes",
                    limits.request_bytes
                ),
            ));
        }
        self.fill_secrets(request).map_err(denied)?;
        Ok((access.clone(), in_flight))
    }

    /// Replaces `${secret:NAME}` in header values with the node's secret.
    fn fill_secrets(&self, request: &mut Request<WasiBody>) -> Result<(), String> {
        for value in request.headers_mut().values_mut() {
            let Ok(text) = value.to_str() else { continue };
            if !text.contains(SECRET_OPEN) {
                continue;
            }
            let mut filled = String::with_capacity(text.len());
            let mut rest = text;
            while let Some(at) = rest.find(SECRET_OPEN) {
                filled.push_str(&rest[..at]);
                let after = &rest[at + SECRET_OPEN.len()..];
                let Some(end) = after.find('}') else {
                    return Err("a header has `${secret:` without its closing `}`".into());
                };
                let name = &after[..end];
                let Some((_, secret)) = self.secrets.iter().find(|(declared, _)| declared == name)
                else {
                    return Err(format!(
                        "a header names secret `{name}`, which the node does not declare \
                         or the caller did not give"
                    ));
                };
                filled.push_str(secret);
                rest = &after[end + 1..];
            }
            filled.push_str(rest);
            let mut new = HeaderValue::from_str(&filled)
                .map_err(|_| "a secret filled into a header is not a valid header value")?;
            new.set_sensitive(true);
            *value = new;
        }
        Ok(())
    }
}

impl WasiHttpHooks for EventHttp {
    fn send_request(
        &mut self,
        mut request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let (access, in_flight) = match self.admit(&mut request) {
            Ok(admitted) => admitted,
            Err((error, code, message)) => {
                tracing::debug!("outbound request refused: {message}");
                self.tally.refuse(code, message);
                return Box::new(async move { Err(error) });
            }
        };
        let tally = self.tally.clone();
        Box::new(send(access, request, options, tally, in_flight))
    }
}

/// Sends an admitted request on the account's client and wraps its
/// response body; everything ends by the event's deadline.
async fn send(
    access: Arc<HttpAccess>,
    request: Request<WasiBody>,
    options: Option<RequestOptions>,
    tally: Arc<Tally>,
    in_flight: InFlight,
) -> Result<
    (
        Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
> {
    let limits = access.limits;
    let (parts, body) = request.into_parts();
    let body = RequestBody::gather(body, limits.request_bytes, tally.clone())?;
    let request = Request::from_parts(parts, body);
    // The event's deadline ends the request with the event; the guest may
    // ask to wait less for the response's head.
    let head_by = options.and_then(|options| options.first_byte_timeout);
    let sent = access.outbound.client(&access.account).request(request);
    let response = match head_by {
        None => sent.await,
        Some(wait) => match tokio::time::timeout(wait, sent).await {
            Ok(response) => response,
            Err(_) => return Err(Error::HttpResponseTimeout),
        },
    }
    .map_err(|err| client_error(&err, &tally))?;
    let length = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = length.filter(|length| *length > limits.response_bytes) {
        tally.refuse(
            ErrorCode::HttpLimit,
            format!(
                "a response body of {length} bytes is past the limit of {} bytes",
                limits.response_bytes
            ),
        );
        return Err(Error::HttpResponseBodySize(Some(length)));
    }
    let response = response.map(|incoming| {
        ResponseBody::new(incoming, limits.response_bytes, tally, in_flight).boxed_unsync()
    });
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
    Ok((response, io))
}

/// The guest's error code for a request the client could not complete,
/// recording a refusal when the cause was node-host's own check.
fn client_error(err: &hyper_util::client::legacy::Error, tally: &Tally) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        // An io::Error's `source` skips the error it wraps: look inside.
        let wrapped = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<ProhibitedAddress>());
        if let Some(prohibited) = wrapped.or_else(|| cause.downcast_ref::<ProhibitedAddress>()) {
            tally.refuse(
                ErrorCode::HttpDenied,
                format!(
                    "{prohibited}; nodes reach private addresses only when the operator \
                     starts node-host with --allow-private-addresses"
                ),
            );
            return Error::DestinationIpProhibited;
        }
        if let Some(own) = cause.downcast_ref::<Error>() {
            return match own {
                Error::HttpRequestBodySize(size) => Error::HttpRequestBodySize(*size),
                _ => Error::HttpProtocolError,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
                std::io::ErrorKind::TimedOut => Error::ConnectionTimeout,
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                    Error::ConnectionTerminated
                }
                _ if err.is_connect() => Error::DestinationUnavailable,
                _ => Error::HttpProtocolError,
            };
        }
        source = cause.source();
    }
    if err.is_connect() {
        Error::DestinationUnavailable
    } else {
        Error::HttpProtocolError
    }
}
