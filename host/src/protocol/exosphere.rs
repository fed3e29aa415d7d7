//! Exosphere's runtime protocol (state manager API `v0`, as the
//! `exospherehost` 0.0.3 SDK speaks it): the bodies a runtime sends and
//! receives, and how node values map onto Exosphere's string fields.
//!
//! Exosphere fields are strings. Inputs reach the node as text; an output
//! that is text goes out as it is, any other value as its JSON text (`3`,
//! `true`, `{"a":1}`; bytes as `{"$bytes":"<base64>"}`), and a null
//! (an optional output left out) is left out.
//!
//! What a node says besides outputs, by convention on the WIT contract:
//! - **fan-out**: an output named [`FAN_OUT`] holding a JSON array of
//!   objects; each object is one output set (`executed` with one output per
//!   item). It is not part of the registered outputs schema.
//! - **prune**: `node-error { code: "prune", message: <JSON object or empty> }`.
//! - **re-enqueue after**: `node-error { code: "re-enqueue-after", message: "<milliseconds>" }`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use crate::sandbox::value::to_json;
use crate::sandbox::{NamedValue, NodeInfo, Port, Value};

/// The output that carries a fan-out: a JSON array of output objects.
pub const FAN_OUT: &str = "fan-out";

/// The node-error code that prunes the branch.
pub const PRUNE: &str = "prune";

/// The node-error code that puts the state back after a delay.
pub const REQUEUE: &str = "re-enqueue-after";

/// `PUT /v0/namespace/{ns}/nodes/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterNodes {
    /// The runtime's name.
    pub runtime_name: String,
    /// The runtime's namespace.
    pub runtime_namespace: String,
    /// Every node the runtime serves.
    pub nodes: Vec<NodeRegistration>,
}

/// One node of a [`RegisterNodes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRegistration {
    /// The node's name (a class name in the SDK).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// JSON Schema of its inputs, as pydantic writes it.
    pub inputs_schema: Json,
    /// JSON Schema of its outputs.
    pub outputs_schema: Json,
    /// Names of the secrets it reads.
    pub secrets: Vec<String>,
}

impl NodeRegistration {
    /// The registration of `info` in `namespace`.
    pub fn of(info: &NodeInfo, namespace: &str) -> Self {
        let outputs: Vec<Port> = info
            .outputs
            .iter()
            .filter(|port| port.name != FAN_OUT)
            .cloned()
            .collect();
        Self {
            name: info.name.clone(),
            namespace: namespace.to_owned(),
            inputs_schema: schema("Inputs", &info.inputs),
            outputs_schema: schema("Outputs", &outputs),
            secrets: info.secrets.clone(),
        }
    }
}

/// The JSON Schema pydantic's `model_json_schema()` writes for a model
/// named `title` with one `str` field per port: required ports listed in
/// `required` (left out when none), a text default as `default`.
pub fn schema(title: &str, ports: &[Port]) -> Json {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for port in ports {
        let mut property = Map::new();
        if let Some(Value::Text(default)) = &port.default_value {
            property.insert("default".into(), Json::from(default.clone()));
        }
        property.insert("title".into(), Json::from(field_title(&port.name)));
        property.insert("type".into(), Json::from("string"));
        properties.insert(port.name.clone(), Json::Object(property));
        if port.required && port.default_value.is_none() {
            required.push(Json::from(port.name.clone()));
        }
    }
    let mut schema = Map::new();
    schema.insert("properties".into(), Json::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Json::Array(required));
    }
    schema.insert("title".into(), Json::from(title));
    schema.insert("type".into(), Json::from("object"));
    Json::Object(schema)
}

/// pydantic's title of a field: Python's `str.title()` (a letter after a
/// non-letter upper case, others lower), then `_` as a space
/// (`first_name` → `First Name`).
fn field_title(name: &str) -> String {
    let mut title = String::with_capacity(name.len());
    let mut after_letter = false;
    for c in name.chars() {
        if c.is_alphabetic() {
            if after_letter {
                title.extend(c.to_lowercase());
            } else {
                title.extend(c.to_uppercase());
            }
            after_letter = true;
        } else {
            title.push(if c == '_' { ' ' } else { c });
            after_letter = false;
        }
    }
    title
}

/// `POST …/states/enqueue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enqueue {
    /// The nodes whose states the runtime takes.
    pub nodes: Vec<String>,
    /// At most this many states.
    pub batch_size: usize,
}

/// The answer to [`Enqueue`]; only `states` is read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Enqueued {
    /// The states handed out.
    #[serde(default)]
    pub states: Vec<State>,
}

/// One state to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Its id, for the report.
    pub state_id: String,
    /// The node to run.
    pub node_name: String,
    /// Its identifier in the graph.
    #[serde(default)]
    pub identifier: String,
    /// The inputs, strings by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, Json>,
}

