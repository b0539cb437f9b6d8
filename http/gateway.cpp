#include "http/gateway.hpp"

#include <caf/all.hpp>

namespace emporium {

Gateway::Gateway(caf::actor_system& system, int actors) : system_(system) {
  for (int i = 0; i < std::max(1, actors); ++i)
    actors_.push_back(system.spawn([](caf::event_based_actor* self) -> caf::behavior {
      return {[=](gateway_job& job) { job.run(self); }};
    }));
}

// Waits until every gateway actor is gone: their continuations use the API that owns this
// gateway, so none may run once it is destroyed.
Gateway::~Gateway() {
  caf::scoped_actor self{system_};
  for (auto& a : actors_) {
    self->monitor(a);
    self->send_exit(a, caf::exit_reason::user_shutdown);
  }
  std::size_t down = 0;
  self->receive_while([&] { return down < actors_.size(); })([&](caf::down_msg&) { ++down; });
}

void Gateway::run(std::function<void(caf::event_based_actor*)> job) {
  auto& target = actors_[next_++ % actors_.size()];
  caf::anon_send(target, gateway_job{std::move(job)});
}

}  // namespace emporium
