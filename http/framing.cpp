// Framing checks on a parsed request. Beast merges chunked trailers into the header fields; its
// own parser already refuses Content-Length or Transfer-Encoding there, other trailers pass.
#include "http/framing.hpp"

#include <algorithm>
#include <string_view>
#include <vector>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>

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
  if (hosts == 0 && req.version() >= 11) return "a Host header is required (HTTP/1.1)";  // RFC 9112 3.2
  if (encodings > 1) return "more than one Transfer-Encoding";
  if (lengths && encodings) return "both Transfer-Encoding and Content-Length";
  // Exactly `chunked` (DESIGN.md): a proxy in front that compares coding names as sent must not
  // frame the body otherwise than this node.
  if (encodings && encoding != "chunked") return "Transfer-Encoding must be chunked";
  if (encodings && req.version() < 11) return "chunked encoding needs HTTP/1.1";
  return std::nullopt;
}

bool unsupported_version(std::string_view block) {
  auto line = block.substr(0, block.find("\r\n"));
  // method SP target SP version: any other shape is the parser's to refuse (400).
  if (line.size() < 9 || std::count(line.begin(), line.end(), ' ') != 2 || line.front() == ' ') return false;
  auto version = line.substr(line.size() - 8);  // "HTTP/" DIGIT "." DIGIT ends the request line
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (version.substr(0, 5) != "HTTP/" || !digit(version[5]) || version[6] != '.' || !digit(version[7]) ||
      line[line.size() - 9] != ' ')
    return false;  // not a version at all: the parser refuses it (400)
  return version != "HTTP/1.0" && version != "HTTP/1.1";
}

std::optional<std::string> header_block_problem(std::string_view block) {
  if (block.find("\r\n ") != std::string_view::npos || block.find("\r\n\t") != std::string_view::npos)
    return "obsolete line folding in a header";
  // A line ended by LF alone would never end the block (a CRLF on its own line does): refused at
  // once rather than left to the header deadline.
  for (auto at = block.find('\n'); at != std::string_view::npos; at = block.find('\n', at + 1))
    if (at == 0 || block[at - 1] != '\r') return "a line of the request ends in LF without CR";
  return std::nullopt;
}

namespace {

// A status whose answer has no body and no Content-Length (RFC 9110 §8.6).
bool bodiless(int status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

// As Beast's fields do: leading and trailing spaces and tabs are not part of a value.
void append_value(std::string& out, std::string_view value) {
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!value.empty() && blank(value.front())) value.remove_prefix(1);
  while (!value.empty() && blank(value.back())) value.remove_suffix(1);
  auto start = out.size();
  out += value;
  std::replace_if(
      out.begin() + static_cast<std::ptrdiff_t>(start), out.end(),
      [](char c) { return c == '\r' || c == '\n'; }, ' ');
}

}  // namespace

std::string render_response(const HttpResponse& res, bool keep_alive, bool head) {
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  fields.reserve(res.headers.size() + 2);
  auto set = [&](std::string_view name, std::string_view value) {
    fields.erase(
        std::remove_if(fields.begin(), fields.end(),
                       [&](const auto& f) { return boost::beast::iequals(f.first, name); }),
        fields.end());
    fields.emplace_back(name, value);
  };
  set("Server", "emporium");
  if (!res.body.empty() || res.status >= 200) set("Content-Type", res.content_type);
  // Connection and Content-Length are the server's own: as Beast's keep_alive(false) and
  // prepare_payload() put them, they come last, in this order.
  auto servers_own = [](std::string_view name) {
    return boost::beast::iequals(name, "Connection") ||
           boost::beast::iequals(name, "Content-Length");
  };
  for (const auto& [name, value] : res.headers)
    if (!servers_own(name)) set(name, value);
  bool with_body = !bodiless(res.status);
  std::string length = std::to_string(res.body.size());
  if (!keep_alive) fields.emplace_back("Connection", "close");
  if (with_body) fields.emplace_back("Content-Length", length);

  auto reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(res.status)));
  std::string out;
  bool body_sent = with_body && !head;
  std::size_t size = 32 + reason.size() + (body_sent ? res.body.size() : 0);
  for (const auto& [name, value] : fields) size += name.size() + value.size() + 4;
  out.reserve(size);
  out += "HTTP/1.1 ";
  out += std::to_string(res.status);
  out += ' ';
  out += std::string_view(reason.data(), reason.size());
  out += "\r\n";
  for (const auto& [name, value] : fields) {
    out += name;
    out += ": ";
    append_value(out, value);
    out += "\r\n";
  }
  out += "\r\n";
  if (body_sent) out += res.body;
  return out;
}

}  // namespace emporium
