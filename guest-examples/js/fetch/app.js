// A node in JavaScript that calls a URL over wasi:http and returns the
// response. It is built for the `remote-node-http` world of wit/http.wit, so
// node-host runs it only with a grant of the origins it calls.
//
// It calls wasi:http itself rather than `fetch`: `fetch` answers with a
// promise, and a node's `execute` is a synchronous export, inside which
// StarlingMonkey cannot run its event loop to settle one. The WASI calls
// below block instead (node-host ends every wait at the event's deadline).
// Headers may name the node's secret as `${secret:api-key}`: the host fills
// it in and the node never sees the value.

import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, OutgoingBody, OutgoingRequest } from 'wasi:http/types@0.2.12';

const encoder = new TextEncoder();

/** A node error: componentize-js returns an exception's `payload` as the
 * `node-error` of `execute`. */
class NodeError extends Error {
  constructor(code, message) {
    super(message);
    this.payload = { code, message };
  }
}

function text(inputs, name) {
  const found = inputs.find((input) => input.name === name)?.value;
  return found?.tag === 'text' || found?.tag === 'json' ? found.val : undefined;
}

function send(url, method, headers, body) {
  const [scheme, rest] = url.split('://');
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '/' : rest.slice(slash);
  const fields = Fields.fromList(
    Object.entries(headers).map(([name, value]) => [name.toLowerCase(), encoder.encode(value)]),
  );
  const request = new OutgoingRequest(fields);
  request.setMethod({ tag: method.toLowerCase() });
  request.setScheme({ tag: scheme === 'https' ? 'HTTPS' : 'HTTP' });
  request.setAuthority(authority);
  request.setPathWithQuery(path);
  const outgoing = request.body();
  const future = handle(request, undefined);
  if (body !== undefined) {
    const stream = outgoing.write();
    const bytes = encoder.encode(body);
    for (let start = 0; start < bytes.length; start += 4096) {
      stream.blockingWriteAndFlush(bytes.subarray(start, start + 4096));
    }
    stream[Symbol.dispose]?.();
  }
  OutgoingBody.finish(outgoing, undefined);
  future.subscribe().block();
  const ready = future.get();
  if (ready.tag === 'err') throw new Error('the response was taken already');
  if (ready.val.tag === 'err') throw new Error(`http: ${JSON.stringify(ready.val.val)}`);
  return ready.val.val;
}

function readAll(response) {
  const stream = response.consume().stream();
  const chunks = [];
  for (;;) {
    try {
      chunks.push(stream.blockingRead(65536n));
    } catch (err) {
      if (err?.payload?.tag === 'closed') break;
      throw err;
    }
  }
  let size = 0;
  for (const chunk of chunks) size += chunk.length;
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(all);
}

export const node = {
  info() {
    return {
      name: 'fetch-js',
      version: '0.1.0',
      description: 'Calls a URL over HTTP and returns the response',
      inputs: [
        { name: 'url', description: 'The URL to call', required: true },
        { name: 'method', description: 'GET, POST, PUT or DELETE (default GET)', required: false },
        { name: 'body', description: 'Text to send as the request body', required: false },
        { name: 'headers', description: 'A JSON object of request headers', required: false },
      ],
      outputs: [
        { name: 'status', description: "The response's status code", required: true },
        { name: 'body', description: "The response's body as text", required: true },
      ],
      secrets: ['api-key'],
    };
  },

  execute(inputs) {
    const url = text(inputs, 'url');
    const method = text(inputs, 'method') ?? 'GET';
    const headers = JSON.parse(text(inputs, 'headers') ?? '{}');
    let response;
    try {
      response = send(url, method, headers, text(inputs, 'body'));
    } catch (err) {
      const detail = err?.payload === undefined ? err?.message : JSON.stringify(err.payload);
      throw new NodeError('http', String(detail ?? err));
    }
    const status = response.status();
    const body = readAll(response);
    return [
      { name: 'status', value: { tag: 'integer', val: BigInt(status) } },
      { name: 'body', value: { tag: 'text', val: body } },
    ];
  },
};
