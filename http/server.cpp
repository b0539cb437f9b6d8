// One session object per connection (as Beast's advanced_server): read a request with the header
// and body limits set before reading, refuse framing that Beast 1.81 lets through, hand the
// request to the handler, write the answer on the connection's io_context (one per HTTP thread),
// then read the next one.
// Requests on one connection are answered in order because the next is read only after the write.
#include "http/server.hpp"

#include "http/framing.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace emporium {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

bool split_host_port(const std::string& address, std::string& host, std::uint16_t& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    auto value = std::stoul(address.substr(colon + 1));
    if (value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
  } catch (...) {
    return false;
  }
  return !host.empty();
}

namespace {

struct Shared {
  ServerSettings settings;
  Handler handler;
  std::atomic<std::int64_t> connections{0};
  std::atomic<std::int64_t> in_flight{0};  // requests being handled (the load shedding's count)
  // Connections with a request under way, from its first byte until its answer is written: what a
  // stop drains, so that no request read is dropped unanswered, nor any answer cut off.
  std::atomic<std::int64_t> busy{0};
  std::atomic<bool> stopping{false};
};

HttpResponse bad_framing(std::string_view detail) { return problem(400, "Bad request", detail); }

class Session : public std::enable_shared_from_this<Session> {
 public:
  // The connection's io_context: its handlers run there, one at a time.
  net::any_io_executor executor() { return stream_.get_executor(); }

  Session(tcp::socket&& socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)),
        deadline_(stream_.get_executor()),
        buffer_(static_cast<std::size_t>(shared->settings.header_limit_bytes +
                                         shared->settings.body_limit_bytes + 16 * 1024)),
        shared_(std::move(shared)) {
    shared_->connections += 1;
  }
  ~Session() {
    set_busy(false);
    shared_->connections -= 1;
  }

