"""The {{name}} node: greets `name`.

componentize-py generates the `wit_world` package from wit/node.wit when it
builds the component; this module defines the class `Node` it exports.
Import every module the node uses here, at the top: the component has no
files at run time, so a module first imported during an event is not found.
"""

from componentize_py_types import Err

from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import NamedValue, NodeError, NodeInfo, Port, Value_Text


class Node(exports.Node):
    def info(self) -> NodeInfo:
        """Describes the node; the host reads it once when it loads the component."""
        return NodeInfo(
            name="{{name}}",
            version="0.1.0",
            description="Greets someone",
            inputs=[Port("name", "Who to greet", True, None)],
            outputs=[Port("greeting", "Hello <name>", True, None)],
            # Names of the secrets the node may read with host.secret(name).
            secrets=[],
        )

    def execute(self, inputs: list[NamedValue]) -> list[NamedValue]:
        """Runs one event, in a fresh instance."""
        given = {input.name: input.value for input in inputs}
        match given["name"]:  # required, so the host always passes it
            case Value_Text(name):
                host.log(host.Level.INFO, f"greeting {name}")
                return [NamedValue("greeting", Value_Text(f"Hello {name}"))]
            case other:
                # The node's own error: the host reports it as guest_error.
                raise Err(NodeError("bad_name", f"name must be text, not {other}"))
