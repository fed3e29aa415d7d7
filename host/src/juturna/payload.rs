//! Juturna payloads to node inputs, and node outputs to a payload.
//!
//! | payload | the node's inputs |
//! |---|---|
//! | `ObjectProtoPayload` | each top-level key, its value as JSON (see [`struct_number`]) |
//! | `BytesProtoPayload` | `data`: the bytes |
//! | `AudioProtoPayload` | `data` (the samples' bytes), `dtype`, `shape`, `sampling_rate`, `channels`, `start`, `end` |
//! | `ImageProtoPayload` | `data` (the pixels' bytes), `dtype`, `width`, `height`, `depth`, `pixel_format`, `timestamp` |
//! | `VideoProtoPayload` | `data` (every frame's pixels, one after another), `frames` (JSON: per frame `size` in bytes, `dtype`, `width`, `height`, `depth`, `pixel_format`, `timestamp`), `frames_per_second`, `start`, `end`, `codec` |
//! | `BatchProto` | each message on its own, in a sandbox of its own (see the service) |
//!
//! Outputs go back as a `BytesProtoPayload` when the node returned exactly
//! one output and it is bytes, else as an `ObjectProtoPayload` of every
//! output (bytes inside it as `{"$bytes": "<base64>"}`).

use prost::Message as _;
use prost_types::{Any, Struct, value::Kind};
use serde_json::{Map, Number, Value as Json};

use super::proto::payloads::{
    AudioProtoPayload, BatchProto, BytesProtoPayload, ImageProtoPayload, ObjectProtoPayload,
    VideoProtoPayload,
};
use crate::sandbox::value::{from_json, to_json};
use crate::sandbox::{NamedValue, Value};

/// The type URL prefix of every Juturna payload.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/juturna.proto.payloads.";

/// Why a payload cannot become inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The message carries no payload.
    #[error(
        "the message has no payload; send an Object, Bytes, Audio, Image, Video or Batch payload"
    )]
    Missing,
    /// A payload type node-host does not take.
    #[error(
        "payload type `{0}` is not supported; send an Object, Bytes, Audio, Image, Video or Batch payload"
    )]
    Unsupported(String),
    /// A Batch inside a Batch: each message of a Batch runs alone.
    #[error("a Batch message holds a Batch; send its messages in the outer Batch")]
    NestedBatch,
    /// The payload's bytes do not decode as its type says.
    #[error("the {0} payload does not decode: {1}")]
    Malformed(&'static str, String),
}