  void start() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::read, shared_from_this()));
  }

  void refuse(HttpResponse res) {
    close_after_write_ = true;
    write(std::move(res));
  }

 private:
  // Between requests the idle timeout applies; from the first byte of a request on, its headers
  // must arrive within the header deadline and then its body within the body deadline, so a slow
  // client is cut off with 408 and does not hold the connection.
  void read() {
    head_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->settings.header_limit_bytes));
    parser_->body_limit(static_cast<std::uint64_t>(shared_->settings.body_limit_bytes));
    if (buffer_.size() > 0) {
      set_busy(true);
      arm_deadline(shared_->settings.header_timeout_ms);
      return read_header_bytes();
    }
    stream_.expires_after(std::chrono::milliseconds(shared_->settings.idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(read_chunk()),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->close();  // idle, closed or reset
                              self->set_busy(true);
                              self->buffer_.commit(n);
                              self->arm_deadline(self->shared_->settings.header_timeout_ms);
                              self->read_header_bytes();
                            });
  }

  // Gathers the whole header block before parsing it, so it can be checked as sent: Beast 1.81
  // unfolds obs-fold silently, and a folded line must be refused (RFC 9112 §5.2).
  void read_header_bytes() {
    std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    auto end = data.find("\r\n\r\n");
    // The limit is on the whole block, request line and the empty line that ends it included
    // (Beast's own limit applies to the request line and to the fields apart).
    auto limit = static_cast<std::size_t>(shared_->settings.header_limit_bytes);
    if (end != std::string_view::npos) {
      if (end + 4 > limit) return on_read(http::error::header_limit, 0);
      if (unsupported_version(data.substr(0, end + 2))) {
        disarm_deadline();
        return refuse(problem(505, "HTTP version not supported", "this server speaks HTTP/1.0 and HTTP/1.1"));
      }
      if (auto why = header_block_problem(data.substr(0, end + 2))) {
        disarm_deadline();
        return refuse(bad_framing(*why));
      }
      return parse_header();
    }
    if (data.size() >= limit) return on_read(http::error::header_limit, 0);  // the block is longer
    if (auto why = header_block_problem(data)) {  // what has come is refused already
      disarm_deadline();
      return refuse(bad_framing(*why));
    }
    stream_.async_read_some(buffer_.prepare(read_chunk()),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->on_read(ec, 0);
                              self->buffer_.commit(n);
                              self->read_header_bytes();
                            });
  }

  void parse_header() {
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->header_fields_ = field_count(self->parser_->get());
                              self->head_ = self->parser_->get().method() == http::verb::head;
                              if (ec || self->parser_->is_done()) return self->on_read(ec, 0);
                              // Framing refused on the header alone is refused before its body
                              // is read (or asked for with a 100); trailers are checked after.
                              if (auto why = framing_problem(self->parser_->get())) {
                                self->disarm_deadline();
                                return self->refuse(bad_framing(*why));
                              }
                              if (self->expects_continue()) return self->send_continue();
                              self->read_body();
                            });
  }

  // A client that sent `Expect: 100-continue` waits for a 100 before it sends the body (RFC 9110
  // 10.1.1); a request refused on its header alone (413, say) was answered before this.
  bool expects_continue() const {
    const auto& req = parser_->get();
    auto it = req.find(http::field::expect);
    return req.version() >= 11 && it != req.end() && beast::iequals(it->value(), "100-continue");
  }

  void send_continue() {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    arm_deadline(shared_->settings.body_timeout_ms);  // the header's deadline no longer applies
    net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->on_read(ec, 0);
                       self->read_body();
                     });
  }

  static std::size_t field_count(const http::request<http::string_body>& req) {
    return static_cast<std::size_t>(std::distance(req.begin(), req.end()));
  }

  // The buffer is bounded (header + body + a little), so reading never grows it past that.
  std::size_t read_chunk() const {
    auto room = buffer_.max_size() - buffer_.size();
    return std::max<std::size_t>(1, std::min<std::size_t>(4096, room));
  }

  void read_body() {
    arm_deadline(shared_->settings.body_timeout_ms);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  // Beast's own stream timeout closes the socket, which would leave no way to answer 408; this
  // timer only cancels the read, and on_read answers.
  // A wait's handler may already be queued when the deadline is armed again or disarmed: it
  // acts only if it is the current one (deadline_gen_).
  void arm_deadline(std::int64_t ms) {
    stream_.expires_never();
    timed_out_ = false;
    auto gen = ++deadline_gen_;
    deadline_.expires_after(std::chrono::milliseconds(ms));
    deadline_.async_wait([weak = weak_from_this(), gen](beast::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->deadline_gen_ != gen) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
  }

  void disarm_deadline() {
    ++deadline_gen_;
    deadline_.cancel();
  }

  void on_read(beast::error_code ec, std::size_t) {
    disarm_deadline();
    if (timed_out_)
      return refuse(problem(408, "Request timeout", "the request was not received in time"));
    if (ec == http::error::end_of_stream || ec == net::error::connection_reset ||
        ec == net::error::eof)
      return close();
    if (ec == http::error::buffer_overflow)
      return refuse(bad_framing("the request framing exceeds the buffer limit"));
    if (ec == http::error::body_limit)
      return refuse(problem(413, "Payload too large", "the request body exceeds the limit of " +
                                                          std::to_string(shared_->settings.body_limit_bytes) +
                                                          " bytes"));
    if (ec == http::error::header_limit)
      return refuse(problem(431, "Request header fields too large",
                            "the request headers exceed the limit of " +
                                std::to_string(shared_->settings.header_limit_bytes) + " bytes"));
    if (ec) return refuse(bad_framing("malformed HTTP request"));
    auto req = parser_->release();
    if (auto why = framing_problem(req)) return refuse(bad_framing(*why));
    // Beast merges chunked trailers into the header fields, where they would pass for headers
    // (an Authorization or Host sent only in a trailer): no trailer is accepted.
    if (field_count(req) != header_fields_) return refuse(bad_framing("trailer fields are not accepted"));
    keep_alive_ = req.keep_alive() && !shared_->stopping;
    handle(std::move(req));
  }

  void handle(http::request<http::string_body>&& req) {
    head_ = req.method() == http::verb::head;
    HttpRequest in;
    in.headers.reserve(header_fields_);
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    for (const auto& field : req) {
      std::string name(field.name_string());
      for (auto& c : name)
        c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;  // no locale
      in.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    in.body = std::move(req.body());
    in.client = client();
    stream_.expires_never();  // the handler has its own deadline per request
    if (late_) {
      // Begun after the stop began: not handled (the threads may stop before it is answered),
      // and answered so that the client retries elsewhere.
      auto res = problem(503, "Service unavailable", "the node is stopping; retry");
      res.headers.emplace_back("Retry-After", "1");
      return refuse(std::move(res));
    }
    if (shared_->in_flight >= shared_->settings.max_in_flight) {
      // Shed load rather than queue without bound: the client may retry shortly.
      auto res = problem(503, "Service unavailable", "too many requests in flight; retry shortly");
      res.headers.emplace_back("Retry-After", "1");
      return write(std::move(res));
    }
    shared_->in_flight += 1;
    auto self = shared_from_this();
    // The deadline of handling lives here, on an Asio timer that is cancelled with the answer;
    // the handler asks its actors without timeouts of their own (CAF 0.17 keeps every request
    // timeout queued until it fires, answered or not, which costs dearly under load).
    auto answered = std::make_shared<bool>(false);  // touched on this connection's thread only
    deadline_.expires_after(std::chrono::milliseconds(shared_->settings.request_timeout_ms));
    deadline_.async_wait([self, answered](beast::error_code ec) {
      if (ec || *answered) return;
      self->answer(answered, unavailable_late());
    });
    shared_->handler(std::move(in), [self, answered](HttpResponse res) {
      net::post(self->stream_.get_executor(), [self, answered, res = std::move(res)]() mutable {
        self->answer(answered, std::move(res));  // a late answer after the 503 is dropped
      });
    });
  }

  // The peer's address, asked of the kernel once per connection.
  const std::string& client() {
    if (client_.empty()) {
      beast::error_code ec;
      auto peer = stream_.socket().remote_endpoint(ec);
      client_ = ec ? "unknown" : peer.address().to_string();
    }
    return client_;
  }

  static HttpResponse unavailable_late() {
    auto res = problem(503, "Service unavailable", "the request could not be completed in time; try again");
    res.headers.emplace_back("Retry-After", "1");
    return res;
  }

  void answer(const std::shared_ptr<bool>& answered, HttpResponse res) {
    if (*answered) return;
    *answered = true;
    deadline_.cancel();
    shared_->in_flight -= 1;
    write(std::move(res));
  }

  // The answer is rendered into one buffer (render_response) and written with one call: Beast's
  // serializer took a tenth of the node's CPU at the most orders a second, building its fields and
  // buffer views for every answer.
  void write(HttpResponse res) {
    response_ = render_response(res, keep_alive_ && !close_after_write_, head_);
    stream_.expires_after(std::chrono::milliseconds(shared_->settings.request_timeout_ms));
    net::async_write(stream_, net::buffer(response_),
                     beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void set_busy(bool busy) {
    if (busy == busy_) return;
    busy_ = busy;
    shared_->busy += busy ? 1 : -1;
    if (busy) late_ = shared_->stopping;  // begun after the stop: refused, not handled
  }

  void on_write(beast::error_code ec, std::size_t) {
    response_ = std::string();  // an idle connection keeps no answer
    set_busy(false);
    if (ec) return close();
    if (close_after_write_) return linger_close();
    if (!keep_alive_) return close();
    read();
  }

  void close() {
    set_busy(false);
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  // After a refusal the client may still be sending (a body past the limit, the rest of a header
  // block). Closing with bytes unread makes the kernel send a reset, which can destroy the answer
  // before the client has read it. So the sending side is shut, and what still arrives is read and
  // dropped for a little while (as nginx's lingering close does): until the client closes, or
  // kLingerMs, or kLingerBytesMax.
  static constexpr std::int64_t kLingerMs = 1000;
  static constexpr std::size_t kLingerBytesMax = 256 * 1024;

  void linger_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return stream_.close();
    lingered_ = 0;
    stream_.expires_after(std::chrono::milliseconds(kLingerMs));
    drain();
  }

  void drain() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(read_chunk()), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ >= kLingerBytesMax) return self->stream_.close();
      self->drain();
    });
  }

  beast::tcp_stream stream_;
  net::steady_timer deadline_;
  std::uint64_t deadline_gen_ = 0;  // which arming of deadline_ is current
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  std::size_t header_fields_ = 0;  // fields in the header block, to tell trailers apart
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string response_;  // the answer being written
  std::string client_;    // the peer's address, once known
  bool head_ = false;     // the request being answered is a HEAD: its answer has no body
  std::shared_ptr<Shared> shared_;
  bool keep_alive_ = true;
  bool close_after_write_ = false;
  bool busy_ = false;         // counted in shared_->busy
  bool late_ = false;         // the request under way began once the server was stopping
  std::size_t lingered_ = 0;  // bytes dropped after a refusal
};

