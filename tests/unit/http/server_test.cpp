// The HTTP server's thread layout: each connection is served by one of the HTTP threads, given in
// turn, so its requests never move between threads (and answers never wake another one).
#include <sys/socket.h>

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "http/framing.hpp"
#include "http/server.hpp"

namespace emporium {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Sends `n` keep-alive GETs for `target` on `socket`, one after another, and reads each answer.
void get_n(tcp::socket& socket, const std::string& target, int n) {
  net::streambuf in;
  for (int i = 0; i < n; ++i) {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
    net::write(socket, net::buffer(req));
    net::read_until(socket, in, "\r\n\r\n");
    std::istream head(&in);
    std::string line;
    std::size_t length = 0;
    while (std::getline(head, line) && line != "\r")
      if (line.rfind("Content-Length: ", 0) == 0) length = std::stoul(line.substr(16));
    if (in.size() < length) net::read(socket, in, net::transfer_exactly(length - in.size()));
    in.consume(length);
  }
}

// Three connections on two threads: the first and the third share a thread, the second has the
// other, and each keeps its thread for all its requests. The third's answers come from threads of
// their own (as answers from actors do) and are written on its thread all the same.
TEST(Server, EachConnectionStaysOnOneThreadAndConnectionsTakeTheThreadsInTurn) {
  std::mutex mutex;
  std::map<std::string, std::set<std::thread::id>> threads_of;  // by request target
  std::vector<std::thread> answerers;
  ServerSettings settings;
  settings.port = 0;
  settings.threads = 2;
  Server server(settings, [&](HttpRequest&& req, Respond respond) {
    std::lock_guard lock(mutex);
    threads_of[req.target].insert(std::this_thread::get_id());
    if (req.target != "/c") return respond(HttpResponse{200, "application/json", {}, "{}"});
    answerers.emplace_back([respond] { respond(HttpResponse{200, "application/json", {}, "{\"late\":1}"}); });
  });
  auto port = server.start();
  net::io_context ioc;
  tcp::socket a(ioc), b(ioc), c(ioc);
  for (auto* s : {&a, &b, &c}) s->connect({net::ip::make_address("127.0.0.1"), port});
  for (int round = 0; round < 5; ++round) {
    get_n(a, "/a", 4);
    get_n(b, "/b", 4);
    get_n(c, "/c", 2);
  }
  server.stop(1000);
  for (auto& t : answerers) t.join();
  std::lock_guard lock(mutex);
  ASSERT_EQ(threads_of["/a"].size(), 1u);
  ASSERT_EQ(threads_of["/b"].size(), 1u);
  ASSERT_EQ(threads_of["/c"].size(), 1u);
  EXPECT_NE(*threads_of["/a"].begin(), *threads_of["/b"].begin());
  EXPECT_EQ(*threads_of["/a"].begin(), *threads_of["/c"].begin());
  EXPECT_EQ(answerers.size(), 10u);
}

// The answer as Beast's serializer wrote it before render_response took its place.
std::string beast_bytes(const HttpResponse& res, bool keep_alive) {
  namespace http = boost::beast::http;
  http::response<http::string_body> out;
  out.version(11);
  out.result(static_cast<unsigned>(res.status));
  out.set(http::field::server, "emporium");
  if (!res.body.empty() || res.status >= 200) out.set(http::field::content_type, res.content_type);
  for (const auto& [k, v] : res.headers) out.set(k, v);
  out.body() = res.body;
  out.keep_alive(keep_alive);
  out.prepare_payload();
  std::ostringstream bytes;
  bytes << out;
  return bytes.str();
}

TEST(RenderResponse, WritesTheBytesBeastsSerializerWrote) {
  std::vector<HttpResponse> answers = {
      {200, "application/json", {}, "{\"sku\":\"a\",\"available\":3}"},
      {201, "application/json", {{"Idempotent-Replayed", "true"}}, "{}"},
      {202,
       "application/json",
       {{"RateLimit-Policy", "100;w=1"}, {"RateLimit", "r=99, t=1"}},
       "{}"},
      {400, "application/problem+json", {}, std::string(5000, 'x')},
      {404, "application/problem+json", {}, "{\"status\":404}"},
      {405, "application/problem+json", {{"Allow", "GET, PUT"}}, "{}"},
      {429, "application/problem+json", {{"Retry-After", "1"}, {"retry-after", "2"}}, "{}"},
      {503, "application/problem+json", {{"Retry-After", "1"}, {"Server", "other"}}, "{}"},
      {200, "text/plain; version=0.0.4", {{"content-type", "text/html"}}, "# HELP\n"},
      {200, "application/json", {}, ""},
      {599, "application/json", {}, "{}"},
      {200, "application/json", {{"Allow", " \tGET, PUT \t "}, {"Retry-After", "  "}}, "{}"},
  };
  for (int status : {401, 402, 403, 408, 409, 413, 415, 422, 431, 500, 501, 505})
    answers.push_back({status, "application/problem+json", {}, "{}"});
  for (const auto& res : answers)
    for (bool keep_alive : {true, false})
      EXPECT_EQ(render_response(res, keep_alive), beast_bytes(res, keep_alive))
          << res.status << (keep_alive ? " keep-alive" : " close");
}

// Where Beast 1.81 differs: it sends `Content-Length: 0` with a 204, which RFC 9110 §8.6 forbids.
TEST(RenderResponse, NoContentHasNoLengthAndNoBody) {
  auto bytes = render_response({204, "application/json", {}, "ignored"}, true);
  EXPECT_EQ(
      bytes,
      "HTTP/1.1 204 No Content\r\nServer: emporium\r\nContent-Type: application/json\r\n\r\n");
  bytes = render_response({304, "application/json", {}, ""}, false);
  EXPECT_EQ(bytes,
            "HTTP/1.1 304 Not Modified\r\nServer: emporium\r\nContent-Type: application/json\r\n"
            "Connection: close\r\n\r\n");
}

// The answer to a HEAD has the GET answer's fields, its length included, and no body.
TEST(RenderResponse, AnAnswerToHeadHasTheLengthAndNoBody) {
  HttpResponse res{200, "application/json", {{"Retry-After", "1"}}, "{\"status\":\"ok\"}"};
  auto get = render_response(res, true);
  auto head = render_response(res, true, true);
  EXPECT_EQ(head + res.body, get);
  EXPECT_NE(head.find("Content-Length: 15\r\n\r\n"), std::string::npos) << head;
}

// On one kept-alive connection, the answer to a HEAD ends at its fields: the next answer is read
// where it begins.
TEST(Server, AHeadIsAnsweredWithoutABodyAndTheConnectionGoesOn) {
  ServerSettings settings;
  settings.port = 0;
  Server server(settings, [](HttpRequest&& req, Respond respond) {
    respond(HttpResponse{200, "application/json", {}, "{\"method\":\"" + req.method + "\"}"});
  });
  auto port = server.start();
  net::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect({net::ip::make_address("127.0.0.1"), port});
  std::string both = "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n";
  net::write(socket, net::buffer(both));
  std::string get_body = "{\"method\":\"GET\"}";
  std::string in;
  char chunk[4096];
  auto ends_with = [](const std::string& text, const std::string& tail) {
    return text.size() >= tail.size() &&
           text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
  };
  while (!ends_with(in, get_body) && in.size() < (1u << 16)) {
    auto n = socket.read_some(net::buffer(chunk));
    in.append(chunk, n);
  }
  server.stop(1000);
  auto second = in.find("HTTP/1.1 200 OK", 1);
  ASSERT_NE(second, std::string::npos) << in;
  auto first = in.substr(0, second);
  EXPECT_NE(first.find("Content-Length: 17\r\n"), std::string::npos) << first;  // {"method":"HEAD"}
  EXPECT_EQ(first.substr(first.size() - 4), "\r\n\r\n") << first;           // fields only
  EXPECT_EQ(in.substr(in.size() - get_body.size()), get_body);
}

// A stop lets what is under way finish: an answer handed over but not yet written (a client slow
// to read it), and a request whose bytes have come but not all of them. Neither is cut off. A
// request begun after the stop began is answered 503 without being handled.
TEST(Server, AStopWaitsForAnAnswerBeingWrittenAndARequestBeingRead) {
  ServerSettings settings;
  settings.port = 0;
  const std::string big(8 << 20, 'x');  // more than the sockets' buffers hold
  Server server(settings, [&](HttpRequest&& req, Respond respond) {
    respond(HttpResponse{200, "text/plain", {}, req.target == "/big" ? big : std::string("small")});
  });
  auto port = server.start();
  net::io_context ioc;
  tcp::socket slow_reader(ioc), slow_sender(ioc), late(ioc);
  slow_reader.connect({net::ip::make_address("127.0.0.1"), port});
  slow_sender.connect({net::ip::make_address("127.0.0.1"), port});
  late.connect({net::ip::make_address("127.0.0.1"), port});  // idle until the stop has begun
  for (auto* socket : {&slow_reader, &slow_sender, &late}) {  // a cut-off answer fails, never hangs
    timeval five_seconds{5, 0};
    ::setsockopt(socket->native_handle(), SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof five_seconds);
  }
  net::write(slow_reader, net::buffer(std::string("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")));
  net::write(slow_sender, net::buffer(std::string("GET /small HTTP/1.1\r\nHo")));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // both reached the server
  std::thread stopper([&] { server.stop(10'000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the stop is waiting by now
  // A request begun after the stop began is not handled: 503, to be sent elsewhere.
  net::write(late, net::buffer(std::string("GET /small HTTP/1.1\r\nHost: x\r\n\r\n")));
  // Until the connection ends, or `body` ends what came (the server's idle connections stay
  // open until the Server is destroyed).
  auto read_answer = [](tcp::socket& socket, const std::string& body) {
    std::string in;
    std::vector<char> chunk(1 << 16);
    while (in.size() < body.size() || in.compare(in.size() - body.size(), body.size(), body) != 0) {
      auto n = ::recv(socket.native_handle(), chunk.data(), chunk.size(), 0);  // SO_RCVTIMEO applies
      if (n <= 0) break;
      in.append(chunk.data(), static_cast<std::size_t>(n));
    }
    return in;
  };
  auto refused = read_answer(late, "}");  // the problem's JSON body ends it
  net::write(slow_sender, net::buffer(std::string("st: x\r\n\r\n")));
  auto small = read_answer(slow_sender, "small");
  auto large = read_answer(slow_reader, big);
  stopper.join();
  EXPECT_EQ(refused.rfind("HTTP/1.1 503 ", 0), 0u) << refused;
  EXPECT_NE(refused.find("Retry-After: 1\r\n"), std::string::npos) << refused;
  EXPECT_EQ(small.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << small;
  EXPECT_NE(small.find("Connection: close\r\n"), std::string::npos) << small;  // stopping: not kept
  ASSERT_GT(small.size(), 5u);
  EXPECT_EQ(small.substr(small.size() - 5), "small");
  ASSERT_GT(large.size(), big.size()) << "the answer was cut off";
  EXPECT_TRUE(large.compare(large.size() - big.size(), big.size(), big) == 0);
}

// Connection and Content-Length are the server's own: an answer's own are dropped.
TEST(RenderResponse, ConnectionAndLengthAreTheServersOwn) {
  HttpResponse res{
      200, "application/json", {{"Connection", "upgrade"}, {"content-length", "99"}}, "{}"};
  EXPECT_EQ(render_response(res, false),
            "HTTP/1.1 200 OK\r\nServer: emporium\r\nContent-Type: application/json\r\n"
            "Connection: close\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(render_response(res, true),
            "HTTP/1.1 200 OK\r\nServer: emporium\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\n\r\n{}");
}

TEST(RenderResponse, AValueCannotStartAFieldOfItsOwn) {
  HttpResponse res{200, "application/json", {{"Retry-After", "1\r\nSet-Cookie: a=b\n\rx"}}, "{}"};
  auto bytes = render_response(res, true);
  EXPECT_NE(bytes.find("Retry-After: 1  Set-Cookie: a=b  x\r\n"), std::string::npos) << bytes;
  EXPECT_EQ(bytes.find("\r\nSet-Cookie"), std::string::npos) << bytes;
}

// --- framing ----------------------------------------------------------------------------------

TEST(Framing, UnsupportedVersionIsTheRequestLinesWellFormedVersionOtherThan10And11) {
  EXPECT_FALSE(unsupported_version("GET / HTTP/1.1\r\nHost: a\r\n"));
  EXPECT_FALSE(unsupported_version("GET / HTTP/1.0\r\n"));
  EXPECT_FALSE(unsupported_version("GET / HTTP/1.1"));  // as much as has come
  EXPECT_TRUE(unsupported_version("GET / HTTP/2.0\r\nHost: a\r\n"));
  EXPECT_TRUE(unsupported_version("GET / HTTP/0.9\r\n"));
  EXPECT_TRUE(unsupported_version("GET /x HTTP/1.2\r\n"));
  for (const char* malformed : {"GET / HTTP/11\r\n", "GET / http/2.0\r\n", "GET / HTTP/2.x\r\n",
                                "GET /HTTP/2.0\r\n", "", "HTTP/2.0\r\n", "GET HTTP/2.0\r\n",
                                "GET / x HTTP/2.0\r\n", " / HTTP/2.0\r\n", "GET  / HTTP/2.0\r\n"})
    EXPECT_FALSE(unsupported_version(malformed)) << malformed;  // the parser's 400
}

TEST(Framing, ALineEndedByLfAloneIsRefused) {
  EXPECT_FALSE(header_block_problem("GET / HTTP/1.1\r\nHost: a\r\n"));
  EXPECT_FALSE(header_block_problem("GET / HTTP/1.1\r"));  // its LF has yet to come
  for (const char* bad : {"GET / HTTP/1.1\nHost: a\n", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n", "\n",
                          "GET / HTTP/1.1\r\nHost: a\r\n\n"}) {
    auto why = header_block_problem(bad);
    ASSERT_TRUE(why) << bad;
    EXPECT_NE(why->find("LF"), std::string::npos);
  }
}

namespace http = boost::beast::http;

http::request<http::string_body> parsed(std::string_view raw) {
  http::request_parser<http::string_body> parser;
  boost::beast::error_code ec;
  parser.put(net::buffer(raw.data(), raw.size()), ec);
  EXPECT_FALSE(ec) << raw;
  return parser.release();
}

// A Host in HTTP/1.1 (RFC 9112 3.2); a Transfer-Encoding of exactly `chunked` (DESIGN.md: a proxy
// in front that compares as sent must frame the body as this node does).
TEST(Framing, HostIsRequiredInHttp11AndChunkedExactly) {
  EXPECT_FALSE(framing_problem(parsed("GET / HTTP/1.1\r\nHost: a\r\n\r\n")));
  EXPECT_FALSE(framing_problem(parsed("GET / HTTP/1.0\r\n\r\n")));
  EXPECT_TRUE(framing_problem(parsed("GET / HTTP/1.1\r\n\r\n")));
  EXPECT_FALSE(framing_problem(parsed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")));
  EXPECT_TRUE(framing_problem(parsed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")));
  EXPECT_TRUE(framing_problem(parsed("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")));
}

}  // namespace
}  // namespace emporium
