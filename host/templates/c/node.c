// The {{name}} node: greets `name`.
//
// node-host calls `info` once when it loads the component, then runs every
// event in a fresh instance: `execute` gets the inputs and fills in the
// outputs, matched to the declared outputs by name. Nothing is granted: no
// files, network or environment. The C bindings in bindings/ are generated
// from wit/node.wit by wit-bindgen. Every string handed back must be
// malloc'ed (the bindings free it after the host has read it), and the
// inputs belong to `execute`, which frees them.
//
// Build with ./build, then: node-host call {{name}}.wasm name=Ada

#include <stdlib.h>
#include <string.h>

#include "remote_node.h"

typedef node_host_node_types_port_t port_t;
typedef node_host_node_types_named_value_t named_value_t;

static remote_node_string_t copy(const char *text) {
  remote_node_string_t out;
  remote_node_string_dup(&out, text);
  return out;
}

void exports_node_host_node_node_info(exports_node_host_node_node_node_info_t *ret) {
  ret->name = copy("{{name}}");
  ret->version = copy("0.1.0");
  ret->description = copy("Greets someone");
  ret->inputs.len = 1;
  ret->inputs.ptr = malloc(sizeof(port_t));
  ret->inputs.ptr[0] = (port_t){
      .name = copy("name"),
      .description = copy("Who to greet"),
      .required = false,
      .default_value = {.is_some = false},
  };
  ret->outputs.len = 1;
  ret->outputs.ptr = malloc(sizeof(port_t));
  ret->outputs.ptr[0] = (port_t){
      .name = copy("greeting"),
      .description = copy("Hello <name>"),
      .required = true,
      .default_value = {.is_some = false},
  };
  ret->secrets.len = 0;
  ret->secrets.ptr = NULL;
}

bool exports_node_host_node_node_execute(exports_node_host_node_node_list_named_value_t *inputs,
                                         exports_node_host_node_node_list_named_value_t *ret,
                                         exports_node_host_node_node_node_error_t *err) {
  const uint8_t *name = (const uint8_t *)"world";
  size_t name_len = 5;
  for (size_t i = 0; i < inputs->len; i++) {
    named_value_t *input = &inputs->ptr[i];
    if (input->name.len != 4 || memcmp(input->name.ptr, "name", 4) != 0) continue;
    if (input->value.tag != NODE_HOST_NODE_TYPES_VALUE_TEXT) {
      err->code = copy("invalid_input");
      err->message = copy("`name` must be text");
      exports_node_host_node_node_list_named_value_free(inputs);
      return false;
    }
    name = input->value.val.text.ptr;
    name_len = input->value.val.text.len;
  }

  remote_node_string_t message = copy("greeting someone");
  node_host_node_host_log(NODE_HOST_NODE_HOST_LEVEL_INFO, &message);
  remote_node_string_free(&message);

  remote_node_string_t greeting = {.ptr = malloc(6 + name_len), .len = 6 + name_len};
  memcpy(greeting.ptr, "Hello ", 6);
  memcpy(greeting.ptr + 6, name, name_len);
  ret->len = 1;
  ret->ptr = malloc(sizeof(named_value_t));
  ret->ptr[0].name = copy("greeting");
  ret->ptr[0].value.tag = NODE_HOST_NODE_TYPES_VALUE_TEXT;
  ret->ptr[0].value.val.text = greeting;
  exports_node_host_node_node_list_named_value_free(inputs);
  return true;
}
