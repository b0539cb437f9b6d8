// Bridge from the Asio threads of the edge into CAF: a job runs inside one of a few gateway
// actors, where it can `request(...).then(...)`; its continuations answer through a Respond
// callback that posts back to the connection's io_context. No Asio or CAF thread ever blocks.
#pragma once

#include <atomic>
#include <functional>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>

namespace emporium {

struct gateway_job {
  std::function<void(caf::event_based_actor*)> run;
};

class Gateway {
 public:
  Gateway(caf::actor_system& system, int actors);
  ~Gateway();
  void run(std::function<void(caf::event_based_actor*)> job);

 private:
  caf::actor_system& system_;
  std::vector<caf::actor> actors_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace emporium

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::gateway_job)
