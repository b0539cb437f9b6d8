// The `http` payment provider: one HTTP/1.1 exchange per call, bounded by payment.timeout_ms.
#include "http/payment_client.hpp"

#include <cstdint>
#include <string_view>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

namespace emporium {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// An answer larger than this is not a provider's answer: the call fails (and is retried).
constexpr std::size_t kAnswerMaxBytes = 64 * 1024;

// What came back: a status and body, or none; `sent` tells whether the request may have reached
// the provider (the connection was made) when none came.
struct Answer {
  unsigned status = 0;  // 0: no answer
  std::string body;
  bool sent = false;
};

class HttpPaymentProvider final : public PaymentProvider {
 public:
  HttpPaymentProvider(tcp::resolver::results_type endpoints, std::string host_header,
                      std::string base, std::chrono::milliseconds timeout)
      : endpoints_(std::move(endpoints)),
        host_header_(std::move(host_header)),
        base_(std::move(base)),
        timeout_(timeout) {}

  bool blocking() const override { return true; }

  ChargeResult charge(const ChargeRequest& r) override {
    // Built by hand into one buffer sized once, so that the card's digits are in this one string,
    // wiped below (a JSON value, or a string that grows, would leave copies in freed memory).
    // They are digits only (checked at the edge); anything else is sent empty, never escaped.
    auto digits = [](std::string_view s) {
      bool ok = !s.empty() && s.size() <= 32;
      for (char c : s) ok = ok && c >= '0' && c <= '9';
      return ok ? s : std::string_view{};
    };
    auto id = boost::json::serialize(boost::json::value(r.payment_id));
    auto currency = boost::json::serialize(boost::json::value(r.currency));
    std::string body;
    body.reserve(256 + id.size() + currency.size());
    body.append("{\"payment_id\":").append(id);
    body.append(",\"amount_cents\":").append(std::to_string(r.amount_cents));
    body.append(",\"currency\":").append(currency);
    body.append(",\"card\":{\"number\":\"");
    if (r.card) body.append(digits(r.card->number.reveal()));
    body.append("\",\"exp_month\":").append(std::to_string(r.card ? r.card->exp_month : 0));
    body.append(",\"exp_year\":").append(std::to_string(r.card ? r.card->exp_year : 0));
    body.append(",\"cvc\":\"");
    if (r.card) body.append(digits(r.card->cvc.reveal()));
    body.append("\"}}");
    auto answer = post("/charges", r.payment_id, body);
    cleanse(body);
    auto status = answer.status;
    // Not sent (no connection), or refused before it ran (408, 429): nothing was charged.
    if (status == 0) return {answer.sent ? ChargeOutcome::unknown : ChargeOutcome::transient_error, {}};
    if (status == 408 || status == 429) return {ChargeOutcome::transient_error, {}};
    if (status >= 400 && status < 500) {
      if (status != 402) spdlog::warn("payment provider: charge {} answered {}", r.payment_id, status);
      return {ChargeOutcome::declined, {}};
    }
    if (status < 200 || status >= 300) {  // 5xx, or an answer that is none (1xx, 3xx)
      spdlog::warn("payment provider: charge {} answered {}", r.payment_id, status);
      return {ChargeOutcome::unknown, {}};
    }
    boost::json::error_code ec;
    auto parsed = boost::json::parse(answer.body, ec);
    const auto* object = ec ? nullptr : parsed.if_object();
    const auto* outcome = object ? object->if_contains("status") : nullptr;
    std::string reference;
    if (const auto* ref = object ? object->if_contains("reference") : nullptr; ref && ref->is_string())
      reference = std::string(ref->as_string());
    if (outcome && outcome->is_string()) {
      std::string_view s = outcome->as_string();
      if (s == "captured") return {ChargeOutcome::captured, reference};
      if (s == "declined") return {ChargeOutcome::declined, reference};
      if (s == "insufficient_funds") return {ChargeOutcome::insufficient_funds, reference};
    }
    // Not an answer we know: the outcome is unknown, so the call is made again (idempotent).
    spdlog::warn("payment provider: charge {} got an answer without a known status", r.payment_id);
    return {ChargeOutcome::unknown, {}};
  }

  bool refund(const std::string& payment_id, std::int64_t amount_cents) override {
    auto body = boost::json::serialize(
        boost::json::object{{"payment_id", payment_id}, {"amount_cents", amount_cents}});
    auto answer = post("/refunds", payment_id, body);
    return answer.status >= 200 && answer.status < 300;
  }

 private:
  // POSTs `body` to base + `path`: status 0 when the exchange failed or timed out.
  Answer post(const std::string& path, const std::string& key, const std::string& body) {
    net::io_context io;
    beast::tcp_stream stream(io);
    http::request<http::string_body> req{http::verb::post, base_ + path, 11};
    req.set(http::field::host, host_header_);
    req.set(http::field::content_type, "application/json");
    req.set("Idempotency-Key", key);
    req.body().reserve(body.size());
    req.body().append(body);  // sized once: no copy left behind
    req.prepare_payload();
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kAnswerMaxBytes);
    parser.header_limit(16 * 1024);
    beast::error_code failed;
    bool connected = false;
    bool done = false;
    // Asynchronous steps run here, on this thread, within the stream's deadline (connect, write
    // and read; the name was resolved once, at start).
    stream.expires_after(timeout_);
    stream.async_connect(endpoints_, [&](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return void(failed = ec);
      connected = true;
      http::async_write(stream, req, [&](beast::error_code ec, std::size_t) {
        if (ec) return void(failed = ec);
        http::async_read(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
          if (ec) return void(failed = ec);
          done = true;
        });
      });
    });
    io.run();
    cleanse(req.body());
    if (!done) {
      spdlog::warn("payment provider: POST {} for {} failed: {}", path, key, failed.message());
      return Answer{0, {}, connected};
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    auto res = parser.release();
    return Answer{res.result_int(), std::move(res.body()), true};
  }

  tcp::resolver::results_type endpoints_;
  std::string host_header_;
  std::string base_;  // the URL's path, without a trailing '/'
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::shared_ptr<PaymentProvider> make_http_provider(const Config::Payment& settings) {
  auto url = boost::urls::parse_absolute_uri(settings.url);
  auto refuse = [&](const std::string& why) {
    return ConfigError("payment.url", why + ": expected http://HOST[:PORT][/PATH], got \"" + settings.url + "\"");
  };
  if (!url || url->scheme() != "http" || url->host().empty() || url->has_query() || url->has_fragment() ||
      url->has_userinfo() || (url->has_port() && url->port().empty()))
    throw refuse("not an http URL");
  std::string base(url->encoded_path());
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string port = url->has_port() ? std::string(url->port()) : "80";
  // Resolved once, here: a lookup is not bounded by the calls' timeout.
  net::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  std::string host(url->host_address());  // an IPv6 address without its brackets
  auto endpoints = resolver.resolve(host, port, ec);
  if (ec || endpoints.empty()) throw refuse("cannot resolve " + host + ":" + port + " (" + ec.message() + ")");
  return std::make_shared<HttpPaymentProvider>(std::move(endpoints), std::string(url->encoded_host_and_port()),
                                               base, std::chrono::milliseconds(settings.timeout_ms));
}

}  // namespace emporium