// One io_context per HTTP thread, each run by that thread alone: a connection lives on one of
// them, given in turn as connections come. Its handlers then never run on two threads at once (no
// strand needed), and an answer never wakes another HTTP thread to write it. With one io_context
// shared by the threads, each answer was handed from thread to thread through Asio's queue.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(std::vector<net::io_context*> iocs, tcp::endpoint endpoint, std::shared_ptr<Shared> shared)
      : iocs_(std::move(iocs)), acceptor_(*iocs_.front()), shared_(std::move(shared)) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  void accept() {
    net::any_io_executor on = iocs_[next_++ % iocs_.size()]->get_executor();
    acceptor_.async_accept(on, beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }
  void close() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
    });
  }

 private:
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      auto session = std::make_shared<Session>(std::move(socket), shared_);
      if (shared_->connections > shared_->settings.max_connections) {
        auto res = problem(503, "Service unavailable", "too many connections");
        res.headers.emplace_back("Retry-After", "1");
        net::dispatch(session->executor(), [session, res]() mutable { session->refuse(res); });
      } else {
        session->start();
      }
    }
    accept();
  }

  std::vector<net::io_context*> iocs_;
  std::size_t next_ = 0;  // the io_context of the next connection
  tcp::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace

struct Server::Impl {
  std::shared_ptr<Shared> shared = std::make_shared<Shared>();
  std::vector<std::unique_ptr<net::io_context>> iocs;  // one per thread
  std::shared_ptr<Listener> listener;
  std::vector<std::thread> threads;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work;
};

