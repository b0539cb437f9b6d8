// Request handling of the edge. Each route is a short function: check the principal's scope,
// decode, ask the entity through the router, and map the reply (or the failure) to HTTP.
#include "http/routes.hpp"

#include "http/api_impl.hpp"
#include "runtime/cluster.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <set>

#include <boost/json.hpp>
#include <boost/url.hpp>
#include <caf/all.hpp>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include "actors/inventory.hpp"
#include "actors/order.hpp"
#include "actors/payment.hpp"
#include "http/gateway.hpp"
#include "http/rate_limit.hpp"
#include "runtime/atoms.hpp"
#include "runtime/errors.hpp"
#include "runtime/metrics.hpp"
#include "runtime/persistence.hpp"
#include "runtime/registry.hpp"
#include "runtime/store.hpp"
#include "runtime/timed_request.hpp"

namespace emporium {

Api::Api(caf::actor_system& system, std::shared_ptr<const NodeContext> ctx, ApiSettings settings,
         std::shared_ptr<Metrics> metrics)
    : impl_(std::make_unique<Impl>(system, std::move(ctx), std::move(settings), std::move(metrics))) {
  impl_->admin_agent = spawn_admin_agent(system, *impl_->ctx, impl_->settings.node_name);
}

Api::~Api() { caf::anon_send_exit(impl_->admin_agent, caf::exit_reason::user_shutdown); }

void Api::set_http_address(std::string address) { impl_->settings.http_address = std::move(address); }
void Api::set_membership(const caf::actor& membership) { impl_->membership = membership; }

void Api::handle(HttpRequest&& request, Respond respond) { impl_->handle(std::move(request), std::move(respond)); }

void Api::Impl::handle(HttpRequest&& req, Respond respond) {
  auto parsed = boost::urls::parse_origin_form(req.target);
  // The absolute form (`http://host/path`) is taken too (RFC 9112 3.2.2), by its path and query.
  if (!parsed && absolute_form(req.target)) {
    auto absolute = boost::urls::parse_absolute_uri(req.target);
    // With a host and without userinfo (RFC 9110 4.2.1 and 4.2.4).
    if (absolute && absolute->has_authority() && !absolute->encoded_host().empty() && !absolute->has_userinfo())
      parsed = absolute;
  }
  if (!parsed) return respond(problem(400, "Bad request", "malformed request target"));
  Call call{{}, {}, {}, {}, {}};
  for (auto seg : parsed->segments()) call.path.push_back(std::string(seg));
  for (auto param : parsed->params()) call.params.emplace_back(param.key, param.value);
  call.req = std::move(req);  // after reading `parsed`, which points into req.target
  // Count every answer by route template and status; never by raw path (it holds ids).
  call.respond = [this, respond = std::move(respond), started = Steady::now(),
                  route = route_template(call.path, call.req.method)](HttpResponse res) {
    auto seconds = std::chrono::duration<double>(Steady::now() - started).count();
    metrics->add("emporium_http_requests_total{route=\"" + route + "\",code=\"" +
                 std::to_string(res.status) + "\"}");
    metrics->observe("emporium_http_request_duration_seconds", "route=\"" + route + "\"", seconds);
    respond(std::move(res));
  };
  // A HEAD is routed as its GET; the server writes the answer's head alone.
  if (call.req.method == "HEAD") call.req.method = "GET";
  auto& p = call.path;
  if (p.size() == 1 && (p[0] == "healthz" || p[0] == "readyz" || p[0] == "metrics")) {
    if (call.req.method != "GET") return call.respond(wrong_method("GET, HEAD"));
    if (p[0] == "healthz") return health(call);
    if (p[0] == "readyz") return ready(call);
    return scrape(call);
  }
  if (!p.empty() && (p[0] == "v1" || p[0] == "admin")) return route_v1(call);
  call.respond(problem(404, "Not found", "no such endpoint"));
}

std::optional<HttpResponse> Api::Impl::authenticate(Call& call) {
  int count = call.req.header_count("authorization");
  if (count == 0) return unauthorized("an access token is required");
  if (count > 1) return unauthorized("exactly one Authorization header is allowed");
  auto token = auth::bearer_token(*call.req.header("authorization"));
  if (!token) return unauthorized("the Authorization header must be 'Bearer <token>'");
  auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  auto verified = verifier.verify(*token, now_s);
  if (!verified) return unauthorized("the access token is not valid");
  call.who.claims = std::move(*verified.claims);
  return std::nullopt;
}

bool Api::Impl::within_rate(Call& call, std::initializer_list<RateLimiter*> budgets,
                            const std::string& principal) {
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(Steady::now().time_since_epoch()).count();
  // One field each, listing the policies in the order they were checked (a List, as the IETF
  // draft has it); a refusal stops at the budget that refused, and gives back what the budgets
  // before it allowed: a refused request costs nothing.
  std::vector<std::pair<RateLimiter*, RateDecision>> checked;
  auto fields = [&checked](std::string& policies, std::string& rates) {
    for (auto& [which, decision] : checked) {
      policies += (policies.empty() ? "" : ", ") + which->policy_header();
      rates += (rates.empty() ? "" : ", ") + which->rate_header(decision);
    }
  };
  for (auto* which : budgets) {
    checked.emplace_back(which, which->check(principal, now_us));
    const auto& decision = checked.back().second;
    if (decision.allowed) continue;
    for (size_t i = 0; i + 1 < checked.size(); ++i) {
      checked[i].first->give_back(principal);
      checked[i].second.remaining += 1;
    }
    metrics->add("emporium_rate_limited_total");
    std::string policies, rates;
    fields(policies, rates);
    auto res = problem(429, "Too many requests", "rate limit exceeded; retry later");
    res.headers = {{"RateLimit-Policy", policies}, {"RateLimit", rates},
                   {"Retry-After", std::to_string(decision.retry_after_s)}};
    call.respond(std::move(res));
    return false;
  }
  std::string policies, rates;
  fields(policies, rates);
  call.respond = [inner = std::move(call.respond), policies = std::move(policies),
                  rates = std::move(rates)](HttpResponse res) {
    res.headers.emplace_back("RateLimit-Policy", policies);
    res.headers.emplace_back("RateLimit", rates);
    inner(std::move(res));
  };
  return true;
}

void Api::Impl::route_v1(Call& call) {
  if (auto refused = authenticate(call)) {
    metrics->add("emporium_auth_failures_total");
    // Unauthenticated clients are limited by address, so guessing tokens is slow too.
    if (!within_rate(call, {&limiter}, "addr:" + call.req.client)) return;
    return call.respond(std::move(*refused));
  }
  bool placing = call.req.method == "POST" && call.path.size() >= 2 && call.path[1] == "orders" &&
                 (call.path.size() == 2 || (call.path.size() == 4 && call.path[3] == "cancel"));
  // One budget per principal for every route; placing and cancelling also take from the stricter
  // one, where it is configured.
  auto principal = "sub:" + call.who.claims.sub;
  if (placing && place_limiter ? !within_rate(call, {&limiter, &*place_limiter}, principal)
                               : !within_rate(call, {&limiter}, principal))
    return;
  const auto& p = call.path;
  const auto& m = call.req.method;
  auto refuse = [&](const char* allow) { call.respond(wrong_method(allow)); };
  if (p.size() >= 2 && p[0] == "v1" && p[1] == "inventory") {
    if (p.size() == 2) return m == "GET" ? list_items(call) : refuse("GET, HEAD");
    if (p.size() == 3) {
      if (m == "GET") return get_item(call);
      if (m == "PUT") return put_item(call);
      return refuse("GET, HEAD, PUT");
    }
    if (p.size() == 4 && p[3] == "adjust") return m == "POST" ? adjust_item(call) : refuse("POST");
  }
  if (p.size() >= 2 && p[0] == "v1" && p[1] == "orders") {
    if (p.size() == 2) {
      if (m == "POST") return place_order(call);
      if (m == "GET") return list_orders(call);
      return refuse("GET, HEAD, POST");
    }
    if (p.size() == 3) return m == "GET" ? get_order(call) : refuse("GET, HEAD");
    if (p.size() == 4 && (p[3] == "cancel" || p[3] == "ship"))
      return m == "POST" ? order_command(call, p[3] == "ship") : refuse("POST");
  }
  if (!p.empty() && p[0] == "admin") return route_admin(call);
  call.respond(problem(404, "Not found", "no such endpoint"));
}

// Gauges read at scrape time: active actors per type and the group-commit figures per database.
void Api::Impl::scrape(Call& call) {
  gateway.run([this, respond = call.respond](caf::event_based_actor* self) {
    auto left = std::make_shared<size_t>(ctx->registries.size() + ctx->orders_shards.size() +
                                         ctx->inventory_shards.size() + (membership ? 1 : 0));
    auto done = [this, left, respond] {
      if (--*left == 0) respond(HttpResponse{200, "text/plain; version=0.0.4", {}, metrics->render()});
    };
    for (const auto& [type, registry] : ctx->registries)
      self->request(registry, std::chrono::seconds(2), stats_atom::value)
          .then(
              [this, done, name = caf::to_string(type)](RegistryStats& s) {
                metrics->set("emporium_active_actors{type=\"" + name + "\"}", double(s.active));
                metrics->set_counter("emporium_activations_total{type=\"" + name + "\"}", double(s.activations));
                metrics->set_counter("emporium_passivations_total{type=\"" + name + "\"}", double(s.passivations));
                done();
              },
              [done](caf::error&) { done(); });
    for (auto [shards, name] : {std::pair{&ctx->orders_shards, "orders"}, std::pair{&ctx->inventory_shards, "inventory"}})
      for (size_t i = 0; i < shards->size(); ++i)
        self->request((*shards)[i], std::chrono::seconds(2), stats_atom::value)
            .then(
                [this, done, label = "{database=\"" + std::string(name) + "\",connection=\"" + std::to_string(i) + "\"}"](
                    CommitStats& s) {
                  metrics->set_counter("emporium_commit_batches_total" + label, double(s.batches));
                  metrics->set_counter("emporium_commit_writes_total" + label, double(s.writes));
                  metrics->set("emporium_commit_batch_size_max" + label, double(s.batch_size_max_seen));
                  metrics->set_counter("emporium_version_conflicts_total" + label, double(s.conflicts));
                  metrics->set_counter("emporium_commit_seconds_total" + label, s.commit_seconds_total);
                  metrics->set("emporium_commit_seconds_max" + label, s.commit_seconds_max);
                  metrics->set_counter("emporium_commit_lingers_total" + label, double(s.lingers));
                  done();
                },
                [done](caf::error&) { done(); });
    // Members by status, as this node sees the cluster.
    if (membership)
      self->request(membership, std::chrono::seconds(2), members_atom::value)
          .then(
              [this, done](std::vector<MemberStatus>& members) {
                std::map<std::string, int> by_status{{"up", 0}, {"suspect", 0}, {"down", 0}, {"left", 0}};
                for (const auto& m : members) by_status[m.status] += 1;
                for (const auto& [status, n] : by_status)
                  metrics->set("emporium_cluster_members{status=\"" + status + "\"}", double(n));
                done();
              },
              [done](caf::error&) { done(); });
  });
}

void Api::Impl::health(Call& call) { call.respond(json_response(200, R"({"status":"ok"})")); }

void Api::Impl::ready(Call& call) {
  gateway.run([this, respond = call.respond](caf::event_based_actor* self) {
    std::vector<caf::actor> dbs = ctx->orders_shards;
    dbs.insert(dbs.end(), ctx->inventory_shards.begin(), ctx->inventory_shards.end());
    // The read connections too, where they are connections of their own (PostgreSQL).
    for (const auto& reader : {ctx->orders_reader, ctx->inventory_reader})
      if (std::find(dbs.begin(), dbs.end(), reader) == dbs.end()) dbs.push_back(reader);
    auto left = std::make_shared<int>(static_cast<int>(dbs.size()) + (membership ? 1 : 0));
    auto ok = std::make_shared<bool>(true);
    auto joined = std::make_shared<bool>(true);
    auto done = [this, respond, left, ok, joined] {
      if (--*left > 0) return;
      if (!*ok) return respond(unavailable(settings.retry_after_s, "a database is unavailable"));
      if (!*joined) return respond(unavailable(settings.retry_after_s, "the node has not joined its cluster"));
      respond(json_response(200, R"({"status":"ready"})"));
    };
    if (membership)
      self->request(membership, std::chrono::seconds(2), joined_atom::value)
          .then([done, joined](bool serving) {
                  *joined = serving;
                  done();
                },
                [done, joined](caf::error&) {
                  *joined = false;
                  done();
                });
    for (const auto& db : dbs)
      self->request(db, std::chrono::seconds(2), ping_atom::value)
          .then([done](bool) { done(); },
                [done, ok](caf::error&) {
                  *ok = false;
                  done();
                });
  });
}

// --- inventory ---------------------------------------------------------------------------------

void Api::Impl::get_item(Call& call) {
  if (!call.who.may("inventory:read")) return call.respond(forbidden("inventory:read"));
  const auto& sku = call.path[2];
  if (!valid_sku(sku)) return call.respond(problem(404, "Not found", "no such item"));
  // The item's actor is active here: its committed state, without a trip through the actors.
  if (auto item = ctx->item_snapshots->find(sku))
    return call.respond(json_response(200, encode_item(*item, call.who.admin())));
  gateway.run([this, sku, respond = call.respond, admin = call.who.admin()](caf::event_based_actor* self) {
    ask(self, inventory_type, sku, get_atom::value)
        .then([respond, admin](ItemRecord& item) { respond(json_response(200, encode_item(item, admin))); },
              [this, respond](caf::error& err) { respond(failure(err)); });
  });
}

void Api::Impl::list_items(Call& call) {
  if (!call.who.may("inventory:read")) return call.respond(forbidden("inventory:read"));
  std::vector<std::string> skus;
  for (const auto& [key, value] : call.params) {
    if (key != "sku") continue;
    if (!valid_sku(value))
      return call.respond(problem(400, "Bad request", "invalid sku", {{"sku", "must match [A-Za-z0-9._-]{1,64}"}}));
    if (std::find(skus.begin(), skus.end(), value) == skus.end()) skus.push_back(value);
  }
  if (skus.size() > 100)
    return call.respond(problem(400, "Bad request", "give at most 100 sku parameters", {{"sku", "at most 100 values"}}));
  // None asked for: none known.
  if (skus.empty()) return call.respond(json_response(200, encode_item_list({}, call.who.admin())));
  gateway.run([this, skus, respond = call.respond, admin = call.who.admin()](caf::event_based_actor* self) {
    auto found = std::make_shared<std::vector<std::optional<ItemRecord>>>(skus.size());
    auto left = std::make_shared<size_t>(skus.size());
    auto failed = std::make_shared<caf::error>();
    auto done = [this, found, left, failed, respond, admin] {
      if (--*left > 0) return;
      if (*failed) return respond(failure(*failed));
      std::vector<ItemRecord> items;
      for (auto& f : *found)
        if (f) items.push_back(*f);
      respond(json_response(200, encode_item_list(items, admin)));
    };
    for (size_t i = 0; i < skus.size(); ++i)
      ask(self, inventory_type, skus[i], get_atom::value)
          .then(
              [found, i, done](ItemRecord& item) {
                (*found)[i] = item;
                done();
              },
              [failed, done](caf::error& err) {
                if (code_of(err) != errc::not_found) *failed = err;
                done();
              });
  });
}

void Api::Impl::put_item(Call& call) {
  if (!call.who.admin()) return call.respond(forbidden("admin"));
  const auto& sku = call.path[2];
  if (!valid_sku(sku))
    return call.respond(problem(400, "Bad request", "invalid sku", {{"sku", "must match [A-Za-z0-9._-]{1,64}"}}));
  if (!is_json_content(call.req))
    return call.respond(problem(415, "Unsupported media type", "the body must be application/json"));
  auto decoded = decode_put_item(call.req.body);
  if (!decoded.ok()) return call.respond(invalid_request(decoded, "invalid item"));
  auto in = *decoded.value;
  gateway.run([this, sku, in, respond = call.respond](caf::event_based_actor* self) {
    ask(self, inventory_type, sku, item_put{in.name, in.price_cents, in.on_hand, in.currency})
        .then([respond](item_put_result& r) {
                respond(json_response(r.created ? 201 : 200, encode_item(r.item, true)));
              },
              [this, respond](caf::error& err) {
                if (code_of(err) == errc::conflict)
                  return respond(problem(409, "Conflict", "on_hand would fall below the reserved units"));
                respond(failure(err));
              });
  });
}

void Api::Impl::adjust_item(Call& call) {
  if (!call.who.admin()) return call.respond(forbidden("admin"));
  const auto& sku = call.path[2];
  if (!valid_sku(sku)) return call.respond(problem(404, "Not found", "no such item"));
  if (!is_json_content(call.req))
    return call.respond(problem(415, "Unsupported media type", "the body must be application/json"));
  auto decoded = decode_adjust(call.req.body);
  if (!decoded.ok()) return call.respond(invalid_request(decoded, "invalid adjustment"));
  auto delta = *decoded.value;
  gateway.run([this, sku, delta, respond = call.respond](caf::event_based_actor* self) {
    ask(self, inventory_type, sku, item_adjust{delta})
        .then([respond](ItemRecord& item) { respond(json_response(200, encode_item(item, true))); },
              [this, respond](caf::error& err) {
                if (code_of(err) == errc::conflict)
                  return respond(problem(409, "Conflict", detail_of(err, "on_hand would fall below the reserved units")));
                respond(failure(err));
              });
  });
}

// --- orders ------------------------------------------------------------------------------------

namespace {
int status_for(const OrderRecord& order) {
  auto shown = shown_status(order.status);
  if (shown == "confirmed" || shown == "shipped") return 201;
  if (order.status == "rejected") return 409;
  if (order.status == "payment_failed") return 402;
  if (order.status == "cancelled") return 200;
  return 202;
}

// How long past its placement timeout a claimed Idempotency-Key is still taken as running: its
// answer is written to the orders database first (see place_order_now).
constexpr std::int64_t kClaimAnswerGraceMs = 5'000;

std::pair<int, int> utc_year_month() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  return {tm.tm_year + 1900, tm.tm_mon + 1};
}
}  // namespace