/// The inputs a payload gives a node.
pub fn inputs(payload: Option<&Any>) -> Result<Vec<NamedValue>, PayloadError> {
    let payload = payload.ok_or(PayloadError::Missing)?;
    let name = type_name(payload);
    let bytes = payload.value.as_slice();
    let malformed =
        |kind| move |err: prost::DecodeError| PayloadError::Malformed(kind, err.to_string());
    let named = |name: &str, value: Value| NamedValue {
        name: name.to_owned(),
        value,
    };
    Ok(match name {
        "ObjectProtoPayload" => {
            let object = ObjectProtoPayload::decode(bytes).map_err(malformed("Object"))?;
            object
                .data
                .unwrap_or_default()
                .fields
                .into_iter()
                .map(|(key, value)| named(&key, from_json(json_of(value))))
                .collect()
        }
        "BytesProtoPayload" => {
            let payload = BytesProtoPayload::decode(bytes).map_err(malformed("Bytes"))?;
            vec![named("data", Value::Bytes(payload.cnt))]
        }
        "AudioProtoPayload" => {
            let audio = AudioProtoPayload::decode(bytes).map_err(malformed("Audio"))?;
            let shape = audio.shape.iter().map(|n| Json::from(*n)).collect();
            vec![
                named("data", Value::Bytes(audio.audio_data)),
                named("dtype", Value::Text(audio.dtype)),
                named("shape", from_json(Json::Array(shape))),
                named("sampling_rate", Value::Integer(audio.sampling_rate.into())),
                named("channels", Value::Integer(audio.channels.into())),
                named("start", Value::Float(audio.start)),
                named("end", Value::Float(audio.end)),
            ]
        }
        "ImageProtoPayload" => {
            let image = ImageProtoPayload::decode(bytes).map_err(malformed("Image"))?;
            vec![
                named("data", Value::Bytes(image.image_data)),
                named("dtype", Value::Text(image.dtype)),
                named("width", Value::Integer(image.width.into())),
                named("height", Value::Integer(image.height.into())),
                named("depth", Value::Integer(image.depth.into())),
                named("pixel_format", Value::Text(image.pixel_format)),
                named("timestamp", Value::Float(image.timestamp)),
            ]
        }
        "VideoProtoPayload" => {
            let video = VideoProtoPayload::decode(bytes).map_err(malformed("Video"))?;
            let mut data = Vec::new();
            let mut frames = Vec::with_capacity(video.frames.len());
            for frame in video.frames {
                frames.push(serde_json::json!({
                    "size": frame.image_data.len(),
                    "dtype": frame.dtype,
                    "width": frame.width,
                    "height": frame.height,
                    "depth": frame.depth,
                    "pixel_format": frame.pixel_format,
                    "timestamp": frame.timestamp,
                }));
                data.extend_from_slice(&frame.image_data);
            }
            vec![
                named("data", Value::Bytes(data)),
                named("frames", Value::Json(Json::Array(frames).to_string())),
                named("frames_per_second", Value::Float(video.frames_per_second)),
                named("start", Value::Float(video.start)),
                named("end", Value::Float(video.end)),
                named("codec", Value::Text(video.codec)),
            ]
        }
        "BatchProto" => return Err(PayloadError::NestedBatch),
        other => return Err(PayloadError::Unsupported(other.to_owned())),
    })
}

/// The messages of a Batch payload; `None` when `payload` is another type.
pub fn batch(payload: Option<&Any>) -> Option<Result<BatchProto, PayloadError>> {
    let payload = payload?;
    is(payload, "BatchProto").then(|| {
        BatchProto::decode(payload.value.as_slice())
            .map_err(|err| PayloadError::Malformed("Batch", err.to_string()))
    })
}

/// A payload's type: its name after Juturna's prefix, or the whole URL of
/// another.
fn type_name(payload: &Any) -> &str {
    payload
        .type_url
        .strip_prefix(TYPE_URL_PREFIX)
        .unwrap_or(&payload.type_url)
}

/// Whether `payload`'s type URL is Juturna's payload `name`.
fn is(payload: &Any, name: &str) -> bool {
    payload.type_url.strip_prefix(TYPE_URL_PREFIX) == Some(name)
}

/// True for an Object payload, whose keys the caller chose.
pub fn is_object(payload: Option<&Any>) -> bool {
    payload.is_some_and(|payload| type_name(payload) == "ObjectProtoPayload")
}

/// The payload of a node's outputs, and the Python class name Juturna
/// gives it (for the envelope's `request_type`).
pub fn of_outputs(outputs: &[(String, Value)]) -> Result<(Any, &'static str), String> {
    if let [(_, Value::Bytes(bytes))] = outputs {
        let payload = BytesProtoPayload {
            cnt: bytes.clone(),
            size: bytes.len() as i64,
        };
        return Ok((any("BytesProtoPayload", &payload), "BytesPayload"));
    }
    let mut fields = std::collections::BTreeMap::new();
    for (name, value) in outputs {
        let json = to_json(value).map_err(|err| format!("output `{name}`: {err}"))?;
        fields.insert(name.clone(), proto_of(json));
    }
    let payload = ObjectProtoPayload {
        data: Some(Struct { fields }),
    };
    Ok((any("ObjectProtoPayload", &payload), "ObjectPayload"))
}

