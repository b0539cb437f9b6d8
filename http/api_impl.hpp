// Internal to the edge: the state of the API and the helpers its route files share
// (routes.cpp for /v1 and health, admin.cpp for /admin). Pulls in CAF and Boost.JSON.
#pragma once

#include <chrono>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include "actors/context.hpp"
#include "http/auth.hpp"
#include "http/codec.hpp"
#include "http/gateway.hpp"
#include "http/rate_limit.hpp"
#include "http/routes.hpp"
#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"
#include "runtime/metrics.hpp"

namespace emporium {
namespace api_detail {

using Steady = std::chrono::steady_clock;

inline HttpResponse json_response(int status, std::string body) {
  return HttpResponse{status, "application/json", {}, std::move(body)};
}

inline HttpResponse unauthorized(std::string_view detail) {
  auto res = problem(401, "Unauthorized", detail);
  res.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
  return res;
}

inline HttpResponse forbidden(std::string_view scope) {
  auto res = problem(403, "Forbidden", "the token lacks the scope " + std::string(scope));
  res.headers.emplace_back("WWW-Authenticate",
                           "Bearer error=\"insufficient_scope\", scope=\"" + std::string(scope) + "\"");
  return res;
}

inline HttpResponse unavailable(std::int64_t retry_after_s, std::string_view detail) {
  auto res = problem(503, "Service unavailable", detail);
  res.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
  return res;
}

inline std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (auto b : digest) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

// A body sent without a Content-Type is taken as JSON, as its client meant it (what it holds is
// then checked as any body); one declared as another type is refused (415).
inline bool is_json_content(const HttpRequest& req) {
  auto* type = req.header("content-type");
  if (!type) return true;
  std::string_view t = *type;
  t = t.substr(0, t.find(';'));
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  std::string lower(t);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == "application/json";
}

inline bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (char c : key)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

// An id the node makes (new_id): `prefix` and 26 characters of lowercase base32.
inline bool valid_made_id(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + 26 || id.substr(0, prefix.size()) != prefix) return false;
  for (char c : id.substr(prefix.size()))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  return true;
}

inline bool valid_order_id(std::string_view id) { return valid_made_id(id, "ord_"); }

// "GET /v1/orders/{id}": known words kept, ids replaced, anything else "other", so metric labels
// stay few and never carry request data.
inline std::string route_template(const std::vector<std::string>& path, const std::string& method) {
  static const std::set<std::string, std::less<>> words{
      "v1",     "admin",  "orders",  "inventory", "cancel", "ship",  "adjust", "actors",
      "cluster", "healthz", "readyz", "metrics",  "order",  "payment", "passivate"};
  static const std::set<std::string, std::less<>> methods{"GET", "PUT", "POST", "DELETE", "HEAD"};
  std::string out = (methods.count(method) ? method : std::string("OTHER")) + " ";
  if (path.empty() || path.size() > 5) return out + "/other";
  for (size_t i = 0; i < path.size(); ++i) {
    bool id_position = (i == 2 && path[0] == "v1") || (i == 3 && path[0] == "admin");
    if (id_position) out += "/{id}";
    else if (words.count(path[i])) out += "/" + path[i];
    else return out + "/other";
  }
  return out;
}

// A request target in the absolute form: an http or https URI (the scheme in any case).
inline bool absolute_form(std::string_view target) {
  auto scheme_is = [target](std::string_view scheme) {
    if (target.size() < scheme.size() + 3 || target.substr(scheme.size(), 3) != "://") return false;
    for (std::size_t i = 0; i < scheme.size(); ++i)
      if ((target[i] | 0x20) != scheme[i]) return false;
    return true;
  };
  return scheme_is("http") || scheme_is("https");
}

// 400 for a body that did not decode: its detail (`fallback` without one) and its fields' errors.
template <class T>
HttpResponse invalid_request(const Decoded<T>& decoded, std::string_view fallback) {
  return problem(400, "Bad request", decoded.detail.empty() ? fallback : std::string_view(decoded.detail),
                 decoded.errors);
}

// 405 for a method the endpoint does not take, with the ones it does (`Allow`).
inline HttpResponse wrong_method(const char* allow) {
  auto res = problem(405, "Method not allowed", "this endpoint allows " + std::string(allow));
  res.headers.emplace_back("Allow", allow);
  return res;
}

struct Principal {
  auth::Claims claims;
  bool admin() const { return claims.has_scope("admin"); }
  bool may(std::string_view scope) const { return admin() || claims.has_scope(scope); }
};

struct Call {
  HttpRequest req;
  Respond respond;
  std::vector<std::string> path;  // decoded segments
  std::vector<std::pair<std::string, std::string>> params;  // decoded query parameters
  Principal who;
};

}  // namespace api_detail
using namespace api_detail;

// The node's operator agent (admin.cpp), registered with the router as the handler of admin_type.
caf::actor spawn_admin_agent(caf::actor_system& system, const NodeContext& ctx, const std::string& node);

