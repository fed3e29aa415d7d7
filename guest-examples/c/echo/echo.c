// The echo test node in C: returns input `value` unchanged, or misbehaves
// as input `mode` asks (print, log, fail, throw, loop, secret), so the host's
// limits can be tested on a C guest.

#include <stdio.h>

#include "node_kit.h"

void exports_node_host_node_node_info(exports_node_host_node_node_node_info_t *ret) {
  port_t inputs[] = {kit_port("value", "Returned as output value", false),
                     kit_port("mode", "print, log, fail, throw, loop or secret", false)};
  port_t outputs[] = {kit_port("value", "Input value, or what the mode returns", false)};
  ret->name = kit_string("echo-c");
  ret->version = kit_string("0.1.0");
  ret->description = kit_string("Returns its input, or misbehaves on request");
  ret->inputs = kit_ports(inputs, 2);
  ret->outputs = kit_ports(outputs, 1);
  ret->secrets.len = 1;
  ret->secrets.ptr = malloc(sizeof(remote_node_string_t));
  ret->secrets.ptr[0] = kit_string("api_key");
}

// Moves input `value` (if given) into the outputs.
static void echo(exports_node_host_node_node_list_named_value_t *inputs,
                 exports_node_host_node_node_list_named_value_t *ret) {
  named_value_t *value = kit_input(inputs, "value");
  ret->len = 0;
  ret->ptr = malloc(sizeof(named_value_t));
  if (value) {
    ret->ptr[ret->len++] = *value;
    // The output owns the name and value now; leave nothing for the free below.
    value->name = (remote_node_string_t){0};
    value->value.tag = NODE_HOST_NODE_TYPES_VALUE_NULL;
  }
}

bool exports_node_host_node_node_execute(exports_node_host_node_node_list_named_value_t *inputs,
                                         exports_node_host_node_node_list_named_value_t *ret,
                                         exports_node_host_node_node_node_error_t *err) {
  named_value_t *mode_input = kit_input(inputs, "mode");
  remote_node_string_t none = {0};
  remote_node_string_t *mode =
      mode_input && mode_input->value.tag == NODE_HOST_NODE_TYPES_VALUE_TEXT
          ? &mode_input->value.val.text
          : &none;
  bool ok = true;
  if (mode->len == 0) {
    echo(inputs, ret);
  } else if (kit_equals(mode, "print")) {
    for (int i = 0; i < 10000; i++) printf("line %d\n", i);
    fflush(stdout);
    echo(inputs, ret);
  } else if (kit_equals(mode, "log")) {
    remote_node_string_t message = kit_string("echo-c says hi");
    node_host_node_host_log(NODE_HOST_NODE_HOST_LEVEL_INFO, &message);
    remote_node_string_free(&message);
    echo(inputs, ret);
  } else if (kit_equals(mode, "fail")) {
    kit_error(err, "asked_to_fail", "echo-c was asked to fail");
    ok = false;
  } else if (kit_equals(mode, "throw")) {
    // An out-of-bounds write: far past the end of linear memory, so it traps.
    *(volatile int *)(uintptr_t)0xFFFFFFF0u = 1;
    echo(inputs, ret);
  } else if (kit_equals(mode, "loop")) {
    for (volatile unsigned long spins = 0;; spins++) {
    }
  } else if (kit_equals(mode, "secret")) {
    remote_node_string_t name = kit_string("api_key");
    remote_node_string_t secret;
    ret->len = 1;
    ret->ptr = malloc(sizeof(named_value_t));
    ret->ptr[0].name = kit_string("value");
    if (node_host_node_host_secret(&name, &secret)) {
      ret->ptr[0].value.tag = NODE_HOST_NODE_TYPES_VALUE_TEXT;
      ret->ptr[0].value.val.text = secret;
    } else {
      ret->ptr[0].value.tag = NODE_HOST_NODE_TYPES_VALUE_NULL;
    }
    remote_node_string_free(&name);
  } else {
    char message[160];
    snprintf(message, sizeof message, "unknown mode %.*s", (int)mode->len, (const char *)mode->ptr);
    kit_error(err, "bad_mode", message);
    ok = false;
  }
  exports_node_host_node_node_list_named_value_free(inputs);
  return ok;
}
