// The hello node in C: greets `name`, or `world` when the name is blank or
// missing; the same outputs as the Rust `hello` (uppercasing is ASCII only).

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>

#include "node_kit.h"

void exports_node_host_node_node_info(exports_node_host_node_node_node_info_t *ret) {
  port_t inputs[] = {kit_port("name", "Who to greet; blank or missing means world", false)};
  port_t outputs[] = {kit_port("greeting", "Hello <name>", true),
                      kit_port("shout", "HELLO <NAME>", true)};
  ret->name = kit_string("hello-c");
  ret->version = kit_string("0.1.0");
  ret->description = kit_string("Greets someone, politely and loudly");
  ret->inputs = kit_ports(inputs, 1);
  ret->outputs = kit_ports(outputs, 2);
  ret->secrets = (remote_node_list_string_t){.ptr = NULL, .len = 0};
}

// The shortest decimal that reads back as `x`, as Rust prints an f64.
static void format_float(double x, char *out, size_t size) {
  for (int precision = 1; precision <= 17; precision++) {
    snprintf(out, size, "%.*g", precision, x);
    if (strtod(out, NULL) == x) return;
  }
}

// The name as text (a heap buffer of `*len` bytes), whatever type it came as.
static char *name_text(const value_t *value, size_t *len) {
  char buffer[64];
  const uint8_t *bytes = NULL;
  size_t n = 0;
  switch (value ? value->tag : NODE_HOST_NODE_TYPES_VALUE_NULL) {
    case NODE_HOST_NODE_TYPES_VALUE_TEXT:
      bytes = value->val.text.ptr, n = value->val.text.len;
      break;
    case NODE_HOST_NODE_TYPES_VALUE_JSON:
      bytes = value->val.json.ptr, n = value->val.json.len;
      break;
    case NODE_HOST_NODE_TYPES_VALUE_BYTES:
      bytes = value->val.bytes.ptr, n = value->val.bytes.len;
      break;
    case NODE_HOST_NODE_TYPES_VALUE_INTEGER:
      n = snprintf(buffer, sizeof buffer, "%" PRId64, value->val.integer);
      bytes = (const uint8_t *)buffer;
      break;
    case NODE_HOST_NODE_TYPES_VALUE_FLOAT:
      format_float(value->val.float_, buffer, sizeof buffer);
      bytes = (const uint8_t *)buffer, n = strlen(buffer);
      break;
    case NODE_HOST_NODE_TYPES_VALUE_BOOLEAN:
      bytes = (const uint8_t *)(value->val.boolean ? "true" : "false");
      n = strlen((const char *)bytes);
      break;
    default:
      break;
  }
  // Trim, except JSON, which Rust's hello passes through as it is.
  if (!value || value->tag != NODE_HOST_NODE_TYPES_VALUE_JSON) {
    while (n && isspace(bytes[0])) bytes++, n--;
    while (n && isspace(bytes[n - 1])) n--;
  }
  if (n == 0) bytes = (const uint8_t *)"world", n = 5;
  char *text = malloc(n + 1);
  memcpy(text, bytes, n);
  text[n] = '\0';
  *len = n;
  return text;
}

// `prefix` followed by `len` bytes of `name`, as a heap string.
static remote_node_string_t join(const char *prefix, const char *name, size_t len, bool upper) {
  size_t head = strlen(prefix);
  remote_node_string_t out = {.ptr = malloc(head + len), .len = head + len};
  memcpy(out.ptr, prefix, head);
  for (size_t i = 0; i < len; i++) {
    out.ptr[head + i] = upper ? (uint8_t)toupper((unsigned char)name[i]) : (uint8_t)name[i];
  }
  return out;
}

bool exports_node_host_node_node_execute(exports_node_host_node_node_list_named_value_t *inputs,
                                         exports_node_host_node_node_list_named_value_t *ret,
                                         exports_node_host_node_node_node_error_t *err) {
  (void)err;
  named_value_t *input = kit_input(inputs, "name");
  size_t len;
  char *name = name_text(input ? &input->value : NULL, &len);
  ret->len = 2;
  ret->ptr = malloc(2 * sizeof(named_value_t));
  ret->ptr[0].name = kit_string("greeting");
  ret->ptr[0].value.tag = NODE_HOST_NODE_TYPES_VALUE_TEXT;
  ret->ptr[0].value.val.text = join("Hello ", name, len, false);
  ret->ptr[1].name = kit_string("shout");
  ret->ptr[1].value.tag = NODE_HOST_NODE_TYPES_VALUE_TEXT;
  ret->ptr[1].value.val.text = join("HELLO ", name, len, true);
  free(name);
  exports_node_host_node_node_list_named_value_free(inputs);
  return true;
}
