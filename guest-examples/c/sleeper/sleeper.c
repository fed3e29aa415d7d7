// Adversarial node in C: sleeps for an hour, or the given milliseconds. A
// preview 1 sleep (wasi-libc's nanosleep, poll_oneoff on a clock) reaches
// the host through the componentize adapter, another way into the clock
// than Rust's; only the host can end this wait at the event's deadline.

#include <time.h>

#include "node_kit.h"

void exports_node_host_node_node_info(exports_node_host_node_node_node_info_t *ret) {
  port_t inputs[] = {kit_port("millis", "How long to sleep; missing means an hour", false)};
  port_t outputs[] = {kit_port("slept", "The milliseconds asked for", true)};
  ret->name = kit_string("sleeper-c");
  ret->version = kit_string("0.1.0");
  ret->description = kit_string("Sleeps in the host: an hour, or the given milliseconds");
  ret->inputs = kit_ports(inputs, 1);
  ret->outputs = kit_ports(outputs, 1);
  ret->secrets = (remote_node_list_string_t){.ptr = NULL, .len = 0};
}

bool exports_node_host_node_node_execute(exports_node_host_node_node_list_named_value_t *inputs,
                                         exports_node_host_node_node_list_named_value_t *ret,
                                         exports_node_host_node_node_node_error_t *err) {
  (void)err;
  named_value_t *input = kit_input(inputs, "millis");
  int64_t millis = 3600 * 1000;
  if (input && input->value.tag == NODE_HOST_NODE_TYPES_VALUE_INTEGER) {
    millis = input->value.val.integer < 0 ? 0 : input->value.val.integer;
  }
  struct timespec wait = {.tv_sec = millis / 1000, .tv_nsec = (millis % 1000) * 1000000};
  nanosleep(&wait, NULL);
  ret->len = 1;
  ret->ptr = malloc(sizeof(named_value_t));
  ret->ptr[0].name = kit_string("slept");
  ret->ptr[0].value.tag = NODE_HOST_NODE_TYPES_VALUE_INTEGER;
  ret->ptr[0].value.val.integer = millis;
  exports_node_host_node_node_list_named_value_free(inputs);
  return true;
}
