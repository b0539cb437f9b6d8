// The HTTP server's thread layout: each connection is served by one of the HTTP threads, given in
// turn, so its requests never move between threads (and answers never wake another one).
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace emporium
