"""Greeting proc node for Juturna's reference remotize server.

Used by tests/e2e/juturna_python.rs and the juturna benchmark: it is served
with `python -m juturna remotize -n hello -m hello_py -P plugins -p PORT`
(run from a directory that holds this `plugins` tree) and answers what
node-host's hello node answers.

Input: a message whose payload is an ObjectPayload with a string `name`.
Output: one new message, payload ObjectPayload(greeting="Hello <name>",
shout="HELLO <NAME>"), created by this node, same version as the input,
timers carried over. A payload without `name` raises KeyError, which (as
for any Juturna node) ends the node's update thread: the server then times
out on that call and on every later one.
"""

from juturna.components import Message, Node
from juturna.payloads import ObjectPayload


class HelloPy(Node[ObjectPayload, ObjectPayload]):
    """Answers each Object message with a greeting and a shout."""

    def __init__(self, **kwargs):
        # kwargs: node_name, pipe_name, synchroniser (set by juturna's builder)
        super().__init__(**kwargs)

    def update(self, message: Message[ObjectPayload]):
        name = message.payload['name']

        reply = Message[ObjectPayload](
            creator=self.name,
            version=message.version,
            timers_from=message,
            payload=ObjectPayload(
                greeting=f'Hello {name}',
                shout=f'HELLO {name.upper()}',
            ),
        )

        # transmit() stamps the reply with the input's id, which is how the
        # remotize server matches it to the waiting gRPC call.
        self.transmit(reply)
