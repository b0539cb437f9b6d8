// The `http` payment provider: one HTTP/1.1 exchange per call, bounded by payment.timeout_ms.
#include "http/payment_client.hpp"

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

namespace emporium {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// An answer larger than this is not a provider's answer: the call fails (and is retried).
constexpr std::size_t kAnswerMaxBytes = 64 * 1024;

struct Answer {
  unsigned status = 0;
  std::string body;
};

// Empties a string that held card data, overwriting it first.
void cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

class HttpPaymentProvider final : public PaymentProvider {
 public:
  HttpPaymentProvider(std::string host, std::string port, std::string base,
                      std::chrono::milliseconds timeout)
      : host_(std::move(host)), port_(std::move(port)), base_(std::move(base)), timeout_(timeout) {}

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
    if (!answer) return {ChargeOutcome::transient_error, {}};
    auto status = answer->status;
    if (status == 408 || status == 429 || status >= 500) return {ChargeOutcome::transient_error, {}};
    if (status == 402) return {ChargeOutcome::declined, {}};
    if (status < 200 || status >= 300) {
      spdlog::warn("payment provider: charge {} answered {}", r.payment_id, status);
      return {ChargeOutcome::declined, {}};
    }
    boost::json::error_code ec;
    auto parsed = boost::json::parse(answer->body, ec);
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
    return {ChargeOutcome::transient_error, {}};
  }

  bool refund(const std::string& payment_id, std::int64_t amount_cents) override {
    auto body = boost::json::serialize(
        boost::json::object{{"payment_id", payment_id}, {"amount_cents", amount_cents}});
    auto answer = post("/refunds", payment_id, body);
    return answer && answer->status >= 200 && answer->status < 300;
  }

 private:
  // POSTs `body` to base + `path`; no answer when the exchange failed or timed out.
  std::optional<Answer> post(const std::string& path, const std::string& key, const std::string& body) {
    net::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    http::request<http::string_body> req{http::verb::post, base_ + path, 11};
    req.set(http::field::host, host_ + ":" + port_);
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
    bool done = false;
    // Asynchronous steps run here, on this thread: the stream's deadline bounds connect, write
    // and read; run_for bounds the name lookup too.
    stream.expires_after(timeout_);
    resolver.async_resolve(host_, port_, [&](beast::error_code ec, tcp::resolver::results_type found) {
      if (ec) return void(failed = ec);
      stream.async_connect(found, [&](beast::error_code ec, const tcp::endpoint&) {
        if (ec) return void(failed = ec);
        http::async_write(stream, req, [&](beast::error_code ec, std::size_t) {
          if (ec) return void(failed = ec);
          http::async_read(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
            if (ec) return void(failed = ec);
            done = true;
          });
        });
      });
    });
    io.run_for(timeout_ + std::chrono::milliseconds(100));
    cleanse(req.body());
    if (!done) {
      spdlog::warn("payment provider: POST {} for {} failed: {}", path, key,
                   failed ? failed.message() : std::string("timed out"));
      return std::nullopt;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    auto res = parser.release();
    return Answer{res.result_int(), std::move(res.body())};
  }

  std::string host_;
  std::string port_;
  std::string base_;  // the URL's path, without a trailing '/'
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::shared_ptr<PaymentProvider> make_http_provider(const Config::Payment& settings) {
  auto url = boost::urls::parse_absolute_uri(settings.url);
  if (!url || url->scheme() != "http" || url->host().empty() || url->has_query() || url->has_fragment() ||
      url->has_userinfo())
    throw ConfigError("payment.url", "expected http://HOST[:PORT][/PATH], got \"" + settings.url + "\"");
  std::string base(url->encoded_path());
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string port = url->has_port() ? std::string(url->port()) : "80";
  return std::make_shared<HttpPaymentProvider>(std::string(url->encoded_host()), port, base,
                                               std::chrono::milliseconds(settings.timeout_ms));
}

}  // namespace emporium
