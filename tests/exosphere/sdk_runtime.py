"""Exosphere's own runtime (exospherehost 0.0.3) serving the Python twin of
node-host's `splitter` example node, so that tests/e2e/exosphere.rs can
compare the requests it sends with node-host's runtime's.

Usage: python sdk_runtime.py STATE_MANAGER_URL NAMESPACE RUNTIME_NAME KEY

It runs until it is killed. The node: inputs `text` and `mode` (default ""),
output `item` (default ""); it splits `text` at commas into one output set
per item, or raises PruneSignal / ReQueueAfterSignal(1.5 s) / an error when
`mode` is prune / requeue / fail, as the Rust `splitter` does.
"""

import sys
from datetime import timedelta

from pydantic import BaseModel

from exospherehost import BaseNode, PruneSignal, ReQueueAfterSignal, Runtime


class splitter(BaseNode):  # noqa: N801 - the class name is the node name on the wire
    class Inputs(BaseModel):
        text: str
        mode: str = ""

    class Outputs(BaseModel):
        item: str = ""

    class Secrets(BaseModel):
        pass

    async def execute(self):
        text, mode = self.inputs.text, self.inputs.mode
        if mode == "prune":
            raise PruneSignal({"pruned": text})
        if mode == "requeue":
            raise ReQueueAfterSignal(timedelta(milliseconds=1500))
        if mode == "fail":
            raise ValueError(f"cannot split `{text}`")
        return [self.Outputs(item=item.strip()) for item in text.split(",")]


def main():
    url, namespace, name, key = sys.argv[1:5]
    Runtime(
        namespace=namespace,
        name=name,
        nodes=[splitter],
        state_manager_uri=url,
        key=key,
        batch_size=16,
        workers=4,
        poll_interval=0.1,
    ).start()


if __name__ == "__main__":
    main()