Decoded<PlaceOrderInput> Api::Impl::decode_order(std::string_view body) const {
  auto [year, month] = utc_year_month();  // the card's expiry is checked against today
  return decode_place_order(body, {settings.items_max, settings.quantity_max}, year, month);
}

void Api::Impl::place_order(Call& call) {
  if (!call.who.may("orders:write")) return call.respond(forbidden("orders:write"));
  if (!is_json_content(call.req))
    return call.respond(problem(415, "Unsupported media type", "the body must be application/json"));
  std::string key;
  if (auto* k = call.req.header("idempotency-key")) {
    if (call.req.header_count("idempotency-key") > 1 || !valid_idempotency_key(*k))
      return call.respond(problem(400, "Bad request", "Idempotency-Key must be 1 to 255 visible ASCII characters"));
    key = *k;
  }
  // An invalid request records nothing, not even its key, so the corrected request may use the
  // key (API.md: "Invalid body: 400, nothing recorded").
  auto decoded = decode_order(call.req.body);
  std::shared_ptr<PlaceOrderInput> input;  // none: invalid (now)
  std::optional<HttpResponse> invalid;
  if (decoded.ok())
    input = std::make_shared<PlaceOrderInput>(std::move(*decoded.value));
  else
    invalid = invalid_request(decoded, "invalid order");
  if (key.empty()) {
    if (invalid) return call.respond(std::move(*invalid));
    return place_order_now(call, input, "", "", new_id("ord_", ctx->clock->now_ms()));
  }
  auto customer = call.who.claims.sub;
  auto in_progress = [] { return problem(409, "Conflict", "a request with this Idempotency-Key is still in progress"); };
  {
    std::lock_guard lock(running_mutex);
    if (!running_keys.insert({customer, key}).second) return call.respond(in_progress());
  }
  auto hash = sha256_hex(card_free_body(call.req.body));
  auto release = [this, customer, key] {
    std::lock_guard lock(running_mutex);
    running_keys.erase({customer, key});
  };
  call.respond = [inner = std::move(call.respond), release](HttpResponse res) {
    release();
    inner(std::move(res));
  };
  // A valid request's key is claimed, with the id of the order it will place, before anything
  // else: the same key sent meanwhile to any node finds the claim, and so does a retry after a
  // crash. An invalid one's key is only looked up: a key used before answers as it did, since the
  // same request may have been valid then (a card expired since, a limit lowered).
  auto now = ctx->clock->now_ms();
  IdempotencyRecord claim{customer, key, hash, 0, "", now, "", new_id("ord_", now)};
  auto found = std::make_shared<std::optional<IdempotencyRecord>>();
  auto shared_call = std::make_shared<Call>(std::move(call));
  gateway.run([this, shared_call, input, invalid, found, claim, in_progress](caf::event_based_actor* self) {
    self->request(ctx->orders_db, timeout(),
                  db_write{[found, claim, look_only = !input](soci::session& s) {
                    *found = look_only ? load_idempotency(s, claim.customer_id, claim.key)
                                       : claim_idempotency(s, claim);
                    return true;
                  }})
        .then(
            [this, shared_call, input, invalid, found, claim, in_progress](bool) {
              auto& call = *shared_call;
              if (!*found) {
                if (invalid) return call.respond(*invalid);
                return place_order_now(call, input, claim.key, claim.request_hash, claim.order_id);
              }
              const auto& first = **found;
              // (A key stored before the card-free digest has a digest of the whole body.)
              if (first.request_hash != claim.request_hash && first.request_hash != sha256_hex(call.req.body))
                return call.respond(problem(422, "Unprocessable content",
                                            "this Idempotency-Key was used with a different request"));
              if (first.status == 0) {
                // Claimed, not answered yet: still running, while its placement may be (its
                // timeout, and the answer's write). Past that, its node stopped before it
                // answered: the placement is sent again, for the same order, which answers with
                // how that order ended (or places it, if it never got going).
                if (claim.created_at_ms - first.created_at_ms < settings.placement_timeout_ms + kClaimAnswerGraceMs)
                  return call.respond(in_progress());
                return place_order_now(call, input, claim.key, first.request_hash, first.order_id, true);
              }
              auto type = !first.content_type.empty() ? first.content_type
                          : first.status >= 400      ? "application/problem+json"  // stored before
                                                     : "application/json";
              HttpResponse replay{first.status, type, {{"Idempotent-Replayed", "true"}}, first.response_body};
              call.respond(std::move(replay));
            },
            [this, shared_call](caf::error& err) { shared_call->respond(failure(err)); });
  });
}

