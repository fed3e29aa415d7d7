// Picks values out of a JSON document by dotted paths: with the document
// {"a": {"b": [10, {"c": true}]}}, the path "a.b.1.c" picks true, "a.b.0"
// picks 10, and a path that leads nowhere picks null.

/** A failure the node reports itself: WIT's `result<_, node-error>`.
 * componentize-js turns an exception with a `payload` into the error case
 * (the host's guest_error); any other exception traps the instance. */
class NodeError extends Error {
  constructor(code, message) {
    super(message);
    this.payload = { code, message };
  }
}

/** Parses `text` as JSON, or fails with invalid_json. */
function parse(name, text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new NodeError('invalid_json', `${name} is not valid JSON: ${error.message}`);
  }
}

/** Input `name` as a JSON value: text and bytes (UTF-8) are parsed as JSON,
 * the other cases are JSON values already. */
function jsonInput(inputs, name) {
  const value = inputs.find((input) => input.name === name)?.value;
  switch (value?.tag) {
    case 'json':
    case 'text':
      return parse(name, value.val);
    case 'bytes':
      return parse(name, new TextDecoder().decode(value.val));
    case 'integer': // a BigInt; JSON.parse too reads numbers as doubles
      return Number(value.val);
    case 'boolean':
    case 'float':
      return value.val;
    default: // null, or missing
      return null;
  }
}

/** The value at `path` in `doc`, or null. Segments are object keys, or
 * indexes into arrays; the empty path is the whole document. */
function pick(doc, path) {
  let here = doc;
  for (const key of path === '' ? [] : path.split('.')) {
    if (Array.isArray(here) && /^(0|[1-9]\d*)$/.test(key) && Number(key) < here.length) {
      here = here[Number(key)];
    } else if (here !== null && typeof here === 'object' && !Array.isArray(here) && Object.hasOwn(here, key)) {
      here = here[key];
    } else {
      return null;
    }
  }
  return here;
}

export const node = {
  info() {
    return {
      name: 'jsonpick-js',
      version: '0.1.0',
      description: 'Picks values out of a JSON document by dotted paths',
      inputs: [
        { name: 'document', description: 'A JSON document, as JSON or as text', required: true },
        { name: 'paths', description: 'JSON list of dotted paths, like ["a.b.0.c"]', required: true },
      ],
      outputs: [
        { name: 'picked', description: 'JSON object: each path and its value, or null', required: true },
      ],
      secrets: [],
    };
  },

  execute(inputs) {
    const doc = jsonInput(inputs, 'document');
    const paths = jsonInput(inputs, 'paths');
    if (!Array.isArray(paths) || !paths.every((path) => typeof path === 'string')) {
      throw new NodeError('invalid_paths', 'paths must be a JSON list of strings, like ["a.b.0.c"]');
    }
    // fromEntries defines each key as data, even one named "__proto__".
    const picked = Object.fromEntries(paths.map((path) => [path, pick(doc, path)]));
    return [{ name: 'picked', value: { tag: 'json', val: JSON.stringify(picked) } }];
  },
};
