// The HTTP/1.1 server on Boost.Beast: async, keep-alive, explicit limits, its own Asio threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "http/message.hpp"

namespace emporium {

struct ServerSettings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::int64_t header_limit_bytes = 8 * 1024;
  std::int64_t body_limit_bytes = 64 * 1024;
  std::int64_t request_timeout_ms = 30'000;  // writing an answer
  std::int64_t header_timeout_ms = 10'000;   // first byte to last header
  std::int64_t body_timeout_ms = 30'000;     // the body
  std::int64_t idle_timeout_ms = 60'000;     // keep-alive connection between requests
  std::int64_t max_connections = 10'000;
  std::int64_t max_in_flight = 4'096;        // requests being handled; past it 503 at once
  int threads = 1;
};

class Server {
 public:
  Server(ServerSettings settings, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting on the server's threads; returns the bound port. Throws on failure.
  std::uint16_t start();
  // Stops accepting, lets the requests under way (from their first byte until their answer is
  // written) finish for up to `drain_ms`, then stops the threads.
  void stop(std::int64_t drain_ms);
  std::int64_t in_flight() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port"; nullopt-like false when malformed.
bool split_host_port(const std::string& address, std::string& host, std::uint16_t& port);

}  // namespace emporium
