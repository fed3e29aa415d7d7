// The {{name}} node: greets `name`, or `world` when the name is missing.
//
// componentize-js binds this module to the `remote-node` world in wit/: the
// exported interface `node` is the object exported as `node`. A WIT variant
// is `{ tag, val }` (for example `{ tag: 'text', val: 'Ada' }`), an option is
// the value or undefined, s64 is a BigInt and list<u8> a Uint8Array.
//
// The host's imports are there too, should the node need them:
//   import { log, secret } from 'node-host:node/host@0.1.0';
//   log('info', 'a line for the event log');
//   const key = secret('api_key'); // declare it in info().secrets first

export const node = {
  // Describes the node: read once when the host loads it.
  info() {
    return {
      name: '{{name}}',
      version: '0.1.0',
      description: 'Greets someone',
      inputs: [{ name: 'name', description: 'Who to greet; missing means world', required: false }],
      outputs: [{ name: 'greeting', description: 'Hello <name>', required: true }],
      secrets: [],
    };
  },

  // Runs one event. To fail, throw a node-error (the host's guest_error):
  //   throw { code: 'bad_input', message: 'name is too long' };
  // Any other exception (a TypeError, a bug) traps the instance instead.
  execute(inputs) {
    const input = inputs.find((given) => given.name === 'name')?.value;
    const name = input?.tag === 'text' && input.val.trim() !== '' ? input.val.trim() : 'world';
    return [{ name: 'greeting', value: { tag: 'text', val: `Hello ${name}` } }];
  },
};