// A placement stopped by a failure: what is stored decides the answer, not the order actor (it
// may be gone, or ahead of storage). Once its card may have been charged (its payment is recorded,
// and not failed: a payment abandoned before its charge is failed), or when its node went away
// with it (its saga may go on there), the order as stored: 202 while unfinished, which the
// recovery sweep finishes, so that a retry does not place and charge it again. Stopped before
// that: the failure (503), and an unfinished order is compensated now (stock released,
// payment_failed) rather than at the next sweep; one compensated already is left as it is.
template <class Finish>
void Api::Impl::answer_stopped_placement(caf::event_based_actor* self, const std::string& id,
                                         const caf::error& err, Finish finish) {
  auto stored = std::make_shared<std::optional<OrderRecord>>();
  self->request(ctx->orders_db_for(id), timeout(), db_read{[stored, id](soci::session& s) { *stored = load_order(s, id); }})
      .then(
          [this, self, id, err, finish, stored](bool) {
            if (*stored) {
              const auto& order = **stored;
              auto status = status_for(order);
              bool maybe_charged = order.payment && order.payment->status != "failed";
              bool gone = code_of(err) == errc::unavailable;
              if (gone || maybe_charged)
                return finish(self, json_response(status, encode_order(order)));
              if (status == 202)
                ask(self, order_type, id, recover_atom::value).then([](OrderRecord&) {}, [](caf::error&) {});
              else if (order.status != "payment_failed")  // a compensated one is the failure's
                return finish(self, json_response(status, encode_order(order)));
            }
            // Not stored, and its node went away with it: its saga may still store and charge it
            // there, so an Idempotency-Key's claim is kept for it (see place_order_now).
            finish(self, failure(err), !*stored && code_of(err) == errc::unavailable);
          },
          [this, self, err, finish](caf::error&) { finish(self, failure(err), true); });
}

