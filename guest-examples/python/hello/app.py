"""The hello-world node in Python: greets `name`, or `world` when the name is
blank or missing. It behaves like the Rust `hello` example.

componentize-py generates the `wit_world` package from wit/node.wit at build
time; this module only has to define a class `Node` with `info` and `execute`.
"""

from decimal import Decimal

from wit_world import exports
from wit_world.imports.types import (
    NamedValue,
    NodeInfo,
    Port,
    Value,
    Value_Boolean,
    Value_Bytes,
    Value_Float,
    Value_Integer,
    Value_Json,
    Value_Text,
)


def rust_float(x: float) -> str:
    """Renders a float the way Rust's `to_string` does: shortest digits that
    round-trip, never an exponent, no trailing `.0` (1.5 -> "1.5", 2.0 -> "2",
    1e20 -> "100000000000000000000")."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    text = format(Decimal(repr(x)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def name_of(value: Value | None) -> str:
    """The name to greet, as text: "" when there is none."""
    match value:
        case Value_Text(text):
            return text.strip()
        case Value_Integer(n):
            return str(n)
        case Value_Float(x):
            return rust_float(x)
        case Value_Boolean(b):
            return "true" if b else "false"
        case Value_Json(json_text):
            return json_text
        case Value_Bytes(data):
            return data.decode("utf-8", errors="replace").strip()
        case _:  # Value_Null, or the input was left out
            return ""


class Node(exports.Node):
    def info(self) -> NodeInfo:
        return NodeInfo(
            name="hello-python",
            version="0.1.0",
            description="Greets someone, politely and loudly",
            inputs=[
                Port("name", "Who to greet; blank or missing means world", False, None),
            ],
            outputs=[
                Port("greeting", "Hello <name>", True, None),
                Port("shout", "HELLO <NAME>", True, None),
            ],
            secrets=[],
        )

    def execute(self, inputs: list[NamedValue]) -> list[NamedValue]:
        given = {input.name: input.value for input in inputs}
        name = name_of(given.get("name")) or "world"
        return [
            NamedValue("greeting", Value_Text(f"Hello {name}")),
            NamedValue("shout", Value_Text(f"HELLO {name.upper()}")),
        ]