struct Api::Impl {
  caf::actor_system& system;
  std::shared_ptr<const NodeContext> ctx;
  ApiSettings settings;
  std::shared_ptr<Metrics> metrics;
  auth::TokenVerifier verifier;
  RateLimiter limiter;        // every limited route
  std::optional<RateLimiter> place_limiter;  // order placement and cancel, where configured
  Gateway gateway;
  caf::actor membership;  // in a cluster
  caf::actor admin_agent;  // answers operators' queries about this node's entities, from any node
  std::mutex running_mutex;
  std::set<std::pair<std::string, std::string>> running_keys;  // idempotency keys in flight

  Impl(caf::actor_system& sys, std::shared_ptr<const NodeContext> c, ApiSettings s,
       std::shared_ptr<Metrics> m)
      : system(sys),
        ctx(std::move(c)),
        settings(std::move(s)),
        metrics(std::move(m)),
        verifier(settings.auth),
        limiter("default", settings.rate, settings.burst, static_cast<std::size_t>(settings.rate_entries_max)),
        gateway(sys, 4) {
    if (settings.place_rate > 0)
      place_limiter.emplace("place", settings.place_rate, settings.place_burst,
                            static_cast<std::size_t>(settings.rate_entries_max));
  }

  // Requests to actors carry no CAF timeout: the server bounds each HTTP request on its own
  // timer (http.request_timeout_ms) and answers 503 when it fires.
  static caf::infinite_t timeout() { return caf::infinite; }

  // The one mapping of failures to HTTP.
  HttpResponse failure(const caf::error& err) const {
    switch (code_of(err)) {
      case errc::not_found: return problem(404, "Not found", "no such resource");
      case errc::conflict: return problem(409, "Conflict", detail_of(err, "the resource does not allow this now"));
      case errc::busy: return problem(409, "Conflict", "the resource is busy; try again");
      case errc::invalid_argument: return problem(400, "Bad request", "the request cannot be processed");
      case errc::unavailable:
      case errc::not_delivered:
        return unavailable(settings.retry_after_s, detail_of(err, "a cluster node is unavailable") + "; try again");
      case errc::version_conflict:
        return unavailable(settings.retry_after_s, "the resource moved to another node; try again");
      case errc::db_failed:  // the server's failure, not the request's: logged where it happened
        return unavailable(settings.retry_after_s, "a database request failed; try again");
      default: break;
    }
    if (err == caf::sec::request_timeout)
      return unavailable(settings.retry_after_s, "the request timed out; try again");
    // Card data never reaches an error: it prints as *** (actors/card.hpp).
    spdlog::warn("request failed: {}", caf::to_string(err));
    return unavailable(settings.retry_after_s, "a database or service is unavailable; try again");
  }

  static std::string detail_of(const caf::error& err, std::string fallback) {
    const auto& ctx = err.context();
    if (ctx.match_elements<std::string>()) return ctx.get_as<std::string>(0);
    return fallback;
  }

  template <class... Ts>
  auto ask(caf::event_based_actor* self, caf::atom_value type, const std::string& id, Ts&&... xs) {
    return self->request(ctx->route_for(type), timeout(), route_atom::value, type, id,
                         caf::make_message(std::forward<Ts>(xs)...));
  }

  void handle(HttpRequest&& req, Respond respond);
  void route_v1(Call& call);
  std::optional<HttpResponse> authenticate(Call& call);
  // Checks the principal's budget; on refusal answers 429 and returns false, else makes every
  // answer carry the RateLimit headers.
  // Takes one request of `principal` from each budget in turn; false once one refused (answered
  // 429 then).
  bool within_rate(Call& call, std::initializer_list<RateLimiter*> budgets, const std::string& principal);

  void scrape(Call& call);
  void health(Call& call);
  void ready(Call& call);
  void get_item(Call& call);
  void list_items(Call& call);
  void put_item(Call& call);
  void adjust_item(Call& call);
  void place_order(Call& call);
  Decoded<PlaceOrderInput> decode_order(std::string_view body) const;
  // Places order `id` from its valid request `input`; with an Idempotency-Key (`key`, its
  // request's digest `hash`) claimed for it. `claimed_before`: the key's claim went stale, so the
  // order may be stored already.
  void place_order_now(Call& call, std::shared_ptr<PlaceOrderInput> input, std::string key,
                       std::string hash, std::string id, bool claimed_before = false);
  template <class Finish>
  void answer_stopped_placement(caf::event_based_actor* self, const std::string& id, const caf::error& err,
                                Finish finish);
  void get_order(Call& call);
  void list_orders(Call& call);
  void order_command(Call& call, bool ship);

  // admin.cpp
  void route_admin(Call& call);
  void admin_cluster(Call& call);
  template <class Then>
  void each_node(caf::event_based_actor* self, Then then);
  void admin_actors(Call& call);
  void admin_actor(Call& call, caf::atom_value type, const std::string& id);
  void admin_passivate(Call& call, caf::atom_value type, const std::string& id);
  void admin_dashboard(Call& call);
};

}  // namespace emporium