void Api::Impl::place_order_now(Call& call, std::shared_ptr<PlaceOrderInput> input, std::string key,
                                 std::string hash, std::string id, bool claimed_before) {
  auto customer = call.who.claims.sub;
  // Answers and, with a key, records the answer first over the key's claim: a retry after a crash
  // then replays it. A 503 stored nothing that can still be charged: the claim is dropped, so a
  // retry places anew; unless `keep_claim` (the order may still be placed where its node went,
  // or what is stored could not be read): a retry then goes to this order once the claim is
  // stale, never to another.
  auto finish = [this, customer, key, hash, id, respond = call.respond](
                    caf::event_based_actor* self, HttpResponse res, bool keep_claim = false) {
    if (key.empty() || (res.status == 503 && keep_claim)) return respond(std::move(res));
    IdempotencyRecord rec{customer, key, hash, res.status, res.body, ctx->clock->now_ms(), res.content_type, id};
    self->request(ctx->orders_db, timeout(), db_write{[rec](soci::session& s) {
                    if (rec.status == 503) drop_idempotency_claim(s, rec.customer_id, rec.key, rec.order_id);
                    else save_idempotency(s, rec);
                    return true;
                  }})
        .then([respond, res](bool) { respond(res); }, [respond, res](caf::error&) { respond(res); });
  };
  if (claimed_before) {
    // The key's claim went stale (its node stopped before it answered): the order it claimed is
    // answered as stored (not as an activation holds it: that may be ahead of storage, and the
    // answer is kept under the key), and placed (under the same id) only if it never was. Not
    // sent as a placement first: that would set stock aside again for a finished order.
    auto rest = std::make_shared<Call>(std::move(call));
    gateway.run([this, id, finish, rest, input, key, hash](caf::event_based_actor* self) {
      auto stored = std::make_shared<std::optional<OrderRecord>>();
      self->request(ctx->orders_db_for(id), timeout(), db_read{[stored, id](soci::session& s) { *stored = load_order(s, id); }})
          .then(
              [this, self, id, finish, rest, input, key, hash, stored](bool) {
                if (!*stored) {
                  // Never stored: placed now, under the claimed id, if the request is valid now.
                  if (input) return place_order_now(*rest, input, key, hash, id);
                  return rest->respond(invalid_request(decode_order(rest->req.body), "invalid order"));
                }
                if (input) input->card.wipe();
                auto status = status_for(**stored);
                if (status == 202)  // unfinished: the sweep would finish it; now is sooner
                  ask(self, order_type, id, recover_atom::value).then([](OrderRecord&) {}, [](caf::error&) {});
                finish(self, json_response(status, encode_order(**stored)));
              },
              [this, self, finish](caf::error& err) { finish(self, failure(err), true); });
    });
    return;
  }
  gateway.run([this, id, input, customer, finish](caf::event_based_actor* self) {
    order_place msg{customer, input->lines, std::move(input->card)};
    input->card.wipe();
    // The placement timeout is kept by the node's Deadlines, not CAF's clock (runtime/deadlines.hpp).
    request_within<OrderRecord>(
        self, *ctx->deadlines, settings.placement_timeout_ms, ctx->route_for(order_type),
        [self, finish](OrderRecord& order) { finish(self, json_response(status_for(order), encode_order(order))); },
        [this, self, id, finish](caf::error& err) {
          if (err == caf::sec::request_timeout) {
            // Still running: answer 202 with the order as it stands; it finishes in the background.
            // Stopped meanwhile: what is stored decides, as below (not stored: it failed, 503).
            ask(self, order_type, id, get_atom::value)
                .then([self, finish](OrderRecord& order) { finish(self, json_response(202, encode_order(order))); },
                      [this, self, id, finish](caf::error& e) {
                        auto err = code_of(e) == errc::not_found ? make_error(errc::db_unavailable) : e;
                        answer_stopped_placement(self, id, err, finish);
                      });
            return;
          }
          answer_stopped_placement(self, id, err, finish);
        },
        route_atom::value, order_type, id, caf::make_message(std::move(msg)));
  });
}

