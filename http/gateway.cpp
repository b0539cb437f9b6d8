#include "http/gateway.hpp"

#include <caf/all.hpp>

namespace emporium {

Gateway::Gateway(caf::actor_system& system, int actors) {
  for (int i = 0; i < std::max(1, actors); ++i)
    actors_.push_back(system.spawn([](caf::event_based_actor* self) -> caf::behavior {
      return {[=](gateway_job& job) { job.run(self); }};
    }));
}

Gateway::~Gateway() {
  for (auto& a : actors_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

void Gateway::run(std::function<void(caf::event_based_actor*)> job) {
  auto& target = actors_[next_++ % actors_.size()];
  caf::anon_send(target, gateway_job{std::move(job)});
}

}  // namespace emporium
