"""The {{name}} node: calls `url` over HTTP with the caller's `api-key` secret
as a bearer token, and returns the response's status and body.

The secret is never in the node's hands: the header value names it as
`${secret:api-key}` and node-host fills it in as the request leaves.
node-host runs this node only with a grant of the origins it may call.
Build with ./build, then:

    node-host call {{name}}.wasm url=https://api.example.com/v1/things \\
      --allow-http https://api.example.com --secret api-key=KEY
"""

from componentize_py_types import Err, Ok

from wit_world import exports
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as http
from wit_world.imports.node_host_node_types import (
    NamedValue,
    NodeError,
    NodeInfo,
    Port,
    Value_Integer,
    Value_Text,
)


def get(url: str):
    """Sends a GET to `url` and waits for the response's head."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    headers = http.Fields.from_list([("authorization", b"Bearer ${secret:api-key}")])
    request = http.OutgoingRequest(headers)
    request.set_method(http.Method_Get())
    request.set_scheme(http.Scheme_Https() if scheme == "https" else http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(slash + path)
    body = request.body()
    future = outgoing_handler.handle(request, None)
    http.OutgoingBody.finish(body, None)
    future.subscribe().block()
    value = future.get()
    while isinstance(value, (Ok, Err)):
        if isinstance(value, Err):
            raise value
        value = value.value
    return value


def read_body(response) -> bytes:
    """The response's body, read to its end."""
    # The body outlives its stream: a resource goes only after its children.
    incoming = response.consume()
    chunks = []
    with incoming.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(65536))
            except Err as err:
                if isinstance(err.value, streams.StreamError_Closed):
                    break
                raise
    return b"".join(chunks)


class Node(exports.Node):
    def info(self) -> NodeInfo:
        return NodeInfo(
            name="{{name}}",
            version="0.1.0",
            description="Calls an API and returns its answer",
            inputs=[Port("url", "The URL to GET", True, None)],
            outputs=[
                Port("status", "The response's status code", True, None),
                Port("body", "The response's body as text", True, None),
            ],
            # The node may only use the secrets it declares here.
            secrets=["api-key"],
        )

    def execute(self, inputs: list[NamedValue]) -> list[NamedValue]:
        given = {item.name: item.value for item in inputs}
        url = given["url"].value
        try:
            response = get(url)
            status = response.status()
            body = read_body(response).decode("utf-8", "replace")
        except Err as err:
            raise Err(NodeError("http", repr(err.value)))
        return [
            NamedValue("status", Value_Integer(status)),
            NamedValue("body", Value_Text(body)),
        ]