void Api::Impl::get_order(Call& call) {
  if (!call.who.may("orders:read")) return call.respond(forbidden("orders:read"));
  const auto& id = call.path[2];
  if (!valid_order_id(id)) return call.respond(problem(404, "Not found", "no such order"));
  gateway.run([this, id, respond = call.respond, who = call.who](caf::event_based_actor* self) {
    ask(self, order_type, id, get_atom::value)
        .then(
            [respond, who](OrderRecord& order) {
              if (!who.admin() && order.customer_id != who.claims.sub)
                return respond(problem(404, "Not found", "no such order"));
              respond(json_response(200, encode_order(order)));
            },
            [this, respond](caf::error& err) { respond(failure(err)); });
  });
}

void Api::Impl::list_orders(Call& call) {
  if (!call.who.may("orders:read")) return call.respond(forbidden("orders:read"));
  int limit = 20;
  std::string cursor;
  for (const auto& [key, value] : call.params) {
    if (key == "limit") {
      const std::string& v = value;
      bool digits = !v.empty() && v.size() <= 3 && std::all_of(v.begin(), v.end(), ::isdigit);
      limit = digits ? std::stoi(v) : 0;
      if (limit < 1 || limit > 100)
        return call.respond(problem(400, "Bad request", "limit must be 1 to 100", {{"limit", "must be an integer from 1 to 100"}}));
    } else if (key == "cursor") {
      cursor = value;
      if (!valid_order_id(cursor))
        return call.respond(problem(400, "Bad request", "invalid cursor", {{"cursor", "is not a cursor this API issued"}}));
    }
  }
  auto customer = call.who.claims.sub;
  gateway.run([this, customer, cursor, limit, respond = call.respond](caf::event_based_actor* self) {
    auto page = std::make_shared<std::vector<OrderRecord>>();
    self->request(ctx->orders_reader, timeout(), db_read{[page, customer, cursor, limit](soci::session& s) {
                    *page = emporium::list_orders(s, customer, cursor, limit + 1);
                  }})
        .then(
            [page, limit, respond](bool) {
              std::optional<std::string> next;
              if (static_cast<int>(page->size()) > limit) {
                page->resize(limit);
                next = page->back().id;
              }
              respond(json_response(200, encode_order_page(*page, next)));
            },
            [this, respond](caf::error& err) { respond(failure(err)); });
  });
}

void Api::Impl::order_command(Call& call, bool ship) {
  if (ship ? !call.who.admin() : !call.who.may("orders:write"))
    return call.respond(forbidden(ship ? "admin" : "orders:write"));
  const auto& id = call.path[2];
  if (!valid_order_id(id)) return call.respond(problem(404, "Not found", "no such order"));
  gateway.run([this, id, ship, respond = call.respond, who = call.who](caf::event_based_actor* self) {
    // Ownership first: another customer's order is 404, never 403.
    ask(self, order_type, id, get_atom::value)
        .then(
            [this, self, id, ship, respond, who](OrderRecord& order) {
              if (!who.admin() && order.customer_id != who.claims.sub)
                return respond(problem(404, "Not found", "no such order"));
              auto command = ship ? caf::make_message(ship_atom::value) : caf::make_message(cancel_atom::value);
              self->request(ctx->route_for(order_type), timeout(), route_atom::value, order_type,
                            id, std::move(command))
                  .then([respond](OrderRecord& o) { respond(json_response(200, encode_order(o))); },
                        [this, respond](caf::error& err) { respond(failure(err)); });
            },
            [this, respond](caf::error& err) { respond(failure(err)); });
  });
}

}  // namespace emporium
