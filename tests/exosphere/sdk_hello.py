"""Exosphere's own runtime (exospherehost 0.0.3) serving `hello` in Python,
the twin of node-host's Rust `hello` example, for the Exosphere benchmark
(tests/benches/exosphere.rs).

Usage: python sdk_hello.py STATE_MANAGER_URL KEY NAMESPACE BATCH_SIZE

It runs until it is killed, with the SDK's defaults but a 0.1 s poll
interval (the default 1 s sleeps after every poll, found states or not).
"""

import sys

from pydantic import BaseModel

from exospherehost import BaseNode, Runtime


class hello(BaseNode):  # noqa: N801 - the class name is the node name on the wire
    class Inputs(BaseModel):
        name: str = ""

    class Outputs(BaseModel):
        greeting: str
        shout: str

    async def execute(self):
        name = self.inputs.name.strip() or "world"
        greeting = f"Hello {name}"
        return self.Outputs(greeting=greeting, shout=greeting.upper())


def main():
    url, key, namespace, batch = sys.argv[1:5]
    Runtime(
        namespace=namespace,
        name="sdk-hello",
        nodes=[hello],
        state_manager_uri=url,
        key=key,
        batch_size=int(batch),
        workers=4,
        poll_interval=0.1,
    ).start()


if __name__ == "__main__":
    main()
