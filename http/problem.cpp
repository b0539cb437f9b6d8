// problem+json bodies and the request header lookups.
#include "http/message.hpp"

#include <boost/json.hpp>

namespace emporium {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string slug(std::string_view title) {
  std::string out;
  for (char c : title) out += (c == ' ') ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return &v;
  return nullptr;
}

int HttpRequest::header_count(std::string_view name) const {
  int n = 0;
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) ++n;
  return n;
}

HttpResponse problem(int status, std::string_view title, std::string_view detail,
                     const std::vector<FieldError>& errors) {
  boost::json::object body{{"type", "urn:emporium:problem:" + slug(title)},
                           {"title", title},
                           {"status", status},
                           {"detail", detail}};
  if (!errors.empty()) {
    boost::json::array list;
    for (const auto& e : errors) list.push_back({{"field", e.field}, {"message", e.message}});
    body["errors"] = std::move(list);
  }
  return HttpResponse{status, "application/problem+json", {}, boost::json::serialize(body)};
}

}  // namespace emporium
