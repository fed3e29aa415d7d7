"""A node in Python that calls a URL over wasi:http and returns the response.

Built for the `remote-node-http` world, so node-host runs it only with a grant
of the origins it calls. Headers may name the node's secret as
`${secret:api-key}`: the host fills it in and the node never sees the value.
"""

import json

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
    Value_Json,
    Value_Text,
)

NAME = "fetch-python"

METHODS = {
    "GET": http.Method_Get(),
    "POST": http.Method_Post(),
    "PUT": http.Method_Put(),
    "DELETE": http.Method_Delete(),
}


def failed(code: str, message: str) -> Err:
    return Err(NodeError(code, message))


def send(url: str, method: str, headers: dict, body: bytes | None):
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    fields = http.Fields.from_list(
        [(name.lower(), value.encode()) for name, value in headers.items()]
    )
    request = http.OutgoingRequest(fields)
    request.set_method(METHODS.get(method, http.Method_Other(method)))
    request.set_scheme(http.Scheme_Https() if scheme == "https" else http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(slash + path)
    outgoing = request.body()
    future = outgoing_handler.handle(request, None)
    if body:
        stream = outgoing.write()
        for start in range(0, len(body), 4096):
            stream.blocking_write_and_flush(body[start : start + 4096])
        stream.__exit__(None, None, None)
    http.OutgoingBody.finish(outgoing, None)
    future.subscribe().block()
    # option<result<result<incoming-response, error-code>>>: the first
    # `get` after the wait has it; an error on the way is raised.
    value = future.get()
    while isinstance(value, (Ok, Err)):
        if isinstance(value, Err):
            raise value
        value = value.value
    return value


def read_all(response) -> bytes:
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
            name=NAME,
            version="0.1.0",
            description="Calls a URL over HTTP and returns the response",
            inputs=[
                Port("url", "The URL to call", True, None),
                Port("method", "GET, POST, PUT or DELETE (default GET)", False, None),
                Port("body", "Text to send as the request body", False, None),
                Port("headers", "A JSON object of request headers", False, None),
            ],
            outputs=[
                Port("status", "The response's status code", True, None),
                Port("body", "The response's body as text", True, None),
            ],
            secrets=["api-key"],
        )

    def execute(self, inputs: list[NamedValue]) -> list[NamedValue]:
        given = {item.name: item.value for item in inputs}
        url = given["url"].value
        method = given["method"].value if "method" in given else "GET"
        body = given["body"].value.encode() if "body" in given else None
        headers = {}
        if "headers" in given:
            raw = given["headers"]
            headers = json.loads(raw.value) if isinstance(raw, Value_Json) else {}
        try:
            response = send(url, method, headers, body)
            status = response.status()
            text = read_all(response).decode("utf-8", "replace")
        except Err as err:
            raise failed("http", repr(err.value))
        return [
            NamedValue("status", Value_Integer(status)),
            NamedValue("body", Value_Text(text)),
        ]
