// Open-loop HTTP load generator: sends requests at a fixed arrival rate over a fixed pool of
// keep-alive connections and measures each latency from the request's *intended* send time, so
// a slow server cannot hide its stalls by slowing the generator down (no coordinated omission).
// One thread, Boost.Asio; HTTP/1.1 answers read with Beast's parser.
//
//   emporium-openloop --host 127.0.0.1 --port 8080 --rate 2000 --duration-s 10 --connections 64
//                     [--method POST] --path '/v1/inventory/sku-{r}' [--body '...{r}...']
//                     [--header 'Authorization: Bearer ...'] [--range 1000]
//
// Every `{r}` in path and body is replaced by its own uniform random integer in [0, range).
// Prints one line: key=value pairs (requests, throughput, p50_ms, p99_ms, p999_ms, max_ms, errors).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string method = "GET";
  std::string path = "/";
  std::string body;
  std::vector<std::string> headers;
  double rate_per_s = 1000;
  double duration_s = 10;
  int connections = 64;
  std::int64_t range = 1000;
  double grace_s = 5;  // after the last intended send, how long answers are still awaited
};

struct Stats {
  std::vector<std::uint32_t> latencies_us;  // completed requests, from intended send time
  // With OPENLOOP_TIMELINE=FILE: each completed request's intended send time (µs from the start)
  // and latency, to see when the slow ones happened.
  std::vector<std::pair<std::int64_t, std::uint32_t>> timeline;
  std::int64_t non_2xx = 0;
  std::int64_t socket_errors = 0;
  std::int64_t unfinished = 0;  // intended but not answered by the end of the grace period
};

class Generator;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, Generator& gen) : socket_(io), gen_(gen) {}
  void start(const tcp::resolver::results_type& endpoints);
  bool idle() const { return connected_ && !busy_; }
  void send(Clock::time_point intended, std::string request);

 private:
  void on_read(beast::error_code ec);
  void fail();

  tcp::socket socket_;
  Generator& gen_;
  tcp::resolver::results_type endpoints_;
  beast::flat_buffer buffer_;
  std::unique_ptr<http::response_parser<http::string_body>> parser_;
  std::string request_;
  Clock::time_point intended_;
  bool connected_ = false;
  bool busy_ = false;
};

class Generator {
 public:
  Generator(asio::io_context& io, Options opts)
      : io_(io), opts_(std::move(opts)), timer_(io), rng_(12345), pick_(0, opts_.range - 1) {}

  void run() {
    tcp::resolver resolver(io_);
    auto endpoints = resolver.resolve(opts_.host, opts_.port);
    for (int i = 0; i < opts_.connections; ++i) {
      auto c = std::make_shared<Connection>(io_, *this);
      connections_.push_back(c);
      c->start(endpoints);
    }
    start_ = Clock::now() + std::chrono::milliseconds(200);  // let the connections open
    interval_ = std::chrono::duration<double>(1.0 / opts_.rate_per_s);
    total_ = static_cast<std::int64_t>(opts_.rate_per_s * opts_.duration_s);
    origin_ = Clock::now();
    timeline_ = std::getenv("OPENLOOP_TIMELINE") != nullptr;
    tick();
    io_.run();
  }

  // A connection is free again: it takes the oldest request waiting for one.
  void on_idle(Connection& c) {
    if (!backlog_.empty()) {
      auto intended = backlog_.front();
      backlog_.pop_front();
      c.send(intended, make_request());
    }
    maybe_finish();
  }
  void completed(Clock::time_point intended, unsigned status) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - intended);
    stats_.latencies_us.push_back(static_cast<std::uint32_t>(us.count()));
    if (timeline_)
      stats_.timeline.emplace_back(
          std::chrono::duration_cast<std::chrono::microseconds>(intended - origin_).count(),
          static_cast<std::uint32_t>(us.count()));
    if (status < 200 || status > 299) ++stats_.non_2xx;
    ++done_;
  }
  void socket_error(bool lost_request) {
    ++stats_.socket_errors;
    if (lost_request) ++done_;
  }
  const tcp::resolver::results_type& endpoints() const { return endpoints_; }
  Stats& stats() { return stats_; }
  std::int64_t sent() const { return sent_; }
  double elapsed_s() const { return std::chrono::duration<double>(end_ - start_).count(); }

 private:
  std::string make_request() {
    auto fill = [this](const std::string& tmpl) {
      std::string out;
      out.reserve(tmpl.size() + 16);
      for (size_t i = 0; i < tmpl.size(); ++i) {
        if (tmpl.compare(i, 3, "{r}") == 0) {
          out += std::to_string(pick_(rng_));
          i += 2;
        } else {
          out += tmpl[i];
        }
      }
      return out;
    };
    std::string body = fill(opts_.body);
    std::string req = opts_.method + " " + fill(opts_.path) + " HTTP/1.1\r\nHost: " + opts_.host +
                      "\r\n";
    for (const auto& h : opts_.headers) req += h + "\r\n";
    if (!body.empty() || opts_.method == "POST" || opts_.method == "PUT")
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\n";
    req += "\r\n" + body;
    return req;
  }

  // Sends every request whose intended time has come, then sleeps until the next one.
  void tick() {
    auto now = Clock::now();
    while (sent_ < total_) {
      auto intended = start_ + std::chrono::duration_cast<Clock::duration>(interval_ * sent_);
      if (intended > now) break;
      ++sent_;
      Connection* free = nullptr;
      for (auto& c : connections_)
        if (c->idle()) {
          free = c.get();
          break;
        }
      if (free && backlog_.empty()) free->send(intended, make_request());
      else backlog_.push_back(intended);
    }
    if (sent_ < total_) {
      timer_.expires_at(start_ + std::chrono::duration_cast<Clock::duration>(interval_ * sent_));
      timer_.async_wait([this](beast::error_code) { tick(); });
      return;
    }
    // All intended: wait for the answers, up to the grace period.
    timer_.expires_after(std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(opts_.grace_s)));
    timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      stop();
    });
    maybe_finish();
  }

  void maybe_finish() {
    if (sent_ == total_ && done_ >= total_ && !stopped_) {
      timer_.cancel();
      stop();
    }
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    end_ = Clock::now();
    stats_.unfinished = total_ - done_;
    io_.stop();
  }

  asio::io_context& io_;
  Options opts_;
  asio::steady_timer timer_;
  std::mt19937_64 rng_;
  std::uniform_int_distribution<std::int64_t> pick_;
  tcp::resolver::results_type endpoints_;
  std::vector<std::shared_ptr<Connection>> connections_;
  std::deque<Clock::time_point> backlog_;
  Clock::time_point start_, end_, origin_;
  bool timeline_ = false;
  std::chrono::duration<double> interval_{};
  std::int64_t total_ = 0, sent_ = 0, done_ = 0;
  bool stopped_ = false;
  Stats stats_;
};

