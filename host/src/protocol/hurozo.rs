//! Hurozo's remote-node protocol, as documented in the `hurozo/nodes` README
//! and spoken by the `hurozo` 0.1.1 Python worker.
//!
//! - `POST /api/remote_nodes/register` with [`Registration`], answered with
//!   [`Registered`] (or an [`ApiError`]).
//! - `GET /api/remote_nodes`, answered with [`NodeList`].
//! - On the WebSocket, the backend sends [`Event`]s and the worker answers
//!   each with a [`Reply`]. node-host adds an optional `error` to the reply,
//!   which backends that do not know it ignore.
//! - node-host's hub adds `POST /api/remote_nodes/{name}/execute` with
//!   [`ExecuteRequest`], answered with [`ExecuteResponse`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::core::{self, AccountId};
use crate::sandbox::value::{NodeInfo, inputs_from_json};
use crate::sandbox::{Outcome, valid_node_name};

/// The errors Hurozo's documentation names, word for word.
pub mod errors {
    /// The name is empty or contains `/`.
    pub const INVALID_NAME: &str = "Missing or invalid name";
    /// The outputs list is empty.
    pub const NO_OUTPUTS: &str = "At least one output required";
    /// The bearer token is unknown (or read-only where writing is needed).
    pub const INVALID_TOKEN: &str = "Invalid API token";
    /// There is no `Authorization` header.
    pub const MISSING_AUTH: &str = "Missing Authorization header";
}

/// Body of `POST /api/remote_nodes/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The node's name: not empty, no `/`, unique per account.
    pub name: String,
    /// Names of its inputs.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Names of its outputs (at least one).
    #[serde(default)]
    pub outputs: Vec<String>,
}

impl Registration {
    /// The registration of a loaded node.
    pub fn of(info: &NodeInfo) -> Self {
        Self {
            name: info.name.clone(),
            inputs: info.inputs.iter().map(|port| port.name.clone()).collect(),
            outputs: info.outputs.iter().map(|port| port.name.clone()).collect(),
        }
    }

    /// Checks the documented rules; `Err` holds the documented message.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !valid_node_name(&self.name) {
            return Err(errors::INVALID_NAME);
        }
        if self.outputs.is_empty() {
            return Err(errors::NO_OUTPUTS);
        }
        Ok(())
    }
}

/// Answer to a successful registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// Always `registered`.
    pub status: String,
    /// Where the worker connects, with `?auth=<token>` appended.
    pub websocket_url: String,
    /// The short-lived WebSocket token.
    pub token: String,
    /// The registered inputs.
    pub inputs: Vec<String>,
    /// The registered outputs.
    pub outputs: Vec<String>,
}

/// One entry of `GET /api/remote_nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedNode {
    /// The node's name.
    pub name: String,
    /// Its inputs.
    pub inputs: Vec<String>,
    /// Its outputs.
    pub outputs: Vec<String>,
}

/// Answer to `GET /api/remote_nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeList {
    /// The account's non-expired registrations.
    pub nodes: Vec<ListedNode>,
}

/// An error answer of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The message (one of [`errors`] where the documentation names it).
    pub error: String,
    /// A stable code callers can branch on, such as `unknown_node` or, for a
    /// node that failed, the node's error code (a node-host extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl ApiError {
    /// An error with a message and a code.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: message.into(),
            code: Some(code.to_owned()),
        }
    }
}

/// A `remote_node` event, backend to worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `remote_node`; the Python worker ignores it, and so does node-host.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The node the event is for; workers ignore events for other nodes.
    pub node: String,
    /// The inputs by name.
    #[serde(default)]
    pub inputs: Map<String, Json>,
    /// Correlates the reply with the request; echoed back unchanged.
    #[serde(default)]
    pub uuid: Json,
    /// The W3C trace the event belongs to (a node-host extension, sent only
    /// while the hub exports traces; Hurozo's worker ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Why an event failed, in a reply (a node-host extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    /// A stable code such as `out_of_fuel` (see the README's table).
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// A reply to one event, worker to backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The node that ran.
    pub node: String,
    /// Outputs by name; empty when the event failed.
    pub outputs: Map<String, Json>,
    /// The event's uuid, unchanged.
    pub uuid: Json,
    /// Present when the event failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
}

impl Event {
    /// The domain event this asks `account` for, and the uuid its reply
    /// must echo unchanged (any JSON value; the event's id is its text).
    pub fn into_domain(self, account: AccountId) -> (core::Event, Json) {
        let id = match &self.uuid {
            Json::String(uuid) => uuid.clone(),
            other => other.to_string(),
        };
        let event = core::Event {
            id,
            account,
            node: self.node,
            inputs: inputs_from_json(self.inputs),
            deadline: None,
        };
        (event, self.uuid)
    }
}

impl Reply {
    /// The reply of node `node` to the event `uuid`, given its outcome.
    pub fn of_outcome(node: &str, uuid: Json, outcome: &Outcome) -> Self {
        match core::json_outputs(outcome) {
            Ok(outputs) => Self {
                node: node.to_owned(),
                outputs,
                uuid,
                error: None,
            },
            Err(failure) => Self::refused(node, uuid, &failure.code, &failure.message),
        }
    }

    /// A failed reply of node `node` to the event `uuid`: empty outputs
    /// plus the error.
    pub fn refused(node: &str, uuid: Json, code: &str, message: &str) -> Self {
        Self {
            node: node.to_owned(),
            outputs: Map::new(),
            uuid,
            error: Some(ReplyError {
                code: code.to_owned(),
                message: message.to_owned(),
            }),
        }
    }

