// The hello-world node in JavaScript: greets `name`, or `world` when the name
// is blank or missing. It behaves like the Rust `hello` example.
//
// componentize-js binds this module to the `remote-node` world of wit/node.wit:
// the exported interface `node` is the object exported as `node`, with one
// method per WIT function. WIT names become camelCase (`default-value` is
// `defaultValue`), a variant is `{ tag, val }`, an `option` is the value or
// undefined, s64 is a BigInt and list<u8> a Uint8Array.

/** Renders a float the way Rust's `to_string` does: shortest digits that
 * round-trip, never an exponent (1.5 -> "1.5", 2 -> "2", 1e21 ->
 * "1000000000000000000000", -0 -> "-0"). */
function rustFloat(x) {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (Object.is(x, -0)) return '-0';
  // JavaScript writes exponents from 1e21 up and from 1e-7 down: expand them.
  const parts = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(String(x));
  if (!parts) return String(x);
  const [, sign, first, rest = '', exponent] = parts;
  const digits = first + rest;
  const e = Number(exponent);
  return e > 0
    ? sign + digits.padEnd(e + 1, '0')
    : `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
}

/** The name to greet, as text: '' when there is none. */
function nameOf(value) {
  switch (value?.tag) {
    case 'text':
      return value.val.trim();
    case 'integer': // a BigInt
      return value.val.toString();
    case 'float':
      return rustFloat(value.val);
    case 'boolean':
      return value.val ? 'true' : 'false';
    case 'json': // JSON text, passed on as given
      return value.val;
    case 'bytes': // a Uint8Array; invalid UTF-8 becomes U+FFFD
      return new TextDecoder().decode(value.val).trim();
    default: // null, or the input was left out
      return '';
  }
}

export const node = {
  info() {
    return {
      name: 'hello-js',
      version: '0.1.0',
      description: 'Greets someone, politely and loudly',
      inputs: [
        { name: 'name', description: 'Who to greet; blank or missing means world', required: false },
      ],
      outputs: [
        { name: 'greeting', description: 'Hello <name>', required: true },
        { name: 'shout', description: 'HELLO <NAME>', required: true },
      ],
      secrets: [],
    };
  },

  execute(inputs) {
    const given = inputs.find((input) => input.name === 'name');
    const name = nameOf(given?.value) || 'world';
    return [
      { name: 'greeting', value: { tag: 'text', val: `Hello ${name}` } },
      { name: 'shout', value: { tag: 'text', val: `HELLO ${name.toUpperCase()}` } },
    ];
  },
};
