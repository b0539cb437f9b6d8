// Fuzzes the HTTP request path without sockets: the bytes go to Beast's request parser in pieces,
// with the server's limits, as its read loop would; each complete request then meets the framing
// checks and, if it passes, the target parsing of the router. Pipelined requests are read in turn.
#include <algorithm>
#include <array>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/framing.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace beast = boost::beast;
namespace http = beast::http;

// BOOST_ENABLE_ASSERT_HANDLER (CMakeLists.txt) sends every BOOST_ASSERT here. One is a false
// alarm: Beast 1.81 asserts that the final chunk's bytes are at least 5 when the put that
// completes "0\r\n\r\n" brings only "0\r\n\r"; the code after it returns need_more correctly
// (boostorg/beast#2861, fixed in later Beast). The server is built without asserts, so a client
// splitting its last chunk so is harmless there; every other assert still aborts.
namespace boost {
void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file,
                          long line) {
  if (std::string_view(expr) == "n >= 5" && std::string_view(file).ends_with("basic_parser.ipp"))
    return;
  std::fprintf(stderr, "Boost assertion failed: %s %s in %s (%s:%ld)\n", expr, msg ? msg : "",
               function, file, line);
  std::abort();
}
void assertion_failed(char const* expr, char const* function, char const* file, long line) {
  assertion_failed_msg(expr, nullptr, function, file, line);
}
}  // namespace boost

namespace {

constexpr std::uint32_t kHeaderLimitBytes = 8192;  // DESIGN.md: header 8 KiB, body 64 KiB
constexpr std::uint64_t kBodyLimitBytes = 65536;
constexpr int kRequestsMax = 16;  // pipelined requests read from one input

// The client's bytes, handed out in pieces so the parser meets every kind of split point. The
// piece size depends on the input length only, which keeps a run reproducible from its input.
class Wire {
 public:
  explicit Wire(std::string_view bytes) : bytes_(bytes) {
    constexpr std::array<std::size_t, 4> pieces{1, 7, 64, 4096};
    piece_ = pieces[bytes.size() % pieces.size()];
  }
  // Appends the next piece to `buffer`; false once everything was sent (the peer closed).
  bool read_into(beast::flat_buffer& buffer) {
    const auto n = std::min(piece_, bytes_.size() - sent_);
    if (n == 0) return false;
    auto space = buffer.prepare(n);
    std::copy_n(bytes_.data() + sent_, n, static_cast<char*>(space.data()));
    buffer.commit(n);
    sent_ += n;
    return true;
  }

 private:
  std::string_view bytes_;
  std::size_t sent_ = 0;
  std::size_t piece_ = 0;
};

// As http::async_read does: put what is buffered, read more while the parser needs more, and
// tell the parser about the end of the stream.
beast::error_code read_request(Wire& wire, beast::flat_buffer& buffer,
                               http::request_parser<http::string_body>& parser) {
  beast::error_code ec;
  while (!parser.is_done()) {
    const auto used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec && ec != http::error::need_more) return ec;
    if (!ec && used > 0) continue;
    ec = {};
    if (!wire.read_into(buffer)) {
      if (!parser.got_some()) return http::error::end_of_stream;
      parser.put_eof(ec);
      return ec ? ec : beast::error_code(http::error::partial_message);
    }
  }
  return ec;
}

// What routes.cpp does with the target: split into segments and query parameters.
void route(const http::request<http::string_body>& req) {
  const std::string_view target(req.target().data(), req.target().size());
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return;  // answered 400 "malformed request target"
  FUZZ_CHECK(std::string_view(parsed->buffer()) == target);
  std::vector<std::string> path;
  for (auto seg : parsed->segments()) path.push_back(std::string(seg));
  std::vector<std::pair<std::string, std::string>> params;
  for (auto param : parsed->params()) params.emplace_back(param.key, param.value);
  FUZZ_CHECK(params.size() == parsed->params().size());
}

// What the server does with an accepted request before the handler: lowercased header names.
void headers(const http::request<http::string_body>& req) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& field : req) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.emplace_back(std::move(name), std::string(field.value()));
  }
  (void)req.keep_alive();
  (void)req.method_string();
}

void check_accepted(const http::request<http::string_body>& req) {
  FUZZ_CHECK(req.body().size() <= kBodyLimitBytes);
  const auto lengths = req.count(http::field::content_length);
  const auto encodings = req.count(http::field::transfer_encoding);
  FUZZ_CHECK(lengths <= 1 && encodings <= 1 && !(lengths && encodings));
  if (encodings)
    FUZZ_CHECK(req[http::field::transfer_encoding] == "chunked" && req.version() >= 11);
  if (encodings) FUZZ_CHECK(req.chunked());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The server first checks the raw header block (obs-fold) before Beast parses it.
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  auto end = raw.find("\r\n\r\n");
  if (auto problem = emporium::header_block_problem(end == std::string_view::npos ? raw : raw.substr(0, end + 2))) {
    FUZZ_CHECK(!problem->empty());
    return 0;  // 400, connection closed
  }
  Wire wire(raw);
  beast::flat_buffer buffer;
  for (int i = 0; i < kRequestsMax; ++i) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimitBytes);
    parser.body_limit(kBodyLimitBytes);
    if (read_request(wire, buffer, parser)) return 0;  // 400/413/431 or closed: connection ends
    auto req = parser.release();
    if (auto problem = emporium::framing_problem(req)) {
      FUZZ_CHECK(!problem->empty());
      return 0;  // 400, connection closed
    }
    check_accepted(req);
    headers(req);
    route(req);
    if (!req.keep_alive()) return 0;
  }
  return 0;
}
