// The edge's own request/response types: Beast stays inside the server (server.cpp, framing.cpp),
// so the routing and domain mapping compile without it.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/codec.hpp"

namespace emporium {

struct HttpRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::string client;  // peer address, the principal when no token is given

  const std::string* header(std::string_view name) const;
  int header_count(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

using Respond = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest&&, Respond)>;

// RFC 9457 problem+json.
HttpResponse problem(int status, std::string_view title, std::string_view detail,
                     const std::vector<FieldError>& errors = {});

}  // namespace emporium