void Connection::start(const tcp::resolver::results_type& endpoints) {
  endpoints_ = endpoints;
  asio::async_connect(socket_, endpoints_,
                      [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                        if (ec) return self->fail();
                        self->socket_.set_option(tcp::no_delay(true));
                        self->connected_ = true;
                        self->gen_.on_idle(*self);
                      });
}

void Connection::send(Clock::time_point intended, std::string request) {
  busy_ = true;
  intended_ = intended;
  request_ = std::move(request);
  asio::async_write(socket_, asio::buffer(request_),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (ec) return self->fail();
                      self->parser_ = std::make_unique<http::response_parser<http::string_body>>();
                      self->parser_->body_limit(1 << 20);
                      http::async_read(self->socket_, self->buffer_, *self->parser_,
                                       [self](beast::error_code ec2, std::size_t) {
                                         self->on_read(ec2);
                                       });
                    });
}

void Connection::on_read(beast::error_code ec) {
  if (ec) return fail();
  const auto& res = parser_->get();
  busy_ = false;
  gen_.completed(intended_, res.result_int());
  if (!res.keep_alive()) {
    beast::error_code ignored;
    socket_.close(ignored);
    connected_ = false;
    buffer_.clear();
    socket_ = tcp::socket(socket_.get_executor());
    start(endpoints_);
    return;
  }
  gen_.on_idle(*this);
}

void Connection::fail() {
  gen_.socket_error(busy_);
  busy_ = false;
  connected_ = false;
  beast::error_code ignored;
  socket_.close(ignored);
  buffer_.clear();
  socket_ = tcp::socket(socket_.get_executor());
  // Reconnect after a pause, so a refused port does not spin.
  auto timer = std::make_shared<asio::steady_timer>(socket_.get_executor());
  timer->expires_after(std::chrono::milliseconds(100));
  timer->async_wait([self = shared_from_this(), timer](beast::error_code) {
    self->start(self->endpoints_);
  });
}

double percentile_ms(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto idx = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(idx, sorted.size() - 1)] / 1000.0;
}

[[noreturn]] void usage(const char* why) {
  std::cerr << "emporium-openloop: " << why
            << "\nusage: emporium-openloop --host H --port P --rate R --duration-s S "
               "--connections C [--method M] --path P [--body B] [--header H]... [--range N]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    if (a == "--host") o.host = v;
    else if (a == "--port") o.port = v;
    else if (a == "--method") o.method = v;
    else if (a == "--path") o.path = v;
    else if (a == "--body") o.body = v;
    else if (a == "--header") o.headers.push_back(v);
    else if (a == "--rate") o.rate_per_s = std::stod(v);
    else if (a == "--duration-s") o.duration_s = std::stod(v);
    else if (a == "--connections") o.connections = std::stoi(v);
    else if (a == "--range") o.range = std::stoll(v);
    else if (a == "--grace-s") o.grace_s = std::stod(v);
    else usage(("unknown option " + a).c_str());
  }
  if (o.rate_per_s <= 0 || o.duration_s <= 0 || o.connections < 1 || o.range < 1)
    usage("rate, duration, connections and range must be positive");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts = parse(argc, argv);
  asio::io_context io;
  Generator gen(io, opts);
  gen.run();
  auto& st = gen.stats();
  if (const char* path = std::getenv("OPENLOOP_TIMELINE")) {
    if (std::FILE* out = std::fopen(path, "w")) {
      for (auto& [at_us, latency_us] : st.timeline)
        std::fprintf(out, "%.3f %.3f\n", at_us / 1000.0, latency_us / 1000.0);
      std::fclose(out);
    }
  }
  std::sort(st.latencies_us.begin(), st.latencies_us.end());
  auto completed = static_cast<std::int64_t>(st.latencies_us.size());
  std::printf(
      "requests=%lld completed=%lld throughput=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f "
      "max_ms=%.3f non_2xx=%lld socket_errors=%lld unfinished=%lld errors=%lld\n",
      static_cast<long long>(gen.sent()), static_cast<long long>(completed),
      static_cast<double>(completed) / std::max(gen.elapsed_s(), 1e-9),
      percentile_ms(st.latencies_us, 50), percentile_ms(st.latencies_us, 99),
      percentile_ms(st.latencies_us, 99.9), percentile_ms(st.latencies_us, 100),
      static_cast<long long>(st.non_2xx), static_cast<long long>(st.socket_errors),
      static_cast<long long>(st.unfinished),
      static_cast<long long>(st.non_2xx + st.socket_errors + st.unfinished));
  return 0;
}
