"""Recording Juturna sink node: keeps every message it receives.

Used by tests/e2e/juturna_python.rs and the juturna benchmark, through
tests/juturna/pipeline.py, which imports this module under the same name
juturna does (plugins.nodes.sink._recorder.recorder) and waits on
Recorder.received.
"""

import queue

from juturna.components import Message, Node


class Recorder(Node[object, None]):
    """Puts each received message on the class-wide `received` queue."""

    # One process runs one pipeline, so a class-level queue is enough and
    # lets the driver read it without reaching into the Pipeline's nodes.
    received: queue.Queue = queue.Queue()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def update(self, message: Message):
        Recorder.received.put(message)
