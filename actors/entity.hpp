// Shared plumbing of entity actors: loading state before the first message, and asking other
// entities (through the node's router in a cluster). Included by actor .cpp files only (it pulls
// in CAF).
#pragma once

#include <chrono>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include <caf/all.hpp>

#include "actors/context.hpp"
#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"
#include "runtime/persistence.hpp"
#include "runtime/timed_request.hpp"

namespace emporium {

class lean_actor;
}  // namespace emporium

template <>
class caf::behavior_type_of<emporium::lean_actor> {
 public:
  using type = caf::behavior;
};

namespace emporium {

// CAF's event_based_actor without group subscriptions: entities join no groups, and the set of
// them is 56 B in every actor. Otherwise the same: sends, requests, become, and the initial
// behavior from the function it was spawned with.
class lean_actor
    : public caf::extend<caf::scheduled_actor, lean_actor>::with<
          caf::mixin::sender, caf::mixin::requester, caf::mixin::behavior_changer>,
      public caf::dynamically_typed_actor_base {
 public:
  using signatures = caf::none_t;  // for spawn's type deduction
  using behavior_type = caf::behavior;

  explicit lean_actor(caf::actor_config& cfg) : extended_base(cfg) {}

  void initialize() override {
    extended_base::initialize();
    setf(is_initialized_flag);
    if (!initial_behavior_fac_) return;
    auto initial = initial_behavior_fac_(this);
    initial_behavior_fac_ = nullptr;
    if (initial) become(std::move(initial));
  }
};

// An entity actor: its state inline (as caf::stateful_actor keeps it, less that class's reference
// to it), and message handlers built once per type and shared by all its actors. A behavior costs
// about 45 B per handler in each actor that holds its own (about 580 B for an item's 13), a
// quarter of an idle actor, and a node holds many idle entities. Shared handlers cannot capture
// `self`: they take it from `current()`, the actor whose messages this thread is running, set
// around `resume` (where CAF runs an event-based actor's handlers). Callbacks made per request
// (`then`, `await`) still capture `self`.
template <class State>
class entity_actor final : public lean_actor {
 public:
  explicit entity_actor(caf::actor_config& cfg) : lean_actor(cfg) { new (&state) State(); }
  ~entity_actor() override {}  // the state went in on_exit

  // CAF calls this at most once, when the actor terminates (not for an actor still queued when
  // the system shuts down, as with caf::stateful_actor); the state's destructor may still use the
  // actor (send, or withdraw what it published).
  void on_exit() final { state.~State(); }

  const char* name() const final { return State::name; }

  // Only valid inside the actor's own handlers.
  static entity_actor* current() {
    CAF_ASSERT(current_ != nullptr);
    return current_;
  }

  caf::resumable::resume_result resume(caf::execution_unit* unit, size_t max_throughput) override {
    auto* outer = std::exchange(current_, this);
    auto result = lean_actor::resume(unit, max_throughput);
    current_ = outer;
    return result;
  }

  union {
    State state;
  };

 private:
  static inline thread_local entity_actor* current_ = nullptr;
};

inline std::chrono::milliseconds ms(std::int64_t value) { return std::chrono::milliseconds(value); }

// Before an entity that stops on its own (a failure: memory may be ahead of storage) answers
// anyone: its registry hears of it as of an idle one (runtime/registry.hpp), so that a call sent
// after one of those answers waits for the next activation, where it would otherwise be routed to
// this one before the registry saw it down, and be bounced with it. An item that found nothing
// stored and was only looked up (nothing else in its mailbox) leaves the same way: the registry's
// stop comes after what it forwarded meanwhile (a create among them is written before it stops),
// and later calls activate afresh.
template <class Self>
void leave_registry(Self* self, const ContextPtr& ctx, caf::atom_value type, const std::string& id) {
  self->send(ctx->registries.at(type), idle_atom::value, id);
}

// Loads an entity's state with `load(session) -> std::optional<T>` and hands it to `done` before
// the actor takes any other message (await). On a database failure the actor stops; the messages
// queued for it are answered with an error and the next one activates it afresh.
template <class T, class Self, class Load, class Done>
void load_then(Self* self, const caf::actor& db, Load load, Done done) {
  auto out = std::make_shared<std::optional<T>>();
  self->request(db, caf::infinite, db_read{[out, load](soci::session& s) { *out = load(s); }})
      .await([out, done](bool) mutable { done(std::move(*out)); },
             [self](caf::error& err) { self->quit(err); });
}

// Sends `xs...` to entity (type, id), through the router in a cluster: `ok(R&)` gets the answer,
// `failed` an error, or sec::request_timeout once the step timeout (settings.step_timeout_ms) is
// up. The timeout is kept by the node's Deadlines, not by CAF's clock (see runtime/deadlines.hpp).
template <class R, class Self, class Ok, class Failed, class... Ts>
void ask(Self* self, const ContextPtr& ctx, caf::atom_value type, const std::string& id, Ok ok,
         Failed failed, Ts&&... xs) {
  request_within<R>(self, *ctx->deadlines, ctx->settings.step_timeout_ms, ctx->route_for(type),
                    std::move(ok), std::move(failed), route_atom::value, type, id,
                    caf::make_message(std::forward<Ts>(xs)...));
}

}  // namespace emporium
