//! The values that flow in and out of nodes, and their JSON form.
//!
//! JSON null, booleans, integers, floats and strings map to the matching
//! cases; arrays and objects travel as `json` text. Bytes have no JSON type,
//! so they are written as `{"$bytes": "<base64>"}`, and that exact shape is
//! read back as bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value as Json;

pub use super::bindings::node_host::node::types::{NamedValue, NodeError, NodeInfo, Port, Value};

/// The key of the one-entry object that stands for bytes in JSON.
pub const BYTES_KEY: &str = "$bytes";

/// Converts a JSON value into a node value.
pub fn from_json(json: Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            // u64 beyond i64 and every fraction: the nearest float.
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Text(s),
        Json::Object(ref map) if map.len() == 1 => match map.get(BYTES_KEY) {
            Some(Json::String(encoded)) => match BASE64.decode(encoded) {
                Ok(bytes) => Value::Bytes(bytes),
                Err(_) => Value::Json(json.to_string()),
            },
            _ => Value::Json(json.to_string()),
        },
        other => Value::Json(other.to_string()),
    }
}

/// Converts a node value into JSON.
///
/// Fails, naming the problem, when a `json` value is not valid JSON or a
/// float is not finite (JSON has no NaN or infinity).
pub fn to_json(value: &Value) -> Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Float(x) => serde_json::Number::from_f64(*x)
            .map(Json::Number)
            .ok_or_else(|| format!("float {x} has no JSON form"))?,
        Value::Text(s) => Json::String(s.clone()),
        Value::Bytes(bytes) => serde_json::json!({ BYTES_KEY: BASE64.encode(bytes) }),
        Value::Json(text) => serde_json::from_str(text)
            .map_err(|err| format!("json value is not valid JSON ({err}): {}", preview(text)))?,
    })
}

/// The JSON form of a node's info (used by `inspect --json` and registries).
pub fn info_to_json(info: &NodeInfo) -> Json {
    let ports = |ports: &[Port]| -> Vec<Json> {
        ports
            .iter()
            .map(|port| {
                let mut json = serde_json::json!({
                    "name": port.name,
                    "description": port.description,
                    "required": port.required,
                });
                if let Some(default) = &port.default_value {
                    json["default"] = to_json(default).unwrap_or(Json::Null);
                }
                json
            })
            .collect()
    };
    serde_json::json!({
        "name": info.name,
        "version": info.version,
        "description": info.description,
        "inputs": ports(&info.inputs),
        "outputs": ports(&info.outputs),
        "secrets": info.secrets,
    })
}

/// Converts a JSON object of inputs into named values.
pub fn inputs_from_json(object: serde_json::Map<String, Json>) -> Vec<NamedValue> {
    object
        .into_iter()
        .map(|(name, json)| NamedValue {
            name,
            value: from_json(json),
        })
        .collect()
}

/// Converts outputs into a JSON object, in their order.
pub fn outputs_to_json(
    outputs: &[(String, Value)],
) -> Result<serde_json::Map<String, Json>, String> {
    outputs
        .iter()
        .map(|(name, value)| {
            Ok((
                name.clone(),
                to_json(value).map_err(|err| format!("output `{name}`: {err}"))?,
            ))
        })
        .collect()
}

/// Bytes the value takes on the way out, for the output cap.
pub(crate) fn size_of(value: &Value) -> usize {
    match value {
        Value::Null | Value::Boolean(_) => 1,
        Value::Integer(_) | Value::Float(_) => 8,
        Value::Text(s) | Value::Json(s) => s.len(),
        Value::Bytes(b) => b.len(),
    }
}

/// The start of a long text, for error messages.
pub(crate) fn preview(text: &str) -> String {
    const PREVIEW_CHARS: usize = 60;
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_inside_json_reach_the_node_unchanged() {
        // Found by fuzzing (fuzz/seeds/json_values/float-roundtrip): the
        // array travels as `json` text, parsed and written again.
        let input: Json = serde_json::from_str("[ 1e-039, 0]").unwrap();
        let once = to_json(&from_json(input)).unwrap();
        let twice = to_json(&from_json(once.clone())).unwrap();
        assert_eq!(once, twice);
        assert_eq!(once.to_string(), "[1e-39,0]");
    }

    #[test]
    fn scalars_round_trip() {
        for json in [
            json!(null),
            json!(true),
            json!(-7),
            json!(2.5),
            json!("héllo"),
        ] {
            assert_eq!(to_json(&from_json(json.clone())).unwrap(), json);
        }
    }

    #[test]
    fn structures_travel_as_json_text() {
        let doc = json!({"a": [1, 2, {"b": null}]});
        let value = from_json(doc.clone());
        assert!(matches!(value, Value::Json(_)));
        assert_eq!(to_json(&value).unwrap(), doc);
    }

    #[test]
    fn bytes_use_the_dollar_bytes_object() {
        let value = Value::Bytes(vec![0, 159, 255]);
        let json = to_json(&value).unwrap();
        assert_eq!(json, json!({"$bytes": "AJ//"}));
        assert_eq!(from_json(json), value);
        // Not base64: an ordinary object.
        assert!(matches!(from_json(json!({"$bytes": "%%"})), Value::Json(_)));
    }

    #[test]
    fn invalid_json_text_is_refused() {
        let err = to_json(&Value::Json("{not json".into())).unwrap_err();
        assert!(err.contains("{not json"), "{err}");
        assert!(to_json(&Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn big_unsigned_becomes_float() {
        assert_eq!(from_json(json!(u64::MAX)), Value::Float(u64::MAX as f64));
    }
}
