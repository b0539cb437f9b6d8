// Shared plumbing of entity actors: loading state before the first message, and asking other
// entities through the node's router. Included by actor .cpp files only (it pulls in CAF).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <caf/all.hpp>

#include "actors/context.hpp"
#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"
#include "runtime/persistence.hpp"

namespace emporium {

inline std::chrono::milliseconds ms(std::int64_t value) { return std::chrono::milliseconds(value); }

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

// Sends `xs...` to entity (type, id) through the router.
template <class Self, class... Ts>
auto ask(Self* self, const ContextPtr& ctx, caf::atom_value type, const std::string& id,
         Ts&&... xs) {
  return self->request(ctx->router, ms(ctx->settings.step_timeout_ms), route_atom::value, type, id,
                       caf::make_message(std::forward<Ts>(xs)...));
}

}  // namespace emporium
