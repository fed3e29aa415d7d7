//! The `{{name}}` node: calls `url` over HTTP with the caller's `api-key`
//! secret as a bearer token, and returns the response's status and body.
//!
//! The secret is never in the node's hands: the header value names it as
//! `${secret:api-key}` and node-host fills it in as the request leaves.
//! node-host runs this node only with a grant of the origins it may call.
//! Build with `./build`, then:
//!
//!     node-host call {{name}}.wasm url=https://api.example.com/v1/things \
//!       --allow-http https://api.example.com --secret api-key=KEY

wit_bindgen::generate!({ path: "wit", world: "remote-node" });

use exports::node_host::node::node::Guest;
use node_host::node::types::{NamedValue, NodeError, NodeInfo, Port, Value};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

struct Node;

fn port(name: &str, description: &str, required: bool) -> Port {
    Port {
        name: name.into(),
        description: description.into(),
        required,
        default_value: None,
    }
}

fn failed(message: String) -> NodeError {
    NodeError {
        code: "http".into(),
        message,
    }
}

/// Sends a GET to `url` and waits for the response's head.
fn get(url: &str) -> Result<IncomingResponse, NodeError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| failed(format!("`{url}` is not an http(s) URL")))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    let headers =
        Fields::from_list(&[("authorization".into(), b"Bearer ${secret:api-key}".to_vec())])
            .map_err(|err| failed(format!("{err:?}")))?;
    let request = OutgoingRequest::new(headers);
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    }));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let body = request.body().expect("a new request's body");
    let response =
        outgoing_handler::handle(request, None).map_err(|err| failed(format!("{err:?}")))?;
    let _ = OutgoingBody::finish(body, None);
    response.subscribe().block();
    response
        .get()
        .expect("ready once waited for")
        .expect("taken once")
        .map_err(|err| failed(format!("{err:?}")))
}

/// The response's body, read to its end.
fn read_body(response: IncomingResponse) -> Result<Vec<u8>, NodeError> {
    let body = response.consume().expect("consumed once");
    let stream = body.stream().expect("a body's stream");
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(err)) => {
                return Err(failed(err.to_debug_string()));
            }
        }
    }
}

impl Guest for Node {
    fn info() -> NodeInfo {
        NodeInfo {
            name: "{{name}}".into(),
            version: "0.1.0".into(),
            description: "Calls an API and returns its answer".into(),
            inputs: vec![port("url", "The URL to GET", true)],
            outputs: vec![
                port("status", "The response's status code", true),
                port("body", "The response's body as text", true),
            ],
            // The node may only use the secrets it declares here.
            secrets: vec!["api-key".into()],
        }
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let url = match inputs
            .iter()
            .find(|input| input.name == "url")
            .map(|input| &input.value)
        {
            Some(Value::Text(url)) => url.clone(),
            _ => return Err(failed("url must be text".into())),
        };
        let response = get(&url)?;
        let status = response.status();
        let body = read_body(response)?;
        Ok(vec![
            NamedValue {
                name: "status".into(),
                value: Value::Integer(status.into()),
            },
            NamedValue {
                name: "body".into(),
                value: Value::Text(String::from_utf8_lossy(&body).into_owned()),
            },
        ])
    }
}

export!(Node);
