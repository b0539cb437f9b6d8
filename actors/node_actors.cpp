// Wiring of a node's actors.
#include "actors/node.hpp"

#include <algorithm>
#include <functional>

#include <spdlog/spdlog.h>

#include "actors/entity.hpp"
#include "actors/inventory.hpp"
#include "actors/order.hpp"
#include "actors/payment.hpp"
#include "runtime/cluster.hpp"
#include "runtime/registry.hpp"
#include "runtime/store.hpp"

namespace emporium {

ActorSettings actor_settings(const Config& config) {
  ActorSettings s;
  s.reservation_ttl_ms = config.orders.reservation_ttl_ms;
  s.reservation_check_ms = config.orders.reservation_check_ms;
  // In a cluster a commit is written before it is answered: its write, fenced by the item's
  // version, is what tells an activation that another one took over (and perhaps released the
  // reservation, for a second activation of its order), so that the commit goes to the current
  // one. On one node there is one activation of an item at a time.
  s.reservation_commit_delay_ms = config.cluster.enabled ? 0 : config.orders.reservation_commit_delay_ms;
  s.idle_passivate_ms = config.actors.idle_passivate_ms;
  s.terminal_passivate_ms = config.actors.terminal_passivate_ms;
  s.payment_retries_max = config.payment.retries_max;
  s.payment_retry_backoff_ms = config.payment.retry_backoff_ms;
  s.payment_timeout_ms = config.payment.timeout_ms;
  s.step_timeout_ms = config.orders.step_timeout_ms;
  s.settle_grace_ms = config.cluster.enabled ? config.cluster.sweep_grace_ms : -1;
  return s;
}

NodeActors start_node_actors(caf::actor_system& system, const Config& config,
                             std::shared_ptr<const Clock> clock,
                             std::shared_ptr<PaymentProvider> provider) {
  NodeActors node;
  auto ctx = std::make_shared<NodeContext>();
  ctx->clock = std::move(clock);
  ctx->provider = std::move(provider);
  ctx->settings = actor_settings(config);
  ctx->single_node = !config.cluster.enabled;
  ctx->absent_skus = std::make_shared<AbsentSkus>(config.actors.unknown_sku_ttl_ms, kAbsentSkusMax);
  // SQLite has one writer: more connections would only wait on each other's locks.
  auto shards = [&](const std::string& url, Database which) {
    auto parsed = parse_db_url(url);
    auto count = parsed && parsed->backend == Backend::postgresql ? config.database.connections : 1;
    std::vector<caf::actor> out;
    for (std::int64_t i = 0; i < count; ++i)
      out.push_back(spawn_persistence(system, {url, which, config.database.batch_size_max,
                                               config.database.reconnect_interval_ms, i == 0,
                                               config.database.idle_in_transaction_ms,
                                               config.database.batch_linger_us}));
    return out;
  };
  ctx->orders_shards = shards(config.database.orders, Database::orders);
  ctx->inventory_shards = shards(config.database.inventory, Database::inventory);
  ctx->orders_db = ctx->orders_shards.front();
  ctx->inventory_db = ctx->inventory_shards.front();
  // A PostgreSQL database gets a read connection of its own (it writes nothing, migrates
  // nothing). A SQLite file keeps one connection: a second one setting the file up at the same
  // time as the writer (WAL mode) can find it locked, and fail the writer's start for a second.
  auto reader = [&](const std::string& url, Database which, const caf::actor& writer) {
    auto parsed = parse_db_url(url);
    if (!parsed || parsed->backend != Backend::postgresql) return writer;
    return spawn_persistence(system, {url, which, config.database.batch_size_max,
                                      config.database.reconnect_interval_ms, false,
                                      config.database.idle_in_transaction_ms, 0, true});
  };
  ctx->orders_reader = reader(config.database.orders, Database::orders, ctx->orders_db);
  ctx->inventory_reader = reader(config.database.inventory, Database::inventory, ctx->inventory_db);
  if (ctx->provider->blocking())
    ctx->provider_calls = spawn_provider_calls(system, ctx->provider, config.payment.connections,
                                               config.payment.queue_max);
  ContextPtr shared = ctx;
  auto now = [clock = ctx->clock] { return clock->now_ms(); };
  node.registries[order_type] = spawn_registry(
      system, [shared](caf::local_actor* s, const std::string& id, caf::actor, const caf::message& first) {
        // The gateway makes a new id for each placement: nothing to load (a placement delivered
        // twice finds its row at the first write, and loads it then).
        bool fresh = first.match_elements<order_place>();
        return spawn_order(s, shared, id, fresh);
      }, now, shared->settings.idle_passivate_ms, kIdleProbesPerSweep, {}, shared->settings.terminal_passivate_ms);
  node.registries[inventory_type] = spawn_registry(
      system, [shared](caf::local_actor* s, const std::string& id, caf::actor, const caf::message&) {
        return spawn_inventory_item(s, shared, id);
      }, now, shared->settings.idle_passivate_ms);
  node.registries[payment_type] = spawn_registry(
      system, [shared](caf::local_actor* s, const std::string& id, caf::actor, const caf::message& first) {
        // A charge whose order stored the intent with its own state: that intent is the record.
        std::optional<PaymentRecord> intent;
        if (first.match_elements<payment_charge>()) intent = recorded_intent(id, first.get_as<payment_charge>(0));
        return spawn_payment(s, shared, id, std::move(intent));
      }, now, shared->settings.terminal_passivate_ms, kIdleProbesPerSweep, {},
      shared->settings.terminal_passivate_ms);
  // The context is complete before any entity can run: entities spawn only on routed messages.
  ctx->router = spawn_router(system, node.registries);
  ctx->registries = node.registries;
  node.ctx = ctx;
  return node;
}

namespace {

void purge_keys(caf::event_based_actor* self, const ContextPtr& ctx, std::int64_t keep_ms) {
  auto cutoff = ctx->clock->now_ms() - keep_ms;
  self->request(ctx->orders_db, caf::infinite, db_write{[cutoff](soci::session& s) {
                  purge_idempotency(s, cutoff);
                  return true;
                }})
      .then([](bool) {}, [](caf::error&) {});
}

// One sweep walks the unfinished orders in id order, `batch_max` at a time: it recovers the ones
// this node owns in a batch, waits until all of them answered, then reads the next batch. So a
// backlog (after an outage) is worked off at a bounded pace, and the orders that cannot finish yet
// do not keep the others from their turn.
struct SweepState {
  bool running = false;
  bool again = false;  // asked for while running: start over once done
};

void sweep_batch(caf::event_based_actor* self, const ContextPtr& ctx, const SweepSettings& settings,
                 std::shared_ptr<SweepState> state, std::string after, std::int64_t before);

// Sends `msg` to each of `ids` (entities of `type`) that this node owns, as the router says (in a
// cluster each node sweeps its own), and runs `next` once all answered; `stop` instead when the
// router could not say. `what` names them in the log.
template <class Reply>
void ask_owned(caf::event_based_actor* self, const ContextPtr& ctx, caf::atom_value type,
               const std::vector<std::string>& ids, caf::message msg, const char* what,
               std::function<void()> next, std::function<void()> stop) {
  self->request(ctx->router, caf::infinite, owned_atom::value, type, ids)
      .then(
          [self, ctx, type, msg, what, next](std::vector<std::string>& owned) {
            if (owned.empty()) return next();
            spdlog::info("recovery sweep: {} {}", owned.size(), what);
            auto left = std::make_shared<size_t>(owned.size());
            auto answered = [left, next] {
              if (--*left == 0) next();
            };
            for (const auto& id : owned)
              ask<Reply>(
                  self, ctx, type, id, [answered](Reply&) { answered(); },
                  [id, what, answered](caf::error& err) {
                    spdlog::warn("recovery sweep ({}): {} failed: {}", what, id, to_string(code_of(err)));
                    answered();
                  },
                  msg);  // already a message: passed on as it is
          },
          [stop](caf::error&) { stop(); });
}

void sweep_done(caf::event_based_actor* self, const ContextPtr& ctx, const SweepSettings& settings,
                std::shared_ptr<SweepState> state) {
  state->running = false;
  if (!state->again) return;
  state->again = false;
  state->running = true;
  sweep_batch(self, ctx, settings, state, "", ctx->clock->now_ms() - settings.grace_ms);
}

void sweep_batch(caf::event_based_actor* self, const ContextPtr& ctx, const SweepSettings& settings,
                 std::shared_ptr<SweepState> state, std::string after, std::int64_t before) {
  auto ids = std::make_shared<std::vector<std::string>>();
  auto limit = settings.batch_max;
  self->request(ctx->orders_reader, caf::infinite,
                db_read{[ids, before, after, limit](soci::session& s) { *ids = unfinished_orders(s, before, after, limit); }})
      .then(
          [self, ctx, settings, state, ids, before](bool) {
            if (ids->empty()) return sweep_done(self, ctx, settings, state);
            bool full = static_cast<std::int64_t>(ids->size()) >= settings.batch_max;
            auto next = [self, ctx, settings, state, before, full, last = ids->back()] {
              if (!full) return sweep_done(self, ctx, settings, state);
              sweep_batch(self, ctx, settings, state, last, before);
            };
            ask_owned<OrderRecord>(self, ctx, order_type, *ids, caf::make_message(recover_atom::value),
                                   "unfinished orders", next,
                                   [self, ctx, settings, state] { sweep_done(self, ctx, settings, state); });
          },
          [self, ctx, settings, state](caf::error&) {
            spdlog::warn("recovery sweep: orders database unavailable");
            sweep_done(self, ctx, settings, state);
          });
}

// Activates the items this node owns whose held reservations came due for their check while no
// message came to them (passivated, or their node went away): an item checks what came due as it
// activates (actors/inventory.hpp), so a reservation no order will claim does not wait for the
// item's next customer. `batch_max` items at a time, in sku order.
void wake_items(caf::event_based_actor* self, const ContextPtr& ctx, const SweepSettings& settings,
                std::string after) {
  const auto& actors = ctx->settings;
  // Due for their check (made reservation_check_ms ago or earlier: they expire reservation_ttl_ms
  // after they were made) or for their expiry, whichever comes first.
  auto by = ctx->clock->now_ms() + std::max<std::int64_t>(0, actors.reservation_ttl_ms - actors.reservation_check_ms);
  auto skus = std::make_shared<std::vector<std::string>>();
  auto limit = settings.batch_max;
  self->request(ctx->inventory_reader, caf::infinite,
                db_read{[skus, by, after, limit](soci::session& s) { *skus = skus_holding(s, by, after, limit); }})
      .then(
          [self, ctx, settings, skus](bool) {
            if (skus->empty()) return;
            bool full = static_cast<std::int64_t>(skus->size()) >= settings.batch_max;
            auto next = [self, ctx, settings, full, last = skus->back()] {
              if (full) wake_items(self, ctx, settings, last);
            };
            ask_owned<ItemRecord>(self, ctx, inventory_type, *skus, caf::make_message(get_atom::value),
                                  "items with held reservations due", next, [] {});
          },
          [](caf::error&) { spdlog::warn("recovery sweep: inventory database unavailable"); });
}

void sweep(caf::event_based_actor* self, const ContextPtr& ctx, const SweepSettings& settings,
           const std::shared_ptr<SweepState>& state) {
  wake_items(self, ctx, settings, "");
  if (state->running) {
    state->again = true;
    return;
  }
  state->running = true;
  sweep_batch(self, ctx, settings, state, "", ctx->clock->now_ms() - settings.grace_ms);
}

}  // namespace

caf::actor spawn_recovery_sweep(caf::actor_system& system, ContextPtr ctx, SweepSettings settings) {
  return system.spawn([ctx, settings](caf::event_based_actor* self) -> caf::behavior {
    auto state = std::make_shared<SweepState>();
    self->send(self, recover_atom::value);
    return {
        [=](sweep_atom) { sweep(self, ctx, settings, state); },
        [=](recover_atom) {
          sweep(self, ctx, settings, state);
          purge_keys(self, ctx, settings.idempotency_keep_ms);
          if (settings.interval_ms > 0) self->delayed_send(self, ms(settings.interval_ms), recover_atom::value);
        },
    };
  });
}

void add_message_types(caf::actor_system_config& config) {
  config.add_message_type<order_place>("emporium::order_place")
      .add_message_type<OrderRecord>("emporium::OrderRecord")
      .add_message_type<item_put>("emporium::item_put")
      .add_message_type<item_put_result>("emporium::item_put_result")
      .add_message_type<item_adjust>("emporium::item_adjust")
      .add_message_type<item_reserve>("emporium::item_reserve")
      .add_message_type<item_commit>("emporium::item_commit")
      .add_message_type<item_sync>("emporium::item_sync")
      .add_message_type<item_release>("emporium::item_release")
      .add_message_type<item_ship>("emporium::item_ship")
      .add_message_type<item_state_view>("emporium::item_state_view")
      .add_message_type<ItemRecord>("emporium::ItemRecord")
      .add_message_type<payment_charge>("emporium::payment_charge")
      .add_message_type<provider_charge>("emporium::provider_charge")
      .add_message_type<provider_refund>("emporium::provider_refund")
      .add_message_type<ChargeResult>("emporium::ChargeResult")
      .add_message_type<PaymentRecord>("emporium::PaymentRecord");
  add_cluster_message_types(config);
}

namespace {
void kill(const caf::actor& a) {
  if (a) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}
}  // namespace

void close_node_actors(caf::actor_system& system, NodeActors& node) {
  node.ctx->deadlines->stop();
  kill(node.sweeper);
  // On a single node calls go straight to the registries (NodeContext::route_for): they refuse
  // every call from now on, as the router's stop makes them unreachable in a cluster.
  for (auto& [_, r] : node.registries) caf::anon_send(r, close_atom::value);
  kill(node.ctx->router);
  kill(node.ctx->provider_calls);  // and its callers, linked to it
  // Items keep a commit in memory for a moment (actors/inventory.cpp, item_commit): once no call
  // can reach them any more (the registries are closed, the router is gone), they write what they
  // keep, before the persistence actors flush and stop.
  if (auto items = node.registries.find(inventory_type); items != node.registries.end()) {
    caf::scoped_actor self{system};
    if (node.ctx->router) self->wait_for(node.ctx->router);
    self->request(items->second, std::chrono::seconds(5), flush_atom::value)
        .receive([](bool) {}, [](caf::error& err) {
          spdlog::warn("items did not all write their commits before the stop: {}", caf::to_string(err));
        });
  }
}

void stop_node_actors(caf::actor_system& system, NodeActors& node) {
  close_node_actors(system, node);
  for (auto& [_, r] : node.registries) kill(r);
  // Persistence actors drain their mailbox (and so their pending batch) before the exit message.
  for (const auto* shards : {&node.ctx->orders_shards, &node.ctx->inventory_shards})
    for (const auto& db : *shards) {
      caf::anon_send(db, flush_atom::value);
      kill(db);
    }
  for (const auto& reader : {node.ctx->orders_reader, node.ctx->inventory_reader})
    if (reader != node.ctx->orders_db && reader != node.ctx->inventory_db) kill(reader);
  // Detached (persistence) actors end only once every handle to them is gone, and their threads
  // must be done before the actor system is destroyed: the caller's other handles must already
  // be released (the edge's context).
  node = NodeActors{};
  system.await_all_actors_done();
}

}  // namespace emporium
