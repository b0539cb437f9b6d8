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
    if (field.name() == http::field::content_length) {
      ++lengths;
      // Only plain digits: a list such as "2, 2" is one field to Beast but two lengths.
      auto v = field.value();
      if (v.empty() || v.find_first_not_of("0123456789") != std::string_view::npos)
        return "malformed Content-Length";
    }
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

std::optional<std::string> header_block_problem(std::string_view block) {
  if (block.find("\r\n ") != std::string_view::npos || block.find("\r\n\t") != std::string_view::npos)
    return "obsolete line folding in a header";
  return std::nullopt;
}

}  // namespace emporium
