// A few helpers over the generated bindings (bindings/remote_node.h) that
// every C example node uses. Strings returned to the host must be allocated
// with malloc: the bindings free them after the host has read them.
#ifndef NODE_KIT_H
#define NODE_KIT_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "remote_node.h"

typedef node_host_node_types_value_t value_t;
typedef node_host_node_types_named_value_t named_value_t;
typedef node_host_node_types_port_t port_t;

// A heap copy of a C string, as the bindings' string type.
static inline remote_node_string_t kit_string(const char *text) {
  remote_node_string_t out;
  remote_node_string_dup(&out, text);
  return out;
}

// A heap copy of `len` bytes as a string.
static inline remote_node_string_t kit_string_n(const uint8_t *bytes, size_t len) {
  remote_node_string_t out = {.ptr = malloc(len ? len : 1), .len = len};
  if (len) memcpy(out.ptr, bytes, len);
  return out;
}

// A port with no default value.
static inline port_t kit_port(const char *name, const char *description, bool required) {
  port_t port = {
      .name = kit_string(name),
      .description = kit_string(description),
      .required = required,
      .default_value = {.is_some = false},
  };
  return port;
}

// A list of `count` ports copied to the heap.
static inline node_host_node_types_list_port_t kit_ports(const port_t *ports, size_t count) {
  node_host_node_types_list_port_t list = {.ptr = malloc(sizeof(port_t) * (count ? count : 1)),
                                           .len = count};
  memcpy(list.ptr, ports, sizeof(port_t) * count);
  return list;
}

// The input called `name`, or NULL when the caller did not give it.
static inline named_value_t *kit_input(exports_node_host_node_node_list_named_value_t *inputs,
                                       const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < inputs->len; i++) {
    remote_node_string_t *have = &inputs->ptr[i].name;
    if (have->len == len && memcmp(have->ptr, name, len) == 0) return &inputs->ptr[i];
  }
  return NULL;
}

// True when a string equals a C string.
static inline bool kit_equals(const remote_node_string_t *have, const char *text) {
  size_t len = strlen(text);
  return have->len == len && memcmp(have->ptr, text, len) == 0;
}

// A node error with heap copies of its code and message.
static inline void kit_error(exports_node_host_node_node_node_error_t *err, const char *code,
                             const char *message) {
  err->code = kit_string(code);
  err->message = kit_string(message);
}

#endif
