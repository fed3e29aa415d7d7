// The {{name}} node: calls `url` over HTTP with the caller's `api-key` secret
// as a bearer token, and returns the response's status and body.
//
// The secret is never in the node's hands: the header value names it as
// `${secret:api-key}` and node-host fills it in as the request leaves.
// node-host runs this node only with a grant of the origins it may call.
//
// It calls wasi:http itself rather than `fetch`: `fetch` answers with a
// promise, and `execute` is a synchronous export, inside which the engine
// cannot run its event loop to settle one. Build with ./build, then:
//
//     node-host call {{name}}.wasm url=https://api.example.com/v1/things \
//       --allow-http https://api.example.com --secret api-key=KEY

import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, OutgoingBody, OutgoingRequest } from 'wasi:http/types@0.2.12';

/** A node error: componentize-js returns an exception's `payload` as the
 * `node-error` of `execute`. */
class NodeError extends Error {
  constructor(code, message) {
    super(message);
    this.payload = { code, message };
  }
}

/** Sends a GET to `url` and waits for the response's head. */
function get(url) {
  const [scheme, rest] = url.split('://');
  const slash = rest.indexOf('/');
  const headers = Fields.fromList([
    ['authorization', new TextEncoder().encode('Bearer ${secret:api-key}')],
  ]);
  const request = new OutgoingRequest(headers);
  request.setMethod({ tag: 'get' });
  request.setScheme({ tag: scheme === 'https' ? 'HTTPS' : 'HTTP' });
  request.setAuthority(slash < 0 ? rest : rest.slice(0, slash));
  request.setPathWithQuery(slash < 0 ? '/' : rest.slice(slash));
  const body = request.body();
  const future = handle(request, undefined);
  OutgoingBody.finish(body, undefined);
  future.subscribe().block();
  const ready = future.get();
  if (ready.tag === 'err') throw new NodeError('http', 'the response was taken already');
  if (ready.val.tag === 'err') throw new NodeError('http', JSON.stringify(ready.val.val));
  return ready.val.val;
}

/** The response's body, read to its end, as text. */
function readBody(response) {
  // The body outlives its stream: a resource goes only after its children.
  const body = response.consume();
  const stream = body.stream();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    try {
      text += decoder.decode(stream.blockingRead(65536n), { stream: true });
    } catch (err) {
      if (err?.payload?.tag === 'closed') return text + decoder.decode();
      throw err;
    }
  }
}

export const node = {
  info() {
    return {
      name: '{{name}}',
      version: '0.1.0',
      description: 'Calls an API and returns its answer',
      inputs: [{ name: 'url', description: 'The URL to GET', required: true }],
      outputs: [
        { name: 'status', description: "The response's status code", required: true },
        { name: 'body', description: "The response's body as text", required: true },
      ],
      // The node may only use the secrets it declares here.
      secrets: ['api-key'],
    };
  },

  execute(inputs) {
    const url = inputs.find((input) => input.name === 'url')?.value;
    if (url?.tag !== 'text') throw new NodeError('http', 'url must be text');
    const response = get(url.val);
    const status = response.status();
    return [
      { name: 'status', value: { tag: 'integer', val: BigInt(status) } },
      { name: 'body', value: { tag: 'text', val: readBody(response) } },
    ];
  },
};