impl State {
    /// The state's inputs as node inputs: strings as text, anything else
    /// (a server that sends other JSON) as its JSON value.
    pub fn node_inputs(&self) -> Vec<NamedValue> {
        self.inputs
            .iter()
            .map(|(name, value)| NamedValue {
                name: name.clone(),
                value: match value {
                    Json::String(text) => Value::Text(text.clone()),
                    other => crate::sandbox::value::from_json(other.clone()),
                },
            })
            .collect()
    }
}

/// `GET …/state/{id}/secrets`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Secrets {
    /// The secrets by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// How a state ended, as it is reported: the path under `state/{id}/` and
/// the body.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// `executed {"outputs": [...]}`.
    Executed(Vec<Map<String, Json>>),
    /// `errored {"error": "<code>: <message>"}`.
    Errored(String),
    /// `prune {"data": {...}}`.
    Prune(Map<String, Json>),
    /// `re-enqueue-after {"enqueue_after": ms}`.
    Requeue(u64),
}

impl Report {
    /// The path after `state/{id}/`.
    pub fn path(&self) -> &'static str {
        match self {
            Report::Executed(_) => "executed",
            Report::Errored(_) => "errored",
            Report::Prune(_) => "prune",
            Report::Requeue(_) => "re-enqueue-after",
        }
    }

    /// The body.
    pub fn body(&self) -> Json {
        match self {
            Report::Executed(outputs) => json!({ "outputs": outputs }),
            Report::Errored(error) => json!({ "error": error }),
            Report::Prune(data) => json!({ "data": data }),
            Report::Requeue(ms) => json!({ "enqueue_after": ms }),
        }
    }

    /// The report of a node's outputs, or of its failure (`code` and
    /// `message` as node-host names them; a node's own error is
    /// `guest_error` with `"<its code>: <its message>"`).
    pub fn of_result(result: Result<&[(String, Value)], (&str, &str)>) -> Self {
        match result {
            Ok(outputs) => match output_sets(outputs) {
                Ok(sets) => Report::Executed(sets),
                Err(err) => Report::Errored(format!("invalid_output: {err}")),
            },
            Err((code, message)) => {
                if code == "guest_error"
                    && let Some(signal) = signal(message)
                {
                    return signal;
                }
                Report::Errored(format!("{code}: {message}"))
            }
        }
    }
}

/// A node error that is a signal: `prune: {data}` or `re-enqueue-after: ms`.
fn signal(message: &str) -> Option<Report> {
    let (code, rest) = message.split_once(": ").unwrap_or((message, ""));
    let rest = rest.trim();
    match code {
        PRUNE => {
            let data = match serde_json::from_str::<Json>(rest) {
                Ok(Json::Object(data)) => data,
                _ if rest.is_empty() => Map::new(),
                // Not an object: kept, under `message`.
                _ => Map::from_iter([("message".to_owned(), Json::from(rest))]),
            };
            Some(Report::Prune(data))
        }
        REQUEUE => match rest.parse::<u64>() {
            Ok(ms) if ms > 0 => Some(Report::Requeue(ms)),
            _ => Some(Report::Errored(format!(
                "guest_error: {REQUEUE} needs a delay in milliseconds above 0, got `{rest}`"
            ))),
        },
        _ => None,
    }
}

/// The output sets of a node's outputs: one, or one per item of a fan-out.
pub fn output_sets(outputs: &[(String, Value)]) -> Result<Vec<Map<String, Json>>, String> {
    if let Some((_, fan_out)) = outputs.iter().find(|(name, _)| name == FAN_OUT)
        && !matches!(fan_out, Value::Null)
    {
        let Value::Json(text) = fan_out else {
            return Err(format!("`{FAN_OUT}` must be a JSON array of objects"));
        };
        let Ok(Json::Array(items)) = serde_json::from_str::<Json>(text) else {
            return Err(format!("`{FAN_OUT}` must be a JSON array of objects"));
        };
        return items
            .into_iter()
            .map(|item| match item {
                Json::Object(fields) => Ok(fields
                    .into_iter()
                    .filter(|(_, value)| !value.is_null())
                    .map(|(name, value)| (name, Json::from(string_of_json(value))))
                    .collect()),
                _ => Err(format!("every item of `{FAN_OUT}` must be an object")),
            })
            .collect();
    }
    let mut set = Map::new();
    for (name, value) in outputs {
        if name == FAN_OUT || matches!(value, Value::Null) {
            continue;
        }
        let json = to_json(value).map_err(|err| format!("output `{name}`: {err}"))?;
        set.insert(name.clone(), Json::from(string_of_json(json)));
    }
    Ok(vec![set])
}

