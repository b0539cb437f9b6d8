// Framing checks on a parsed request. Beast merges chunked trailers into the header fields; its
// own parser already refuses Content-Length or Transfer-Encoding there, other trailers pass.
#include "http/framing.hpp"

#include <boost/beast/http/field.hpp>
#include <string_view>

namespace emporium {

namespace http = boost::beast::http;

std::optional<std::string> framing_problem(const http::request<http::string_body>& req) {
  int lengths = 0;
  int encodings = 0;
  int hosts = 0;  // a second Host (also one smuggled in as a chunked trailer) is refused
  std::string_view encoding;
  for (const auto& field : req) {
    if (field.name() == http::field::content_length) ++lengths;
    if (field.name() == http::field::host) ++hosts;
    if (field.name() == http::field::transfer_encoding) {
      ++encodings;
      encoding = field.value();
    }
  }
  if (lengths > 1) return "more than one Content-Length";
  if (hosts > 1) return "more than one Host";
  if (encodings > 1) return "more than one Transfer-Encoding";
  if (lengths && encodings) return "both Transfer-Encoding and Content-Length";
  if (encodings && encoding != "chunked") return "Transfer-Encoding must be chunked";
  if (encodings && req.version() < 11) return "chunked encoding needs HTTP/1.1";
  return std::nullopt;
}

}  // namespace emporium
