"""Golden envelopes from Juturna's own Python classes.

Usage:
  python golden.py emit            prints {case: hex} of envelopes built the way
                                   Juturna's Warp builds them (message_to_proto,
                                   create_envelope), fixed times and ids
  python golden.py parse < {case: hex}
                                   parses each envelope with Juturna's generated
                                   ProtoEnvelope and prints {case: hex} of it
                                   serialised again, deterministically

The Rust side (tests/e2e/juturna_python.rs) builds the same envelopes with
node-host's prost types and compares bytes both ways. Keep the two in step.
"""

import json
import logging
import sys

import numpy as np

from juturna.components import Message
from juturna.payloads import (
    AudioPayload,
    BytesPayload,
    ImagePayload,
    ObjectPayload,
)
from juturna.remotizer.c_protos import payloads_pb2
from juturna.remotizer.utils import _image_to_proto, create_envelope, message_to_proto

logging.disable(logging.CRITICAL)


def message(payload, version=3, msg_id=10):
    m = Message(creator="source", version=version, payload=payload)
    m.id = msg_id
    m.created_at = 1700000000.25
    m.meta["lang"] = "en"
    m.timers["decode"] = 0.5
    m.timers["acquire"] = 1.25
    return m


def envelope(msg):
    env = create_envelope(
        message=message_to_proto(msg),
        configuration={"threshold": 0.5},
        metadata={},
        creator="warp",
        id="e-1",
        request_type="TypeVar",
        response_type="TypeVar",
        priority=0,
        timeout=30,
    )
    env.created_at = 1700000000.5
    return env


def cases():
    frame = lambda value: ImagePayload(  # noqa: E731
        image=np.full((1, 2), value, dtype=np.uint8), width=2, height=1, depth=1, pixel_format="gray", timestamp=0.5
    )
    built = {
        "object": envelope(
            message(ObjectPayload(name="Ada", count=3, x=2.5, nested={"k": [1, True, None]}))
        ),
        "bytes": envelope(message(BytesPayload(cnt=b"\x00\x01\xff"))),
        "audio": envelope(
            message(
                AudioPayload(
                    audio=np.array([0.0, 0.5], dtype=np.float32), sampling_rate=16000, channels=1, start=0.0, end=0.25
                )
            )
        ),
        "image": envelope(message(frame(7))),
    }
    # VideoPayload cannot be made in 2.1.1 (its __post_init__ asks frames for
    # `nbytes`), so the video goes in as the generated class, frames by
    # Juturna's own image converter.
    video = payloads_pb2.VideoProtoPayload(frames_per_second=25.0, codec="raw", start=1.0, end=1.08)
    for value in (1, 2):
        video.frames.append(_image_to_proto(frame(value)))
    with_video = envelope(message(ObjectPayload(name="placeholder")))
    with_video.message.payload.Pack(video)
    built["video"] = with_video
    batch = payloads_pb2.BatchProto()
    for i, name in enumerate(["Ada", "Bo"]):
        batch.messages.append(message_to_proto(message(ObjectPayload(name=name), version=i, msg_id=20 + i)))
    with_batch = envelope(message(ObjectPayload(name="placeholder")))
    with_batch.message.payload.Pack(batch)
    built["batch"] = with_batch

    # A reply as node-host sends it.
    reply = payloads_pb2.ProtoEnvelope(
        id="r-1", sender="warped_node", receiver="warp", response_to="e-1", ttl=30, created_at=1700000001.5,
        request_type="ObjectPayload",
    )
    reply.configuration.SetInParent()
    reply.metadata.update({"processing_time": 0.001})
    out = message(ObjectPayload(greeting="Hello Ada"))
    reply.message.CopyFrom(message_to_proto(out))
    built["reply"] = reply
    return built


PAYLOAD_TYPES = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        payloads_pb2.ObjectProtoPayload,
        payloads_pb2.BytesProtoPayload,
        payloads_pb2.AudioProtoPayload,
        payloads_pb2.ImageProtoPayload,
        payloads_pb2.VideoProtoPayload,
        payloads_pb2.BatchProto,
    )
}


def in_key_order(message):
    """Packs the message's payload again with its map entries in key order.

    Protobuf leaves the order of map entries (a Struct's fields) open, and
    `Any.Pack` serialises in hash order, which `deterministic=True` on the
    envelope does not reach (the payload is bytes by then). Both sides are
    compared in key order, the order prost writes. (upb's key order puts a
    key before its own prefixes, "name" before "n", prost's the other way:
    the cases use no key that is a prefix of another.)
    """
    if not message.HasField("payload"):
        return
    inner = PAYLOAD_TYPES[message.payload.TypeName()]()
    message.payload.Unpack(inner)
    if isinstance(inner, payloads_pb2.BatchProto):
        for each in inner.messages:
            in_key_order(each)
    message.payload.value = inner.SerializeToString(deterministic=True)


def main():
    mode = sys.argv[1]
    if mode == "emit":
        built = cases()
        for env in built.values():
            in_key_order(env.message)
        print(json.dumps({name: env.SerializeToString(deterministic=True).hex() for name, env in built.items()}))
    elif mode == "parse":
        parsed = {}
        for name, hexed in json.load(sys.stdin).items():
            env = payloads_pb2.ProtoEnvelope()
            env.ParseFromString(bytes.fromhex(hexed))
            parsed[name] = env.SerializeToString(deterministic=True).hex()
        print(json.dumps(parsed))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
