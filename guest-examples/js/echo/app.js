// A test node in JavaScript: returns its input `value` unchanged, or, when
// asked through `mode`, prints, logs, fails, throws, loops or reads a secret
// first. The host's handling of a JavaScript guest is tested with it.

// The world's imports: `host.log` and `host.secret` (see wit/node.wit).
import { log, secret } from 'node-host:node/host@0.1.0';

const NAME = 'echo-js';

/** A failure the node reports itself: WIT's `result<_, node-error>`.
 * componentize-js turns an exception with a `payload` into the error case
 * (the host's guest_error); any other exception traps the instance. */
class NodeError extends Error {
  constructor(code, message) {
    super(message);
    this.payload = { code, message };
  }
}

export const node = {
  info() {
    return {
      name: NAME,
      version: '0.1.0',
      description: 'Returns value, after misbehaving as mode asks (a test node)',
      inputs: [
        { name: 'value', description: 'Returned as output value', required: false },
        {
          name: 'mode',
          description: 'print, log, fail, throw, loop or secret; missing means just echo',
          required: false,
        },
      ],
      outputs: [{ name: 'value', description: 'Input value, or null', required: false }],
      // A node may only read the secrets it declares here.
      secrets: ['api_key'],
    };
  },

  execute(inputs) {
    try {
      return run(inputs);
    } catch (error) {
      // componentize-js 0.23 traps on an uncaught exception without saying
      // what it was: print it first, and the host's trap message carries it
      // (the host captures stderr).
      if (!(error instanceof NodeError)) console.error(`${NAME}: uncaught ${error}\n${error.stack ?? ""}`);
      throw error;
    }
  },
};

function run(inputs) {
  const given = Object.fromEntries(inputs.map((input) => [input.name, input.value]));
  // Echoing returns the value as it came, whatever its case; without a
  // value it returns no outputs, and the host fills in null.
  const echoed = 'value' in given ? [{ name: 'value', value: given.value }] : [];

  const mode = given.mode;
  if (mode === undefined || mode.tag === 'null') return echoed;
  if (mode.tag !== 'text') throw new NodeError('bad_mode', `mode must be text, not ${mode.tag}`);

  switch (mode.val) {
    case 'print':
      // Plain console.log: the host captures stdout (and caps it).
      for (let i = 0; i < 10000; i++) console.log(`line ${i}`);
      return echoed;
    case 'log':
      // WIT's enum `level` is its case name as a string.
      log('info', `${NAME} says hi`);
      return echoed;
    case 'fail':
      throw new NodeError('asked_to_fail', `${NAME} was asked to fail`);
    case 'throw':
      // Any other uncaught exception traps the instance (trap).
      throw new Error('boom from js');
    case 'loop':
      // Runs until the event's fuel or deadline runs out.
      for (;;) {}
    case 'secret': {
      // WIT's `option<string>` is a string or undefined.
      const key = secret('api_key');
      return [{ name: 'value', value: key === undefined ? { tag: 'null' } : { tag: 'text', val: key } }];
    }
    default:
      throw new NodeError('bad_mode', `unknown mode ${mode.val}`);
  }
}