/// A JSON value as an Exosphere string field: a string as it is, anything
/// else as its JSON text.
fn string_of_json(value: Json) -> String {
    match value {
        Json::String(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, required: bool, default: Option<&str>) -> Port {
        Port {
            name: name.into(),
            description: String::new(),
            required,
            default_value: default.map(|text| Value::Text(text.into())),
        }
    }

    #[test]
    fn schemas_are_what_pydantic_writes() {
        // pydantic 2 (exospherehost 0.0.3) for
        // `class Inputs(BaseModel): name: str; first_name: str = 'x'`:
        let pydantic: Json = serde_json::from_str(
            r#"{"properties": {"name": {"title": "Name", "type": "string"}, "first_name": {"default": "x", "title": "First Name", "type": "string"}}, "required": ["name"], "title": "Inputs", "type": "object"}"#,
        )
        .unwrap();
        let ours = schema(
            "Inputs",
            &[
                port("name", true, None),
                port("first_name", false, Some("x")),
            ],
        );
        assert_eq!(ours, pydantic);
        // An empty model has no `required`.
        assert_eq!(
            schema("Secrets", &[]),
            json!({"properties": {}, "title": "Secrets", "type": "object"})
        );
        assert_eq!(field_title("x1y_z"), "X1Y Z");
        assert_eq!(field_title("a-b"), "A-B");
    }

    #[test]
    fn outputs_become_strings_and_nulls_are_left_out() {
        let sets = output_sets(&[
            ("greeting".into(), Value::Text("hi".into())),
            ("n".into(), Value::Integer(3)),
            ("ok".into(), Value::Boolean(true)),
            ("doc".into(), Value::Json(r#"{"a":1}"#.into())),
            ("none".into(), Value::Null),
        ])
        .unwrap();
        assert_eq!(
            Json::Array(sets.into_iter().map(Json::Object).collect()),
            json!([{"greeting": "hi", "n": "3", "ok": "true", "doc": "{\"a\":1}"}])
        );
    }

    #[test]
    fn a_fan_out_is_one_output_set_per_item() {
        let sets = output_sets(&[
            ("item".into(), Value::Null),
            (
                FAN_OUT.into(),
                Value::Json(r#"[{"item": "a"}, {"item": "b"}, {"item": 3}]"#.into()),
            ),
        ])
        .unwrap();
        assert_eq!(
            Json::Array(sets.into_iter().map(Json::Object).collect()),
            json!([{"item": "a"}, {"item": "b"}, {"item": "3"}])
        );
        assert!(output_sets(&[(FAN_OUT.into(), Value::Json("{}".into()))]).is_err());
        assert!(output_sets(&[(FAN_OUT.into(), Value::Json("[1]".into()))]).is_err());
    }

    #[test]
    fn node_errors_are_errored_or_signals() {
        assert_eq!(
            Report::of_result(Err(("guest_error", "prune: {\"why\": \"done\"}"))).body(),
            json!({"data": {"why": "done"}})
        );
        assert_eq!(
            Report::of_result(Err(("guest_error", "prune: "))),
            Report::Prune(Map::new())
        );
        assert_eq!(
            Report::of_result(Err(("guest_error", "re-enqueue-after: 1500"))),
            Report::Requeue(1500)
        );
        assert!(matches!(
            Report::of_result(Err(("guest_error", "re-enqueue-after: soon"))),
            Report::Errored(text) if text.contains("milliseconds")
        ));
        let errored = Report::of_result(Err(("out_of_fuel", "the event ran out of fuel")));
        assert_eq!(errored.path(), "errored");
        assert_eq!(
            errored.body(),
            json!({"error": "out_of_fuel: the event ran out of fuel"})
        );
        // A node that says `prune` through a trap is no signal.
        assert!(matches!(
            Report::of_result(Err(("trap", "prune: x"))),
            Report::Errored(_)
        ));
    }

    #[test]
    fn registration_leaves_the_fan_out_out_of_the_schema() {
        let info = NodeInfo {
            name: "split".into(),
            version: "1".into(),
            description: String::new(),
            inputs: vec![port("text", true, None)],
            outputs: vec![port("item", false, None), port(FAN_OUT, false, None)],
            secrets: vec!["key".into()],
        };
        let registration = NodeRegistration::of(&info, "ns");
        assert_eq!(
            registration.outputs_schema,
            json!({"properties": {"item": {"title": "Item", "type": "string"}}, "title": "Outputs", "type": "object"})
        );
        assert_eq!(registration.secrets, ["key"]);
        let state: State = serde_json::from_value(json!({
            "state_id": "s1", "node_name": "split", "identifier": "a",
            "inputs": {"text": "x,y"}, "created_at": "2026-01-01T00:00:00"
        }))
        .unwrap();
        assert!(matches!(&state.node_inputs()[0].value, Value::Text(t) if t == "x,y"));
    }
}
