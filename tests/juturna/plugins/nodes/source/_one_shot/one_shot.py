"""One-shot Juturna source node: emits a single ObjectPayload(name=...).

Used by tests/e2e/juturna_python.rs and the juturna benchmark, through
tests/juturna/pipeline.py, to feed a real pipeline that has a warped node.

Juturna's source thread calls the source function in a loop. The first call
returns the message; later calls block until the node stops and then return
an empty message that update() drops (the source thread discards it anyway
once the node's stop event is set).
"""

import threading

from juturna.components import Message, Node
from juturna.payloads import ObjectPayload


class OneShot(Node[None, ObjectPayload]):
    """Emits one Object message, version 0, then stays idle."""

    def __init__(self, name: str, **kwargs):
        super().__init__(**kwargs)

        self._greet_name = name
        self._emitted = False
        self._stopping = threading.Event()

    def warmup(self):
        # by=0, mode='post': no sleep around the source call
        self.set_source(self._next_message, by=0, mode='post')

    def stop(self):
        self._stopping.set()
        super().stop()

    def update(self, message: Message):
        # The source thread puts what _next_message returns on this node's
        # own queue; only the real message is passed downstream.
        if isinstance(message.payload, ObjectPayload):
            self.transmit(message)

    def _next_message(self) -> Message:
        if self._emitted:
            self._stopping.wait()

            return Message(creator=self.name)

        self._emitted = True

        return Message[ObjectPayload](
            creator=self.name,
            version=0,
            payload=ObjectPayload(name=self._greet_name),
        )