/// `message` packed as an `Any` of Juturna's payload `name`.
pub fn any(name: &str, message: &impl prost::Message) -> Any {
    Any {
        type_url: format!("{TYPE_URL_PREFIX}{name}"),
        value: message.encode_to_vec(),
    }
}

/// A `Struct` as JSON.
pub fn json_of_struct(value: Struct) -> Map<String, Json> {
    value
        .fields
        .into_iter()
        .map(|(key, value)| (key, json_of(value)))
        .collect()
}

/// A protobuf `Value` as JSON. Struct numbers are doubles on the wire: one
/// with no fraction within ±2^53 comes back as an integer (`3.0` is `3`),
/// since that is what a Python sender meant by it; others stay floats.
pub fn json_of(value: prost_types::Value) -> Json {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::NumberValue(n)) => struct_number(n),
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::ListValue(list)) => Json::Array(list.values.into_iter().map(json_of).collect()),
        Some(Kind::StructValue(object)) => Json::Object(json_of_struct(object)),
    }
}

/// A Struct number as JSON: an integer when it is one exactly.
pub fn struct_number(n: f64) -> Json {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= EXACT {
        Json::from(n as i64)
    } else {
        Number::from_f64(n).map_or(Json::Null, Json::Number)
    }
}

/// JSON as a protobuf `Value`.
pub fn proto_of(json: Json) -> prost_types::Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(proto_of).collect(),
        }),
        Json::Object(object) => Kind::StructValue(Struct {
            fields: object.into_iter().map(|(k, v)| (k, proto_of(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(json: Json) -> Any {
        let Json::Object(map) = json else { panic!() };
        let data = Struct {
            fields: map.into_iter().map(|(k, v)| (k, proto_of(v))).collect(),
        };
        any(
            "ObjectProtoPayload",
            &ObjectProtoPayload { data: Some(data) },
        )
    }

    #[test]
    fn an_object_gives_its_keys_with_integers_restored() {
        let inputs = inputs(Some(&object(
            json!({"name": "Ada", "n": 3, "x": 2.5, "l": [1, {"k": true}]}),
        )))
        .unwrap();
        let by_name: std::collections::HashMap<_, _> = inputs
            .iter()
            .map(|input| (input.name.as_str(), &input.value))
            .collect();
        assert!(matches!(by_name["name"], Value::Text(t) if t == "Ada"));
        assert!(matches!(by_name["n"], Value::Integer(3)));
        assert!(matches!(by_name["x"], Value::Float(x) if *x == 2.5));
        assert!(matches!(by_name["l"], Value::Json(j) if j == r#"[1,{"k":true}]"#));
    }

    #[test]
    fn bytes_audio_and_image_give_data_and_their_fields() {
        let bytes = any(
            "BytesProtoPayload",
            &BytesProtoPayload {
                cnt: vec![1, 2],
                size: 2,
            },
        );
        let got = inputs(Some(&bytes)).unwrap();
        assert_eq!(got[0].name, "data");
        assert!(matches!(&got[0].value, Value::Bytes(b) if b == &[1, 2]));
        let audio = AudioProtoPayload {
            audio_data: vec![0; 8],
            dtype: "float32".into(),
            shape: vec![2],
            sampling_rate: 16_000,
            channels: 1,
            start: 0.5,
            end: 1.0,
            audio_format: String::new(),
        };
        let names: Vec<String> = inputs(Some(&any("AudioProtoPayload", &audio)))
            .unwrap()
            .into_iter()
            .map(|input| input.name)
            .collect();
        assert_eq!(
            names,
            [
                "data",
                "dtype",
                "shape",
                "sampling_rate",
                "channels",
                "start",
                "end"
            ]
        );
        let image = ImageProtoPayload {
            image_data: vec![0; 4],
            width: 2,
            height: 2,
            depth: 1,
            ..Default::default()
        };
        let got = inputs(Some(&any("ImageProtoPayload", &image))).unwrap();
        assert!(
            got.iter()
                .any(|input| input.name == "width" && matches!(input.value, Value::Integer(2)))
        );
    }

    #[test]
    fn a_video_gives_its_frames_bytes_in_order_and_their_fields() {
        let frame = |bytes: &[u8], timestamp| ImageProtoPayload {
            image_data: bytes.to_vec(),
            dtype: "uint8".into(),
            width: 2,
            height: 1,
            depth: 1,
            pixel_format: "gray".into(),
            timestamp,
        };
        let video = VideoProtoPayload {
            frames: vec![frame(&[1, 2], 0.0), frame(&[3, 4], 0.04)],
            frames_per_second: 25.0,
            start: 1.0,
            end: 1.08,
            codec: "raw".into(),
        };
        let got = inputs(Some(&any("VideoProtoPayload", &video))).unwrap();
        let by_name: std::collections::HashMap<_, _> = got
            .iter()
            .map(|input| (input.name.as_str(), &input.value))
            .collect();
        assert!(matches!(by_name["data"], Value::Bytes(b) if b == &[1, 2, 3, 4]));
        let Value::Json(frames) = by_name["frames"] else {
            panic!("frames as JSON")
        };
        let frames: Json = serde_json::from_str(frames).unwrap();
        assert_eq!(frames[1]["size"], 2);
        assert_eq!(frames[1]["timestamp"], 0.04);
        assert_eq!(frames[0]["pixel_format"], "gray");
        assert!(matches!(by_name["frames_per_second"], Value::Float(f) if *f == 25.0));
        assert!(matches!(by_name["codec"], Value::Text(c) if c == "raw"));
    }

    #[test]
    fn a_batch_is_told_apart_and_cannot_nest() {
        let hello = object(json!({"name": "Ada"}));
        assert!(batch(Some(&hello)).is_none());
        let messages = BatchProto {
            messages: vec![super::super::proto::payloads::ProtoMessage {
                payload: Some(hello),
                ..Default::default()
            }],
        };
        let packed = any("BatchProto", &messages);
        assert_eq!(batch(Some(&packed)).unwrap().unwrap().messages.len(), 1);
        assert_eq!(inputs(Some(&packed)), Err(PayloadError::NestedBatch));
    }

    #[test]
    fn missing_unknown_and_garbled_payloads_are_refused_by_name() {
        assert_eq!(inputs(None), Err(PayloadError::Missing));
        let video = Any {
            type_url: format!("{TYPE_URL_PREFIX}CompressedProtoPayload"),
            value: Vec::new(),
        };
        assert!(
            matches!(inputs(Some(&video)), Err(PayloadError::Unsupported(name)) if name == "CompressedProtoPayload")
        );
        let garbled = Any {
            type_url: format!("{TYPE_URL_PREFIX}BytesProtoPayload"),
            value: vec![0xff, 0xff, 0xff],
        };
        assert!(matches!(
            inputs(Some(&garbled)),
            Err(PayloadError::Malformed("Bytes", _))
        ));
    }

    #[test]
    fn one_bytes_output_is_a_bytes_payload_else_an_object() {
        let (payload, class) = of_outputs(&[("out".into(), Value::Bytes(vec![7]))]).unwrap();
        assert_eq!(
            (payload.type_url.as_str(), class),
            (
                "type.googleapis.com/juturna.proto.payloads.BytesProtoPayload",
                "BytesPayload"
            )
        );
        assert_eq!(
            BytesProtoPayload::decode(payload.value.as_slice())
                .unwrap()
                .cnt,
            [7]
        );
        let (payload, class) = of_outputs(&[
            ("greeting".into(), Value::Text("hi".into())),
            ("n".into(), Value::Integer(2)),
        ])
        .unwrap();
        assert_eq!(class, "ObjectPayload");
        let object = ObjectProtoPayload::decode(payload.value.as_slice()).unwrap();
        assert_eq!(
            Json::Object(json_of_struct(object.data.unwrap())),
            json!({"greeting": "hi", "n": 2})
        );
    }
}
