// A request whose timeout is kept by Deadlines (runtime/deadlines.hpp) instead of CAF's clock.
#pragma once

#include <cstdint>
#include <utility>

#include <caf/error.hpp>
#include <caf/timespan.hpp>

#include "runtime/deadlines.hpp"

namespace emporium {

// Sends `xs...` to `dest` and hands the answer, of type R, to `ok`; an error, or
// sec::request_timeout after `timeout_ms` (late by at most the tick of `deadlines`), to `failed`.
// As with CAF's own request timeouts, the answer that comes after the timeout is dropped.
// `deadlines` must outlive the requester (it is the node's, in the context the actor holds).
template <class R, class Self, class Dest, class Ok, class Failed, class... Ts>
void request_within(Self* self, Deadlines& deadlines, std::int64_t timeout_ms, const Dest& dest,
                    Ok ok, Failed failed, Ts&&... xs) {
  auto handle = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
  auto token = deadlines.arm(self, handle.id().integer_value(), timeout_ms);
  auto* d = &deadlines;
  handle.then(
      [d, token, ok = std::move(ok)](R& answer) mutable {
        d->disarm(token);
        ok(answer);
      },
      [d, token, failed = std::move(failed)](caf::error& err) mutable {
        d->disarm(token);
        failed(err);
      });
}

}  // namespace emporium
