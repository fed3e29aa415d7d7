"""Runs a real Juturna pipeline whose middle node is warped to a gRPC server.

Used by tests/e2e/juturna_python.rs and the juturna benchmark.

Usage: python pipeline.py HOST PORT NAME

The pipeline is  source (one_shot) -> hello (warped) -> sink (recorder):

- `source` emits one message with ObjectPayload(name=NAME);
- `hello` is marked `"warped": true`, so juturna's Pipeline.warmup swaps it
  for its Warp node, which sends each message to
  MessagingService/SendAndReceive at HOST:PORT (its original mark,
  `hello_py`, is never loaded here; its `configuration` becomes the Warp's
  `remote_config`);
- `sink` records what the Warp transmits.

The script starts the pipeline, waits at most WAIT_SECONDS for the sink's
first message, stops and destroys the pipeline, and prints on the last
stdout line {"payload": {...}, "creator": ..., "version": ...}. On failure
(timeout, or the Warp's update thread dying on a gRPC error) it exits 1
with the reason on stderr. Juturna's logs go to stderr. The pipeline folder
juturna writes (config.json, one folder per node) lives in a temporary
directory that is removed at the end.
"""

import json
import logging
import pathlib
import queue
import shutil
import sys
import tempfile
import threading
import time

# The plugin tree next to this file is imported as `plugins.nodes...`; keep
# Python from writing __pycache__ folders into the repository.
sys.dont_write_bytecode = True
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from juturna.components import Pipeline  # noqa: E402
from juturna.utils.log_utils import jt_logger  # noqa: E402

from plugins.nodes.sink._recorder.recorder import Recorder  # noqa: E402

WAIT_SECONDS = 20  # whole round trip, source to sink
WARP_TIMEOUT = 10  # seconds; the Warp's gRPC deadline and envelope ttl


def pipeline_config(host: str, port: int, name: str, folder: str) -> dict:
    return {
        'version': '1.0',
        # relative, resolved against sys.path (HERE) as `plugins.nodes...`
        'plugins': ['plugins'],
        'pipeline': {
            'name': 'warped_hello',
            'id': 'warped_hello',
            'folder': folder,
            'nodes': [
                {
                    'name': 'source',
                    'type': 'source',
                    'mark': 'one_shot',
                    'configuration': {'name': name},
                },
                {
                    'name': 'hello',
                    'type': 'proc',
                    'mark': 'hello_py',
                    'configuration': {},
                    'warped': True,
                    'warp_configuration': {
                        'grpc_host': host,
                        'grpc_port': port,
                        'timeout': WARP_TIMEOUT,
                    },
                },
                {
                    'name': 'sink',
                    'type': 'sink',
                    'mark': 'recorder',
                    'configuration': {},
                },
            ],
            'links': [
                {'from': 'source', 'to': 'hello'},
                {'from': 'hello', 'to': 'sink'},
            ],
        },
    }


def fail(reason: str):
    print(f'pipeline.py: {reason}', file=sys.stderr)
    sys.exit(1)


def describe(exc: BaseException) -> str:
    """One line for an exception; gRPC errors as `CODE: details`."""
    if hasattr(exc, 'code') and hasattr(exc, 'details'):
        return f'gRPC {exc.code().name}: {exc.details()}'
    return f'{type(exc).__name__}: {exc}'


def run(host: str, port: int, name: str, folder: str):
    """Runs the pipeline; returns (received message or None, error or None)."""
    # The Warp re-raises any gRPC error inside update(), which ends its
    # thread; catch that so we fail at once instead of at WAIT_SECONDS.
    thread_errors: queue.Queue = queue.Queue()
    default_hook = threading.excepthook

    def on_thread_error(args):
        thread_errors.put(f'thread {args.thread.name}: {describe(args.exc_value)}')
        default_hook(args)

    threading.excepthook = on_thread_error

    pipeline = Pipeline(pipeline_config(host, port, name, folder))
    try:
        pipeline.warmup()
        pipeline.start()

        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            if not thread_errors.empty():
                return None, thread_errors.get()
            left = deadline - time.monotonic()
            if left <= 0:
                return None, f'the sink got nothing within {WAIT_SECONDS} s'
            try:
                return Recorder.received.get(timeout=min(left, 0.1)), None
            except queue.Empty:
                pass
    finally:
        try:
            pipeline.destroy()  # stops it first if it is running
        except Exception as e:  # keep the first error the one reported
            print(f'pipeline.py: cleanup failed: {describe(e)}', file=sys.stderr)


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        fail('usage: python pipeline.py HOST PORT NAME')

    host, port, name = argv[1], argv[2], argv[3]
    if not port.isdigit():
        fail(f'PORT must be a number, got {port!r}')
    jt_logger().setLevel(logging.INFO)

    workdir = tempfile.mkdtemp(prefix='juturna-pipeline-')
    try:
        received, error = run(host, int(port), name, str(pathlib.Path(workdir, 'pipe')))
    except Exception as e:
        received, error = None, describe(e)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if error is not None:
        fail(error)  # after juturna's shutdown logs, so it is the last line

    payload = received.payload
    result = {
        'payload': dict(payload) if isinstance(payload, dict) else payload,
        'creator': received.creator,
        'version': received.version,
    }
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main(sys.argv)