    /// A successful reply.
    #[cfg(test)]
    pub fn success(event: &Event, outputs: Map<String, Json>) -> Self {
        Self {
            node: event.node.clone(),
            outputs,
            uuid: event.uuid.clone(),
            error: None,
        }
    }

    /// A failed reply: empty outputs plus the error.
    #[cfg(test)]
    pub fn failure(event: &Event, code: &str, message: &str) -> Self {
        Self::refused(&event.node, event.uuid.clone(), code, message)
    }
}

/// Body of node-host's `POST /api/remote_nodes/{name}/execute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteRequest {
    /// The inputs by name.
    #[serde(default)]
    pub inputs: Map<String, Json>,
    /// How long to wait for the reply (default and cap: 600 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Answer of a successful execute: outputs in registered order, missing
/// keys null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteResponse {
    /// The node.
    pub node: String,
    /// The event's uuid.
    pub uuid: String,
    /// The outputs in the order the node registered them.
    pub outputs: Map<String, Json>,
    /// The event's outbound HTTP, for an uploaded node granted it (a field
    /// Hurozo's backend does not send; its clients read only the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::sandbox::http::HttpUsage>,
}

impl ExecuteResponse {
    /// Orders a worker's outputs by the registered names; names the worker
    /// left out become null and names it was not registered with are dropped,
    /// as Hurozo's backend does.
    pub fn ordered(
        node: &str,
        uuid: &str,
        registered: &[String],
        mut outputs: Map<String, Json>,
    ) -> Self {
        let outputs = registered
            .iter()
            .map(|name| (name.clone(), outputs.remove(name).unwrap_or(Json::Null)))
            .collect();
        Self {
            node: node.to_owned(),
            uuid: uuid.to_owned(),
            outputs,
            http: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registration_golden() {
        let wire =
            json!({"name": "ws_hello", "inputs": ["name"], "outputs": ["greeting", "shout"]});
        let registration: Registration = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(registration.validate(), Ok(()));
        assert_eq!(serde_json::to_value(&registration).unwrap(), wire);
    }

    #[test]
    fn registration_rules_use_the_documented_errors() {
        let bad_name = Registration {
            name: "a/b".into(),
            inputs: vec![],
            outputs: vec!["x".into()],
        };
        assert_eq!(bad_name.validate(), Err("Missing or invalid name"));
        let no_outputs: Registration = serde_json::from_value(json!({"name": "n"})).unwrap();
        assert_eq!(no_outputs.validate(), Err("At least one output required"));
    }

    #[test]
    fn api_error_golden() {
        let documented = ApiError {
            error: errors::MISSING_AUTH.into(),
            code: None,
        };
        assert_eq!(
            serde_json::to_string(&documented).unwrap(),
            r#"{"error":"Missing Authorization header"}"#
        );
        assert_eq!(
            serde_json::to_string(&ApiError::new("unknown_node", "unknown node `x`")).unwrap(),
            r#"{"error":"unknown node `x`","code":"unknown_node"}"#
        );
    }

    #[test]
    fn registered_golden() {
        let wire = json!({
            "status": "registered",
            "websocket_url": "ws://127.0.0.1:9/ws",
            "token": "abc+/=",
            "inputs": ["name"],
            "outputs": ["greeting", "shout"]
        });
        let registered: Registered = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(serde_json::to_value(registered).unwrap(), wire);
    }

    #[test]
    fn event_without_type_or_inputs_parses() {
        let event: Event = serde_json::from_value(json!({"node": "n", "uuid": "u1"})).unwrap();
        assert_eq!(event.kind, None);
        assert!(event.inputs.is_empty());
        let typed: Event = serde_json::from_value(
            json!({"type": "remote_node", "node": "n", "inputs": {"a": 1}, "uuid": "u2"}),
        )
        .unwrap();
        assert_eq!(typed.kind.as_deref(), Some("remote_node"));
    }

    #[test]
    fn reply_golden_success_has_no_error_key() {
        let event: Event = serde_json::from_value(json!({"node": "hello", "uuid": "u1"})).unwrap();
        let mut outputs = Map::new();
        outputs.insert("greeting".into(), json!("Hello world"));
        let reply = Reply::success(&event, outputs);
        assert_eq!(
            serde_json::to_value(reply).unwrap(),
            json!({"node": "hello", "outputs": {"greeting": "Hello world"}, "uuid": "u1"})
        );
    }

    #[test]
    fn reply_golden_failure() {
        let event: Event = serde_json::from_value(json!({"node": "spin", "uuid": "u9"})).unwrap();
        let reply = Reply::failure(&event, "out_of_fuel", "the event ran out of fuel");
        assert_eq!(
            serde_json::to_value(reply).unwrap(),
            json!({
                "node": "spin", "outputs": {}, "uuid": "u9",
                "error": {"code": "out_of_fuel", "message": "the event ran out of fuel"}
            })
        );
    }

    #[test]
    fn execute_response_orders_and_fills_nulls() {
        let mut outputs = Map::new();
        outputs.insert("shout".into(), json!("HI"));
        outputs.insert("stray".into(), json!(1));
        let registered = vec!["greeting".to_owned(), "shout".to_owned()];
        let response = ExecuteResponse::ordered("hello", "u1", &registered, outputs);
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"node":"hello","uuid":"u1","outputs":{"greeting":null,"shout":"HI"}}"#
        );
    }
}
