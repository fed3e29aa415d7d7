"""A test node in Python: returns its input `value` unchanged, or, when asked
through `mode`, prints, logs, fails, raises, loops or reads a secret first.
The host's handling of a Python guest is tested with it.
"""

from componentize_py_types import Err

from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    NamedValue,
    NodeError,
    NodeInfo,
    Port,
    Value_Null,
    Value_Text,
)

NAME = "echo-python"


class Node(exports.Node):
    def info(self) -> NodeInfo:
        return NodeInfo(
            name=NAME,
            version="0.1.0",
            description="Returns value, after misbehaving as mode asks (a test node)",
            inputs=[
                Port("value", "Returned as output value", False, None),
                Port(
                    "mode",
                    "print, log, fail, throw, loop or secret; missing means just echo",
                    False,
                    None,
                ),
            ],
            outputs=[Port("value", "Input value, or null", False, None)],
            # A node may only read the secrets it declares here.
            secrets=["api_key"],
        )

    def execute(self, inputs: list[NamedValue]) -> list[NamedValue]:
        given = {input.name: input.value for input in inputs}
        # Echoing returns the value as it came, whatever its case; without a
        # value it returns no outputs, and the host fills in null.
        echoed = [NamedValue("value", given["value"])] if "value" in given else []

        match given.get("mode"):
            case None | Value_Null():
                return echoed
            case Value_Text(mode):
                pass
            case other:
                raise Err(NodeError("bad_mode", f"mode must be text, not {other}"))

        match mode:
            case "print":
                # Plain print: the host captures stdout (and caps it).
                for i in range(10000):
                    print(f"line {i}")
                return echoed
            case "log":
                host.log(host.Level.INFO, f"{NAME} says hi")
                return echoed
            case "fail":
                # WIT's `result<_, node-error>`: raising Err(NodeError(...)) is
                # the error case, which the host reports as guest_error.
                raise Err(NodeError("asked_to_fail", f"{NAME} was asked to fail"))
            case "throw":
                # Any other uncaught exception traps the instance (trap).
                raise RuntimeError("boom from python")
            case "loop":
                # Runs until the event's fuel or deadline runs out.
                while True:
                    pass
            case "secret":
                # WIT's `option<string>` is `str | None` in Python.
                secret = host.secret("api_key")
                value = Value_Null() if secret is None else Value_Text(secret)
                return [NamedValue("value", value)]
            case _:
                raise Err(NodeError("bad_mode", f"unknown mode {mode}"))