Server::Server(ServerSettings settings, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->shared->settings = std::move(settings);
  impl_->shared->handler = std::move(handler);
}

// The io_contexts go first to last: an accept still pending on the first holds a socket of the next.
Server::~Server() {
  stop(0);
  impl_->listener.reset();
  for (auto& ioc : impl_->iocs) ioc.reset();
}

std::uint16_t Server::start() {
  auto& s = impl_->shared->settings;
  auto address = net::ip::make_address(s.host == "localhost" ? "127.0.0.1" : s.host);
  std::vector<net::io_context*> iocs;
  for (int i = 0; i < std::max(1, s.threads); ++i) {
    impl_->iocs.push_back(std::make_unique<net::io_context>(1));  // run by one thread
    iocs.push_back(impl_->iocs.back().get());
  }
  impl_->listener = std::make_shared<Listener>(iocs, tcp::endpoint{address, s.port}, impl_->shared);
  impl_->listener->accept();
  for (auto* ioc : iocs) {
    impl_->work.push_back(net::make_work_guard(*ioc));
    impl_->threads.emplace_back([ioc] { ioc->run(); });
  }
  return impl_->listener->port();
}

void Server::stop(std::int64_t drain_ms) {
  if (impl_->threads.empty()) return;
  impl_->shared->stopping = true;
  if (impl_->listener) impl_->listener->close();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(drain_ms);
  while ((impl_->shared->busy > 0 || impl_->shared->in_flight > 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  impl_->work.clear();
  for (auto& ioc : impl_->iocs) ioc->stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  // Let go of the handler (and what it holds) now: the caller may then stop what answers through
  // it while the io_contexts are still there for the connections its answers still refer to.
  impl_->shared->handler = nullptr;
}

std::int64_t Server::in_flight() const { return impl_->shared->in_flight; }

}  // namespace emporium
