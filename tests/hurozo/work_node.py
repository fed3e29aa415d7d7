"""The `work` node (see guest-examples/rust/work) for the real hurozo 0.1.1
worker: burns CPU for `ms` milliseconds, or sleeps when `wait` is true."""

import time

from hurozo import Node


def work(ms=1, wait=False):
    seconds = max(0, min(int(ms), 60_000)) / 1000
    if wait:
        time.sleep(seconds)
    else:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            pass
    return {"ms": int(ms)}


if __name__ == "__main__":
    Node(work, {"name": "work", "inputs": ["ms", "wait"], "outputs": ["ms"]})
