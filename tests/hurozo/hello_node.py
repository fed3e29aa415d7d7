"""The hello node of Hurozo's README, served by the real hurozo 0.1.1 worker.

Same behaviour and outputs as node-host's Rust `hello` guest, so tests and
benchmarks can compare the two on one hub. The node name comes from
NODE_NAME (default `hello`).
"""

import os

from hurozo import Node


def hello(name=None):
    name = (str(name) if name is not None else "").strip() or "world"
    return {"greeting": f"Hello {name}", "shout": f"HELLO {name.upper()}"}


if __name__ == "__main__":
    Node(
        hello,
        {
            "name": os.environ.get("NODE_NAME", "hello"),
            "inputs": ["name"],
            "outputs": ["greeting", "shout"],
        },
    )
