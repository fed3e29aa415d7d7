//! Calls a URL over `wasi:http` and returns the response: the example of a
//! node that talks to an API, and the guest of node-host's outbound HTTP
//! tests (its extra inputs make it misbehave on purpose).
//!
//! Inputs: `url`; `method` (GET); `body` (text sent as the request body);
//! `headers` (a JSON object of header names to values; a value may name a
//! secret as `${secret:api-key}` for the host to fill in); `auth` (true:
//! send `Authorization: Bearer <api-key>` read by the guest itself);
//! `repeat` (make the request this many times, one after another);
//! `parallel` (open this many requests at once before reading any);
//! `follow` (true: follow one redirect); `prefill` (write this many bytes
//! of body before sending the request).
//!
//! Outputs: `status`, `body` (text) and `requests` (how many it made).

use guest_kit::{
    Guest, Level, NamedValue, NodeError, NodeInfo, Value, info, input, integer_input, log, output,
    port, secret,
};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

struct Fetch;

/// Bytes written to an output stream per call.
const CHUNK: usize = 4096;

fn failed(code: &str, message: String) -> NodeError {
    NodeError {
        code: code.into(),
        message,
    }
}

fn text(inputs: &[NamedValue], name: &str) -> Option<String> {
    match input(inputs, name)? {
        Value::Text(text) => Some(text.clone()),
        _ => None,
    }
}

fn flag(inputs: &[NamedValue], name: &str) -> bool {
    matches!(input(inputs, name), Some(Value::Boolean(true)))
}

/// What one request is made of.
struct Call {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    prefill: usize,
}

impl Call {
    /// Sends the request; the response is waited for apart.
    fn send(&self) -> Result<FutureIncomingResponse, NodeError> {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| failed("bad_url", format!("`{}` has no scheme", self.url)))?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.into()),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let fields = Fields::from_list(&self.headers)
            .map_err(|err| failed("bad_header", format!("{err:?}")))?;
        let request = OutgoingRequest::new(fields);
        let _ = request.set_method(&self.method);
        let _ = request.set_scheme(Some(&scheme));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some(path));
        let body = request.body().expect("a new request's body");
        if self.prefill > 0 {
            // Writes before `handle`: nothing reads the body yet.
            let stream = body.write().expect("a new body's stream");
            let chunk = vec![b'x'; CHUNK];
            let mut left = self.prefill;
            while left > 0 {
                let n = left.min(CHUNK);
                stream
                    .blocking_write_and_flush(&chunk[..n])
                    .map_err(|err| failed("write", format!("{err:?}")))?;
                left -= n;
            }
        }
        let future = outgoing_handler::handle(request, None).map_err(http_failed)?;
        if let Some(bytes) = &self.body {
            let stream = body.write().expect("a body's stream");
            for chunk in bytes.chunks(CHUNK) {
                if let Err(err) = stream.blocking_write_and_flush(chunk) {
                    // The host may have refused the body (too large): the
                    // response says why.
                    log(Level::Warn, &format!("writing the body failed: {err:?}"));
                    break;
                }
            }
            drop(stream);
        }
        let _ = OutgoingBody::finish(body, None);
        Ok(future)
    }
}

fn http_failed(code: ErrorCode) -> NodeError {
    failed("http", format!("{code:?}"))
}

fn wait(future: FutureIncomingResponse) -> Result<IncomingResponse, NodeError> {
    future.subscribe().block();
    future
        .get()
        .expect("ready after block")
        .expect("taken once")
        .map_err(http_failed)
}

fn read_body(response: IncomingResponse) -> Result<Vec<u8>, NodeError> {
    let body = response.consume().expect("consumed once");
    let stream = body.stream().expect("a body's stream");
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(err)) => {
                return Err(failed("http", err.to_debug_string()));
            }
        }
    }
    Ok(bytes)
}

fn location(response: &IncomingResponse) -> Option<String> {
    let headers = response.headers();
    let values = headers.get("location");
    values
        .first()
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

impl Guest for Fetch {
    fn info() -> NodeInfo {
        let mut info = info(
            "fetch",
            "Calls a URL over HTTP and returns the response",
            vec![
                port("url", "The URL to call", true),
                port(
                    "method",
                    "GET, POST, PUT, DELETE or PATCH (default GET)",
                    false,
                ),
                port("body", "Text to send as the request body", false),
                port("headers", "A JSON object of request headers", false),
                port("auth", "Send the api-key secret as a bearer token", false),
                port("repeat", "Make the request this many times", false),
                port("parallel", "Open this many requests at once", false),
                port("follow", "Follow one redirect", false),
                port("prefill", "Bytes of body written before sending", false),
            ],
            vec![
                port("status", "The response's status code", true),
                port("body", "The response's body as text", true),
                port("requests", "How many requests were made", true),
            ],
        );
        info.secrets = vec!["api-key".into()];
        info
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let url = text(&inputs, "url").ok_or_else(|| failed("bad_url", "no url".into()))?;
        let method = match text(&inputs, "method").as_deref().unwrap_or("GET") {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            other => Method::Other(other.into()),
        };
        let mut headers = Vec::new();
        if let Some(Value::Json(json)) = input(&inputs, "headers") {
            headers.extend(parse_headers(json)?);
        }
        if flag(&inputs, "auth") {
            let key = secret("api-key").ok_or_else(|| failed("no_secret", "no api-key".into()))?;
            headers.push(("authorization".into(), format!("Bearer {key}").into_bytes()));
        }
        let call = Call {
            method,
            url,
            headers,
            body: text(&inputs, "body").map(String::into_bytes),
            prefill: integer_input(&inputs, "prefill").unwrap_or(0).max(0) as usize,
        };
        let repeat = integer_input(&inputs, "repeat").unwrap_or(1).max(1);
        let parallel = integer_input(&inputs, "parallel").unwrap_or(1).max(1);
        let mut made = 0;
        let mut last = None;
        for _ in 0..repeat {
            // Every request is open before the first response is read.
            let mut open = Vec::new();
            for _ in 0..parallel {
                open.push(call.send()?);
                made += 1;
            }
            let mut responses = Vec::new();
            for future in open {
                responses.push(wait(future)?);
            }
            let mut response = responses.pop().expect("at least one");
            if flag(&inputs, "follow")
                && (300..400).contains(&response.status())
                && let Some(to) = location(&response)
            {
                let hop = Call {
                    url: to,
                    method: Method::Get,
                    headers: Vec::new(),
                    body: None,
                    prefill: 0,
                };
                made += 1;
                response = wait(hop.send()?)?;
            }
            let status = response.status();
            let body = read_body(response)?;
            last = Some((status, body));
        }
        let (status, body) = last.expect("at least one request");
        Ok(vec![
            output("status", Value::Integer(i64::from(status))),
            output(
                "body",
                Value::Text(String::from_utf8_lossy(&body).into_owned()),
            ),
            output("requests", Value::Integer(made)),
        ])
    }
}

/// `{"name": "value", …}` as header fields (values must be strings).
fn parse_headers(json: &str) -> Result<Vec<(String, Vec<u8>)>, NodeError> {
    let bad = || {
        failed(
            "bad_header",
            format!("headers must be an object of strings: {json}"),
        )
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|_| bad())?;
    object
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(value) => Ok((name.to_ascii_lowercase(), value.into_bytes())),
            _ => Err(bad()),
        })
        .collect()
}

guest_kit::export_node!(Fetch with_types_in guest_kit);
