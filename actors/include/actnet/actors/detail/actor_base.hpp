// actor_base: what every actor of a loop is, a connection or a service actor: a class the stall
// detector can name (typeid) and the loop can free after its last handler. No state of its own.
#pragma once

namespace actnet::detail {

class actor_host;

class actor_base {
 public:
  actor_base() = default;
  actor_base(const actor_base&) = delete;
  actor_base& operator=(const actor_base&) = delete;
  virtual ~actor_base() = default;
};

}  // namespace actnet::detail
