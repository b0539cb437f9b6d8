// Operators' endpoints under /admin (admin scope): the cluster view, the active actors, one
// actor's state (live when active, stored otherwise) and passivation, and an HTML dashboard.
#include <algorithm>

#include <boost/json.hpp>

#include "actors/inventory.hpp"
#include "actors/order.hpp"
#include "actors/payment.hpp"
#include "http/api_impl.hpp"
#include "runtime/cluster.hpp"
#include "runtime/persistence.hpp"
#include "runtime/registry.hpp"
#include "runtime/store.hpp"

namespace emporium {
namespace json = boost::json;

namespace {

std::optional<caf::atom_value> entity_type(std::string_view name) {
  if (name == "order") return order_type;
  if (name == "inventory") return inventory_type;
  if (name == "payment") return payment_type;
  return std::nullopt;
}

const char* type_name(caf::atom_value type) {
  if (type == order_type) return "order";
  if (type == inventory_type) return "inventory";
  return "payment";
}

json::value payment_state(const PaymentRecord& p) {
  // Brand, last4 and expiry only: the card number and cvc were never stored.
  return json::object{{"id", p.id},           {"order_id", p.order_id},
                      {"status", p.status},   {"failure_reason", p.failure_reason},
                      {"brand", p.brand},     {"last4", p.last4},
                      {"exp_month", p.exp_month}, {"exp_year", p.exp_year},
                      {"amount_cents", p.amount_cents}, {"currency", p.currency},
                      {"version", p.version}};
}

json::value item_state(const ItemRecord& item, const std::vector<ReservationRecord>& reservations) {
  json::object o = json::parse(encode_item(item, true)).as_object();
  o["version"] = item.version;
  json::array rs;
  for (const auto& r : reservations)
    rs.push_back({{"order_id", r.order_id},
                  {"quantity", r.quantity},
                  {"state", to_string(r.state)},
                  {"expires_at_ms", r.expires_at_ms}});
  o["reservations"] = std::move(rs);
  return o;
}

json::value order_state(const OrderRecord& o) {
  json::object out = json::parse(encode_order(o)).as_object();
  out["version"] = o.version;
  return out;
}


// The state of an entity as stored, read on its database's read connection; none when it is not
// stored. `then(std::optional<json::value>)`, or `failed(caf::error&)`.
template <class Then, class Failed>
void read_stored(caf::event_based_actor* self, const NodeContext& ctx, caf::atom_value type,
                 const std::string& id, Then then, Failed failed) {
  auto out = std::make_shared<std::optional<json::value>>();
  auto db = type == inventory_type ? ctx.inventory_reader : ctx.orders_reader;
  self->request(db, caf::infinite, db_read{[type, id, out](soci::session& s) {
                  if (type == order_type) {
                    if (auto o = load_order(s, id)) *out = order_state(*o);
                  } else if (type == payment_type) {
                    if (auto p = load_payment(s, id)) *out = payment_state(*p);
                  } else if (auto i = load_item(s, id)) {
                    *out = item_state(i->item, i->reservations);
                  }
                }})
      .then([out, then](bool) mutable { then(std::move(*out)); }, failed);
}

}  // namespace

void Api::Impl::route_admin(Call& call) {
  if (!call.who.admin()) return call.respond(forbidden("admin"));
  const auto& p = call.path;
  const bool get = call.req.method == "GET";
  const bool post = call.req.method == "POST";
  auto refuse = [&](const char* allow) { call.respond(wrong_method(allow)); };
  if (p.size() == 1) return get ? admin_dashboard(call) : refuse("GET, HEAD");
  if (p.size() == 2 && p[1] == "cluster") return get ? admin_cluster(call) : refuse("GET, HEAD");
  if (p.size() == 2 && p[1] == "actors") return get ? admin_actors(call) : refuse("GET, HEAD");
  if ((p.size() == 4 || (p.size() == 5 && p[4] == "passivate")) && p[1] == "actors") {
    if (p.size() == 4 && !get) return refuse("GET, HEAD");
    if (p.size() == 5 && !post) return refuse("POST");
    auto type = entity_type(p[2]);
    if (!type) return call.respond(problem(404, "Not found", "unknown actor type"));
    // An id that no actor of the type can have is not asked for (nor sent to a database).
    bool valid = *type == order_type     ? valid_order_id(p[3])
                 : *type == payment_type ? valid_made_id(p[3], "pay_")
                                         : valid_sku(p[3]);
    if (!valid) return call.respond(problem(404, "Not found", "no such actor"));
    if (p.size() == 4) return admin_actor(call, *type, p[3]);
    return admin_passivate(call, *type, p[3]);
  }
  call.respond(problem(404, "Not found", "no such admin endpoint"));
}

void Api::Impl::admin_cluster(Call& call) {
  gateway.run([this, respond = call.respond](caf::event_based_actor* self) {
    auto counts = std::make_shared<std::map<std::string, std::int64_t>>();
    auto left = std::make_shared<size_t>(ctx->registries.size());
    // A single node reports itself from its registries.
    auto done = [this, counts, left, respond] {
      if (--*left > 0) return;
      json::object active;
      for (auto& [k, v] : *counts) active[k] = v;
      json::object member{{"name", settings.node_name},
                          {"cluster_address", settings.cluster_address},
                          {"http_address", settings.http_address},
                          {"status", "up"},
                          {"last_heartbeat", rfc3339(ctx->clock->now_ms())},
                          {"active_actors", std::move(active)}};
      json::object body{{"self", settings.node_name}, {"members", json::array{std::move(member)}}};
      respond(json_response(200, json::serialize(body)));
    };
    if (membership) {
      // A cluster: the membership table as this node sees it; counts are each node's last beat.
      self->request(membership, std::chrono::seconds(2), members_atom::value)
          .then(
              [this, respond](std::vector<MemberStatus>& members) {
                json::array rows;
                // A member that left (stopped, or never got to serve) is `down` to the API, whose
                // statuses are up, suspect and down; `left` tells it from one that failed.
                for (const auto& m : members)
                  rows.push_back(json::object{
                      {"name", m.name},
                      {"cluster_address", m.cluster_address},
                      {"http_address", m.http_address},
                      {"status", m.status == "left" ? "down" : m.status},
                      {"left", m.status == "left"},
                      {"incarnation", m.incarnation},
                      {"last_heartbeat", rfc3339(m.last_heartbeat_ms)},
                      {"active_actors", json::object{{"order", m.active_order},
                                                     {"inventory", m.active_inventory},
                                                     {"payment", m.active_payment}}}});
                json::object body{{"self", settings.node_name}, {"members", std::move(rows)}};
                respond(json_response(200, json::serialize(body)));
              },
              [this, respond](caf::error&) {
                respond(unavailable(settings.retry_after_s, "the membership view is unavailable"));
              });
      return;
    }
    for (const auto& [type, registry] : ctx->registries)
      self->request(registry, timeout(), stats_atom::value)
          .then(
              [counts, done, name = type_name(type)](RegistryStats& s) {
                (*counts)[name] = s.active;
                done();
              },
              [done](caf::error&) { done(); });
  });
}

// --- the operator agent: one per node, reached through the router from any node ----------------

namespace {

caf::behavior admin_agent(caf::event_based_actor* self, std::map<caf::atom_value, caf::actor> registries,
                          std::string node) {
  auto list = [=](caf::atom_value type, std::int64_t limit) -> caf::result<std::vector<ActiveView>> {
    auto reg = registries.find(type);
    if (reg == registries.end()) return make_error(errc::not_found);
    auto rp = self->make_response_promise<std::vector<ActiveView>>();
    self->request(reg->second, std::chrono::seconds(5), list_atom::value, limit)
        .then(
            [=](std::vector<ActiveEntity>& entities) mutable {
              auto rows = std::make_shared<std::vector<ActiveView>>();
              auto pending = std::make_shared<size_t>(entities.size() + 1);
              auto step = [rp, rows, pending]() mutable {
                if (--*pending == 0) rp.deliver(std::move(*rows));
              };
              for (auto& e : entities) {
                ActiveView v{type_name(type), e.id, node, 0, e.messages, e.activated_at_ms, e.last_active_ms};
                // Each entity reports its own mailbox depth (only its own thread may read it).
                self->request(e.handle, std::chrono::seconds(1), mailbox_atom::value)
                    .then(
                        [rows, v, step](size_t depth) mutable {
                          v.mailbox = static_cast<std::int64_t>(depth);
                          rows->push_back(std::move(v));
                          step();
                        },
                        [rows, v, step](caf::error&) mutable {
                          rows->push_back(std::move(v));  // it stopped meanwhile
                          step();
                        });
              }
              step();
            },
            [rp](caf::error& err) mutable { rp.deliver(err); });
    return rp;
  };
  auto find = [=](caf::atom_value type, const std::string& id) -> caf::result<EntityView> {
    auto reg = registries.find(type);
    if (reg == registries.end()) return make_error(errc::not_found);
    auto rp = self->make_response_promise<EntityView>();
    auto inactive = [rp, node](caf::error&) mutable { rp.deliver(EntityView{false, node, ""}); };
    self->request(reg->second, std::chrono::seconds(5), find_atom::value, id)
        .then(
            [=](ActiveEntity& e) mutable {
              auto live = [rp, node](json::value state) mutable {
                rp.deliver(EntityView{true, node, json::serialize(state)});
              };
              if (type == order_type)
                self->request(e.handle, std::chrono::seconds(5), get_atom::value)
                    .then([live](OrderRecord& o) mutable { live(order_state(o)); }, inactive);
              else if (type == payment_type)
                self->request(e.handle, std::chrono::seconds(5), get_atom::value)
                    .then([live](PaymentRecord& p) mutable { live(payment_state(p)); }, inactive);
              else
                self->request(e.handle, std::chrono::seconds(5), inspect_atom::value)
                    .then([live](item_state_view& v) mutable { live(item_state(v.item, v.reservations)); },
                          inactive);
            },
            inactive);
    return rp;
  };
  auto passivate = [=](caf::atom_value type, const std::string& id) -> caf::result<caf::message> {
    auto reg = registries.find(type);
    if (reg == registries.end()) return make_error(errc::not_found);
    return self->delegate(reg->second, passivate_atom::value, id);
  };
  return {
      [=](route_atom, caf::atom_value, const std::string&, caf::message& query) -> caf::result<caf::message> {
        if (query.match_elements<list_atom, caf::atom_value, std::int64_t>())
          return self->delegate(caf::actor_cast<caf::actor>(self), caf::make_message(
              list_atom::value, query.get_as<caf::atom_value>(1), query.get_as<std::int64_t>(2), true));
        if (query.match_elements<find_atom, caf::atom_value, std::string>())
          return self->delegate(caf::actor_cast<caf::actor>(self), caf::make_message(
              find_atom::value, query.get_as<caf::atom_value>(1), query.get_as<std::string>(2), true));
        if (query.match_elements<passivate_atom, caf::atom_value, std::string>())
          return self->delegate(caf::actor_cast<caf::actor>(self), caf::make_message(
              passivate_atom::value, query.get_as<caf::atom_value>(1), query.get_as<std::string>(2), true));
        return caf::sec::unexpected_message;
      },
      [=](list_atom, caf::atom_value type, std::int64_t limit, bool) { return list(type, limit); },
      [=](find_atom, caf::atom_value type, const std::string& id, bool) { return find(type, id); },
      [=](passivate_atom, caf::atom_value type, const std::string& id, bool) { return passivate(type, id); },
  };
}

}  // namespace

caf::actor spawn_admin_agent(caf::actor_system& system, const NodeContext& ctx, const std::string& node) {
  auto agent = system.spawn(admin_agent, ctx.registries, node);
  caf::anon_send(ctx.router, register_atom::value, admin_type, agent);
  return agent;
}

// Every node this one can reach: itself, and in a cluster each member up in its view.
template <class Then>
void Api::Impl::each_node(caf::event_based_actor* self, Then then) {
  if (!membership) return then(std::vector<std::string>{settings.node_name});
  self->request(membership, std::chrono::seconds(2), members_atom::value)
      .then(
          [this, then](std::vector<MemberStatus>& members) mutable {
            std::vector<std::string> names;
            for (const auto& m : members)
              if (m.status == "up" || m.name == settings.node_name) names.push_back(m.name);
            if (names.empty()) names.push_back(settings.node_name);  // always at least this node
            then(std::move(names));
          },
          [this, then](caf::error&) mutable { then(std::vector<std::string>{settings.node_name}); });
}

void Api::Impl::admin_actors(Call& call) {
  std::vector<caf::atom_value> types;
  std::int64_t limit = 100;
  for (const auto& [key, value] : call.params) {
    if (key == "type") {
      auto t = entity_type(value);
      if (!t) return call.respond(problem(400, "Bad request", "type must be order, inventory or payment", {{"type", "unknown type"}}));
      types.push_back(*t);
    } else if (key == "limit") {
      bool digits = !value.empty() && value.size() <= 4 && std::all_of(value.begin(), value.end(), ::isdigit);
      limit = digits ? std::stoll(value) : 0;
      if (limit < 1 || limit > 1000)
        return call.respond(problem(400, "Bad request", "limit must be 1 to 1000", {{"limit", "must be 1 to 1000"}}));
    }
  }
  if (types.empty()) types = {order_type, inventory_type, payment_type};
  gateway.run([this, types, limit, respond = call.respond](caf::event_based_actor* self) {
    each_node(self, [this, self, types, limit, respond](std::vector<std::string> nodes) {
      auto rows = std::make_shared<std::vector<ActiveView>>();
      auto left = std::make_shared<size_t>(nodes.size() * types.size());
      auto step = [rows, left, limit, respond] {
        if (--*left > 0) return;
        // Most recently active first, across the cluster; a node that did not answer is left out.
        std::sort(rows->begin(), rows->end(),
                  [](const ActiveView& a, const ActiveView& b) { return a.last_active_ms > b.last_active_ms; });
        if (static_cast<std::int64_t>(rows->size()) > limit) rows->resize(static_cast<size_t>(limit));
        json::array data;
        for (const auto& v : *rows)
          data.push_back(json::object{{"type", v.type},
                                      {"id", v.id},
                                      {"node", v.node},
                                      {"mailbox", v.mailbox},
                                      {"messages", v.messages},
                                      {"activated_at", rfc3339(v.activated_at_ms)},
                                      {"last_active_at", rfc3339(v.last_active_ms)}});
        respond(json_response(200, json::serialize(json::object{{"data", std::move(data)}})));
      };
      for (const auto& node : nodes)
        for (auto type : types)
          self->request(ctx->router, std::chrono::seconds(5), admin_atom::value, node,
                        caf::make_message(list_atom::value, type, limit))
              .then(
                  [rows, step](std::vector<ActiveView>& part) {
                    rows->insert(rows->end(), std::make_move_iterator(part.begin()),
                                 std::make_move_iterator(part.end()));
                    step();
                  },
                  [step](caf::error&) { step(); });
    });
  });
}

void Api::Impl::admin_actor(Call& call, caf::atom_value type, const std::string& id) {
  gateway.run([this, type, id, respond = call.respond](caf::event_based_actor* self) {
    auto answer = [type, id, respond](bool active, const std::string& node, json::value state) {
      respond(json_response(200, json::serialize(json::object{{"type", type_name(type)},
                                                              {"id", id},
                                                              {"node", node},
                                                              {"active", active},
                                                              {"state", std::move(state)}})));
    };
    // Not active anywhere: as stored, with the node that would activate it (the same answer from
    // every node, not the one asked).
    auto stored = [this, self, type, id, answer, respond](std::string owner) {
      read_stored(
          self, *ctx, type, id,
          [answer, respond, owner](std::optional<json::value> state) {
            if (!state) return respond(problem(404, "Not found", "no such actor"));
            answer(false, owner, std::move(*state));
          },
          [this, respond](caf::error& err) { respond(failure(err)); });
    };
    // Live where it is active (at most one node, its owner), else as stored.
    each_node(self, [this, self, type, id, answer, stored](std::vector<std::string> nodes) {
      std::sort(nodes.begin(), nodes.end());
      auto owner = nodes[rendezvous_owner(nodes, type, id)];
      auto left = std::make_shared<size_t>(nodes.size());
      auto found = std::make_shared<std::optional<EntityView>>();
      auto step = [left, found, answer, stored, owner] {
        if (--*left > 0) return;
        if (!*found) return stored(owner);
        boost::system::error_code ec;
        auto state = json::parse((*found)->state_json, ec);
        if (ec) return stored(owner);
        answer(true, (*found)->node, std::move(state));
      };
      for (const auto& node : nodes)
        self->request(ctx->router, std::chrono::seconds(5), admin_atom::value, node,
                      caf::make_message(find_atom::value, type, id))
            .then(
                [found, step](EntityView& v) {
                  if (v.active && !*found) *found = std::move(v);
                  step();
                },
                [step](caf::error&) { step(); });
    });
  });
}

void Api::Impl::admin_passivate(Call& call, caf::atom_value type, const std::string& id) {
  gateway.run([this, type, id, respond = call.respond](caf::event_based_actor* self) {
    each_node(self, [this, self, type, id, respond](std::vector<std::string> nodes) {
      auto left = std::make_shared<size_t>(nodes.size());
      auto any = std::make_shared<bool>(false);
      auto failed = std::make_shared<std::optional<caf::error>>();
      auto step = [this, self, left, any, failed, type, id, respond] {
        if (--*left > 0) return;
        if (!*any && *failed) return respond(failure(**failed));
        auto answer = [type, id, respond](bool passivated) {
          respond(json_response(200, json::serialize(json::object{
                                         {"type", type_name(type)}, {"id", id}, {"passivated", passivated}})));
        };
        if (*any) return answer(true);
        // Active nowhere: 200 for one that is stored (passivated already), 404 for one that is not
        // (as its GET).
        read_stored(
            self, *ctx, type, id,
            [this, answer, respond](std::optional<json::value> state) {
              if (!state) return respond(problem(404, "Not found", "no such actor"));
              answer(false);
            },
            [this, respond](caf::error& err) { respond(failure(err)); });
      };
      for (const auto& node : nodes)
        self->request(ctx->router, std::chrono::seconds(5), admin_atom::value, node,
                      caf::make_message(passivate_atom::value, type, id))
            .then(
                [any, step](bool was_active) {
                  *any = *any || was_active;
                  step();
                },
                [failed, step](caf::error& err) {
                  *failed = err;
                  step();
                });
    });
  });
}

void Api::Impl::admin_dashboard(Call& call) {
  // The page asks for the admin token once and reads the JSON endpoints with it.
  static const std::string page = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Emporium admin</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head>
<body><h1>Emporium</h1>
<p><label>Admin token <input id="token" size="60"></label> <button id="load">Load</button></p>
<h2>Members</h2><table id="members"></table><h2>Active actors</h2><table id="actors"></table>
<script>
const get = (path) => fetch(path, {headers: {Authorization: 'Bearer ' + document.getElementById('token').value}}).then(r => r.json());
function fill(id, rows, cols) {
  const t = document.getElementById(id); t.textContent = '';
  const head = t.insertRow(); cols.forEach(c => { const th = document.createElement('th'); th.textContent = c; head.appendChild(th); });
  rows.forEach(r => { const tr = t.insertRow(); cols.forEach(c => { tr.insertCell().textContent = typeof r[c] === 'object' ? JSON.stringify(r[c]) : r[c]; }); });
}
document.getElementById('load').onclick = async () => {
  const cluster = await get('/admin/cluster');
  fill('members', cluster.members || [], ['name', 'status', 'http_address', 'last_heartbeat', 'active_actors']);
  const actors = await get('/admin/actors?limit=200');
  fill('actors', actors.data || [], ['type', 'id', 'node', 'mailbox', 'messages', 'activated_at', 'last_active_at']);
};
</script></body></html>
)HTML";
  call.respond(HttpResponse{200, "text/html; charset=utf-8", {}, page});
}

}  // namespace emporium
