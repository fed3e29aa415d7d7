"""Drives a node-host Juturna service with Juturna's own Warp node.

Usage: python warp_client.py PORT TIMEOUT < cases.json

Reads a JSON list of cases from stdin and sends each, in order, through one
real `juturna.nodes.proc._warp.warp.Warp` (its `warmup()`, then `update()`
per message, as its worker thread would call it), and prints on the last
line of stdout a JSON list with one result per case:

- `{"ok": true, "payload": ..., "message": {...}, "response_to_matches": ...}`
  where `payload` is the transmitted message's payload (an Object as a dict,
  Bytes as hex), `message` its creator, version and id;
- `{"ok": false, "code": "DEADLINE_EXCEEDED", "details": "..."}` when
  `update()` raised the gRPC error.

Case kinds: `object` (`data`: a dict), `bytes` (`hex`), `audio`, `image`,
(fixed content; `expect_hex` in the result is what a node that reverses
`data` answers), `raw` (`hex`: request bytes sent as they are, not through
the Warp), `video` (three frames: a VideoPayload cannot be made in 2.1.1, so
the generated classes carry it, through Juturna's generated stub) and
`batch` (`names`: a BatchProto of Object messages, through the stub too,
since the Warp cannot decode a Batch reply in 2.1.1).
"""

import json
import logging
import sys

import grpc
import numpy as np

from juturna.components import Message
from juturna.nodes.proc._warp.warp import Warp
from juturna.payloads import (
    AudioPayload,
    BytesPayload,
    ImagePayload,
    ObjectPayload,
)
from juturna.remotizer.c_protos import messaging_service_pb2_grpc, payloads_pb2
from juturna.remotizer.utils import _image_to_proto, message_to_proto

logging.disable(logging.CRITICAL)


class Recorder:
    """A downstream node: keeps what the Warp transmits."""

    def __init__(self):
        self.messages = []

    def put(self, message):
        self.messages.append(message)


def media(kind):
    """A message of a fixed media payload, and the bytes of its samples."""
    if kind == "audio":
        samples = np.array([0.0, 0.5, -0.5, 1.0], dtype=np.float32)
        payload = AudioPayload(audio=samples, sampling_rate=16000, channels=1, start=0.0, end=0.25)
        return payload, samples.tobytes()
    if kind == "image":
        pixels = np.arange(6, dtype=np.uint8).reshape(2, 3)
        payload = ImagePayload(image=pixels, width=3, height=2, depth=1, pixel_format="gray")
        return payload, pixels.tobytes()
    raise ValueError(f"unknown media kind {kind}")


def described(payload):
    if isinstance(payload, ObjectPayload):
        return dict(payload)
    if isinstance(payload, BytesPayload):
        return payload.cnt.hex()
    return repr(payload)


def error(err):
    return {"ok": False, "code": err.code().name, "details": err.details()}


def send_payload(stub, envelope_id, payload, timeout):
    """Sends `payload` from `warp` with Juturna's generated stub: (the reply,
    None), or (None, the error result)."""
    envelope = payloads_pb2.ProtoEnvelope(id=envelope_id, sender="warp", ttl=timeout)
    envelope.message.payload.Pack(payload)
    try:
        return stub.SendAndReceive(envelope, timeout=timeout), None
    except grpc.RpcError as err:
        return None, error(err)


def main():
    port, timeout = int(sys.argv[1]), int(sys.argv[2])
    cases = json.load(sys.stdin)
    warp = Warp(
        grpc_host="127.0.0.1",
        grpc_port=port,
        timeout=timeout,
        remote_config={},
        node_name="warp",
        pipe_name="compat",
    )
    warp.warmup()
    recorder = Recorder()
    warp.add_destination("recorder", recorder)

    # Every envelope and its reply, to check the reply names its request.
    exchanges = []
    send = warp.stub.SendAndReceive

    def recording(envelope, timeout=None):
        reply = send(envelope, timeout=timeout)
        exchanges.append((envelope.id, reply.response_to, reply.sender))
        return reply

    warp.stub.SendAndReceive = recording

    results = []
    for case in cases:
        kind = case["kind"]
        if kind == "raw":
            call = warp.channel.unary_unary(
                "/juturna.proto.messaging.MessagingService/SendAndReceive",
                request_serializer=lambda raw: raw,
                response_deserializer=lambda raw: raw,
            )
            try:
                call(bytes.fromhex(case["hex"]), timeout=timeout)
                results.append({"ok": True})
            except grpc.RpcError as err:
                results.append(error(err))
            continue
        stub = messaging_service_pb2_grpc.MessagingServiceStub(warp.channel)
        if kind == "video":
            video = payloads_pb2.VideoProtoPayload(frames_per_second=25.0, codec="raw")
            frames = [np.full((1, 2), i, dtype=np.uint8) for i in (1, 2, 3)]
            for i, pixels in enumerate(frames):
                image = ImagePayload(image=pixels, width=2, height=1, depth=1, pixel_format="gray", timestamp=i / 25)
                video.frames.append(_image_to_proto(image))
            reply, failed = send_payload(stub, "video-1", video, timeout)
            if failed:
                results.append(failed)
                continue
            answered = payloads_pb2.BytesProtoPayload()
            assert reply.message.payload.Unpack(answered), reply.message.payload.type_url
            expect = b"".join(f.tobytes() for f in frames)[::-1].hex()
            results.append({"ok": True, "payload": answered.cnt.hex(), "expect_hex": expect})
            continue
        if kind == "batch":
            batch = payloads_pb2.BatchProto()
            for i, name in enumerate(case["names"]):
                message = Message(creator="source", version=i, payload=ObjectPayload(name=name))
                batch.messages.append(message_to_proto(message))
            reply, failed = send_payload(stub, "batch-1", batch, timeout)
            if failed:
                results.append(failed)
                continue
            answered = payloads_pb2.BatchProto()
            assert reply.message.payload.Unpack(answered), reply.message.payload.type_url
            outputs = []
            for message in answered.messages:
                obj = payloads_pb2.ObjectProtoPayload()
                assert message.payload.Unpack(obj)
                outputs.append({key: value for key, value in obj.data.items()})
            results.append({"ok": True, "payload": outputs, "response_to": reply.response_to})
            continue

        expect = None
        if kind == "object":
            payload = ObjectPayload(**case["data"])
        elif kind == "bytes":
            payload = BytesPayload(cnt=bytes.fromhex(case["hex"]))
        else:
            payload, data = media(kind)
            expect = data[::-1].hex()
        message = Message(creator="source", version=7, payload=payload)
        before = len(recorder.messages)
        try:
            warp.update(message)
        except grpc.RpcError as err:
            results.append(error(err))
            continue
        sent = recorder.messages[before]
        request_id, response_to, sender = exchanges[-1]
        results.append(
            {
                "ok": True,
                "payload": described(sent.payload),
                "expect_hex": expect,
                "message": {"creator": sent.creator, "version": sent.version, "id": sent.id, "sent_id": message.id},
                "response_to_matches": response_to == request_id,
                "sender": sender,
            }
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
