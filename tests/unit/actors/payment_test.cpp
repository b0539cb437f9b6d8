// The payment session actor on a real node: outcomes, re-delivery, refunds, and that the stored
// row carries brand and last4 only.
#include <atomic>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include <soci/soci.h>

#include "runtime/persistence.hpp"
#include "runtime/store.hpp"
#include "tests/unit/actors/node_fixture.hpp"

namespace emporium::testing {
namespace {

class PaymentActor : public NodeFixture {
 protected:
  // Stores `rec` as the payment's row, as an earlier activation (or the order) left it.
  void store_payment(const PaymentRecord& rec) {
    caf::scoped_actor self{*system_};
    self->request(node_.ctx->orders_db, std::chrono::seconds(5),
                  db_write{[rec](soci::session& s) { return save_payment(s, rec, 0); }})
        .receive([](bool applied) { EXPECT_TRUE(applied); },
                 [](caf::error& e) { FAIL() << caf::to_string(e); });
  }
};

TEST_F(PaymentActor, CaptureStoresBrandAndLast4Only) {
  auto r = ask<PaymentRecord>(payment_type, "pay_1",
                              payment_charge{"ord_1", 1500, "USD", card("5555555555554444", "987")});
  ASSERT_TRUE(r.value);
  EXPECT_EQ(r.value->status, "captured");
  EXPECT_EQ(r.value->brand, "mastercard");
  EXPECT_EQ(r.value->last4, "4444");
  caf::scoped_actor self{*system_};
  std::string row;
  self->request(node_.ctx->orders_db, std::chrono::seconds(5), db_read{[&row](soci::session& s) {
                  soci::rowset<soci::row> rows = s.prepare << "SELECT * FROM payments";
                  for (const auto& r : rows)
                    for (std::size_t i = 0; i < r.size(); ++i)
                      if (r.get_properties(i).get_data_type() == soci::dt_string &&
                          r.get_indicator(i) == soci::i_ok)
                        row += r.get<std::string>(i) + "|";
                }})
      .receive([](bool) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
  EXPECT_NE(row.find("4444"), std::string::npos);
  EXPECT_EQ(row.find("5555555555554444"), std::string::npos);
  EXPECT_EQ(row.find("987"), std::string::npos);
}

TEST_F(PaymentActor, RedeliveredChargeAnswersTheSameOutcomeWithoutChargingAgain) {
  auto first = ask<PaymentRecord>(payment_type, "pay_2",
                                  payment_charge{"ord_2", 100, "USD", card("4000000000000002")});
  auto again = ask<PaymentRecord>(payment_type, "pay_2",
                                  payment_charge{"ord_2", 100, "USD", card("4000000000000002")});
  ASSERT_TRUE(first.value && again.value);
  EXPECT_EQ(first.value->status, "declined");
  EXPECT_EQ(first.value->failure_reason, "card_declined");
  EXPECT_EQ(again.value->version, first.value->version);
  EXPECT_EQ(provider_->charges, 1);
}

TEST_F(PaymentActor, RefundOfCaptureIsRecordedOnce) {
  ASSERT_TRUE(ask<PaymentRecord>(payment_type, "pay_3",
                                 payment_charge{"ord_3", 100, "USD", card("4242424242424242")})
                  .value);
  auto refunded = ask<PaymentRecord>(payment_type, "pay_3", refund_atom::value);
  ASSERT_TRUE(refunded.value);
  EXPECT_EQ(refunded.value->status, "refunded");
  auto again = ask<PaymentRecord>(payment_type, "pay_3", refund_atom::value);
  EXPECT_EQ(again.value->status, "refunded");
  EXPECT_EQ(provider_->refunds, 1);
}

TEST_F(PaymentActor, RefundOfAnUndecidedPaymentVoidsItAtTheProvider) {
  // As a crash between the provider call and the write would leave it.
  PaymentRecord pending{"pay_4", "ord_4", "pending", "", "visa", "4242", 12, 2030, "", 500, "USD", 1};
  store_payment(pending);
  auto r = ask<PaymentRecord>(payment_type, "pay_4", refund_atom::value);
  ASSERT_TRUE(r.value);
  EXPECT_EQ(r.value->status, "failed");
  EXPECT_EQ(provider_->refunds, 1);  // the provider may have captured it: voided there too
  EXPECT_EQ(ask<PaymentRecord>(payment_type, "pay_4", refund_atom::value).value->status, "failed");
  EXPECT_EQ(provider_->refunds, 1);
}

// An intent whose charge was never sent (its order was cancelled first) is settled as failed,
// without asking the provider; a decided payment is left as it is.
TEST_F(PaymentActor, AbandonedIntentFailsWithoutTheProvider) {
  PaymentRecord pending{"pay_5", "ord_5", "pending", "", "visa", "4242", 12, 2030, "", 500, "USD", 1};
  store_payment(pending);
  auto r = ask<PaymentRecord>(payment_type, "pay_5", abandon_atom::value);
  ASSERT_TRUE(r.value) << to_string(r.code());
  EXPECT_EQ(r.value->status, "failed");
  EXPECT_EQ(provider_->refunds, 0);
  EXPECT_EQ(provider_->charges, 0);
  ASSERT_TRUE(ask<PaymentRecord>(payment_type, "pay_6",
                                 payment_charge{"ord_6", 100, "USD", card("4242424242424242")})
                  .value);
  EXPECT_EQ(ask<PaymentRecord>(payment_type, "pay_6", abandon_atom::value).value->status, "captured");
  EXPECT_EQ(ask<PaymentRecord>(payment_type, "pay_none", abandon_atom::value).code(), errc::not_found);
}

// A charge that says its order stored the intent seeds the activation without a load. When storage
// is ahead of that (the payment was decided already), the decided record is the answer.
TEST_F(PaymentActor, ChargeSeededWithAStaleIntentAnswersTheStoredOutcome) {
  auto first = ask<PaymentRecord>(payment_type, "pay_7",
                                  payment_charge{"ord_7", 700, "USD", card("4242424242424242"), 0});
  ASSERT_TRUE(first.value);
  ASSERT_EQ(first.value->status, "captured");
  EXPECT_TRUE(passivate(payment_type, "pay_7"));
  auto again = ask<PaymentRecord>(payment_type, "pay_7",
                                  payment_charge{"ord_7", 700, "USD", card("4242424242424242"), 1});
  ASSERT_TRUE(again.value) << to_string(again.code());
  EXPECT_EQ(again.value->status, "captured");
  EXPECT_EQ(again.value->version, first.value->version);
  EXPECT_EQ(again.value->provider_ref, first.value->provider_ref);
}

// The same, passivated while its write is in flight: once it has answered with the stored record
// it stops, as asked, and the registry no longer counts it alive.
TEST_F(PaymentActor, StaleChargePassivatedMidWriteStopsAfterAnswering) {
  auto first = ask<PaymentRecord>(payment_type, "pay_8",
                                  payment_charge{"ord_8", 800, "USD", card("4242424242424242"), 0});
  ASSERT_TRUE(first.value);
  EXPECT_TRUE(passivate(payment_type, "pay_8"));
  // Down, so that the charge below activates it at once (a call for an activation still stopping
  // waits for it at the registry, and the passivation below would find nothing active).
  ASSERT_TRUE(all_down(payment_type));
  caf::scoped_actor self{*system_};
  const auto& registry = node_.registries.at(payment_type);
  auto charge = self->request(registry, std::chrono::seconds(20), route_atom::value, payment_type,
                              std::string("pay_8"),
                              caf::make_message(payment_charge{"ord_8", 800, "USD", card("4242424242424242"), 1}));
  // Behind the charge at the registry: the stop reaches the payment while its write is out.
  self->send(registry, passivate_atom::value, std::string("pay_8"));
  charge.receive([](PaymentRecord& p) { EXPECT_EQ(p.status, "captured"); },
                 [](caf::error& err) { ADD_FAILURE() << to_string(err); });
  EXPECT_TRUE(all_down(payment_type));  // well before its terminal passivation timer (5 s)
}

// Writes commit one at a time (a write is answered as the persistence actor takes it), and the
// orders database can be held: so a test can order the answer of a payment's write, its reread,
// and a stop exactly.
class PaymentActorHeldDb : public PaymentActor {
 protected:
  void configure(Config& c) override { c.database.batch_size_max = 1; }

  // Holds the orders database's actor inside a read (queued behind what it has now) until
  // released; entered() waits until it is held.
  struct Hold {
    std::shared_ptr<std::promise<void>> in = std::make_shared<std::promise<void>>();
    std::promise<void> out;
    std::shared_future<void> released = out.get_future().share();
    bool done = false;
    void entered() { in->get_future().wait(); }
    void release() {
      if (!done) out.set_value();
      done = true;
    }
    ~Hold() { release(); }
  };
  std::unique_ptr<Hold> hold_orders_db() {
    auto h = std::make_unique<Hold>();
    caf::anon_send(node_.ctx->orders_db,
                   db_read{[in = h->in, released = h->released](soci::session&) {
                     in->set_value();
                     released.wait();
                   }});
    return h;
  }
};

// The deterministic form of the test above: the stale charge's write is answered (refused) before
// the stop arrives, so the stop finds the payment rereading its row after the lost write, with the
// charge's caller still waiting. It stops only after answering.
TEST_F(PaymentActorHeldDb, StopWhileRereadingAfterALostWriteAnswersFirst) {
  auto first = ask<PaymentRecord>(payment_type, "pay_9",
                                  payment_charge{"ord_9", 900, "USD", card("4242424242424242"), 0});
  ASSERT_TRUE(first.value);
  ASSERT_TRUE(passivate(payment_type, "pay_9"));
  const auto& registry = node_.registries.at(payment_type);
  caf::scoped_actor self{*system_};
  caf::scoped_actor caller{*system_};
  ASSERT_TRUE(all_down(payment_type));  // so the charge below activates it at once
  auto h1 = hold_orders_db();
  h1->entered();
  auto charge = caller->request(registry, std::chrono::seconds(5), route_atom::value, payment_type,
                                std::string("pay_9"),
                                caf::make_message(payment_charge{"ord_9", 900, "USD", card("4242424242424242"), 1}));
  caf::actor payment;
  self->request(registry, std::chrono::seconds(5), find_atom::value, std::string("pay_9"))
      .receive([&](ActiveEntity& e) { payment = e.handle; },
               [](caf::error& err) { FAIL() << to_string(err); });
  ASSERT_TRUE(payment);
  // Answered after the charge: its write (expecting version 1; 2 is stored) is at the database.
  self->request(payment, std::chrono::seconds(5), mailbox_atom::value)
      .receive([](std::size_t) {}, [](caf::error& err) { FAIL() << to_string(err); });
  auto h2 = hold_orders_db();  // behind the write
  h1->release();
  h2->entered();  // the write was refused and answered: the payment's reread queues behind h2
  ASSERT_TRUE(passivate(payment_type, "pay_9"));
  // Answered (or bounced, had it stopped) after the stop.
  self->request(payment, std::chrono::seconds(5), mailbox_atom::value)
      .receive([](std::size_t) {}, [](caf::error&) {});
  h2->release();
  charge.receive([](PaymentRecord& p) { EXPECT_EQ(p.status, "captured"); },
                 [](caf::error& err) { ADD_FAILURE() << to_string(err); });
  EXPECT_TRUE(all_down(payment_type));
}

TEST_F(PaymentActor, UnknownPaymentIsNotFound) {
  EXPECT_EQ(ask<PaymentRecord>(payment_type, "pay_none", get_atom::value).code(), errc::not_found);
  EXPECT_EQ(ask<PaymentRecord>(payment_type, "pay_none", refund_atom::value).code(), errc::not_found);
}

TEST_F(PaymentActor, CardHelpersKnowBrandsAndLuhn) {
  EXPECT_TRUE(luhn_valid("4242424242424242"));
  EXPECT_FALSE(luhn_valid("4242424242424241"));
  EXPECT_FALSE(luhn_valid("42424242a2424242"));
  EXPECT_EQ(card("4242424242424242").brand(), "visa");
  EXPECT_EQ(card("5555555555554444").brand(), "mastercard");
  EXPECT_EQ(card("378282246310005").brand(), "amex");
  SecretString secret("4242424242424242");
  secret.wipe();
  EXPECT_TRUE(secret.empty());
}

// A provider whose calls wait until it is opened (a slow provider over the network).
struct GatedProvider final : PaymentProvider {
  std::mutex mutex;
  std::condition_variable opened;
  bool open = false;
  std::atomic<int> charges{0};
  bool blocking() const override { return true; }
  ChargeResult charge(const ChargeRequest& request) override {
    charges += 1;
    std::unique_lock lock(mutex);
    opened.wait(lock, [this] { return open; });
    return {ChargeOutcome::captured, "ref_" + request.payment_id};
  }
  bool refund(const std::string&, std::int64_t) override { return true; }
  void release() {
    {
      std::lock_guard lock(mutex);
      open = true;
    }
    opened.notify_all();
  }
};

// The provider's calls at their limits: with one thread and room for one waiting call, a second
// call waits and a third is refused at once (a charge as a transient error: not made); the one
// waiting runs once the thread is free; a charge that waited past its time is not made.
TEST(ProviderCalls, OneThreadOneWaitingAndTheNextRefused) {
  caf::actor_system_config config;
  caf::actor_system system{config};
  auto provider = std::make_shared<GatedProvider>();
  auto calls = spawn_provider_calls(system, provider, 1, 1);
  {
    caf::scoped_actor self{system};
    auto later = steady_ms() + 60'000;
    auto charge = [&](const std::string& id, std::int64_t not_after) {
      return self->request(calls, std::chrono::seconds(10), provider_charge{id, 100, "USD", Card{}, not_after});
    };
    auto a = charge("pay_a", later);
    for (int i = 0; i < 500 && provider->charges.load() < 1; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_EQ(provider->charges.load(), 1);  // a is on the thread
    auto b = charge("pay_b", later);         // waits
    auto c = charge("pay_c", later);         // refused
    auto expect = [](auto& handle, ChargeOutcome outcome, const std::string& ref) {
      handle.receive([&](ChargeResult& r) {
        EXPECT_EQ(r.outcome, outcome);
        EXPECT_EQ(r.provider_ref, ref);
      }, [](caf::error& e) { FAIL() << caf::to_string(e); });
    };
    expect(c, ChargeOutcome::transient_error, "");
    provider->release();
    expect(a, ChargeOutcome::captured, "ref_pay_a");
    expect(b, ChargeOutcome::captured, "ref_pay_b");
    EXPECT_EQ(provider->charges.load(), 2);
    auto d = charge("pay_d", steady_ms() - 1);  // waited past its time: not made
    expect(d, ChargeOutcome::transient_error, "");
    EXPECT_EQ(provider->charges.load(), 2);
  }
  caf::anon_send_exit(calls, caf::exit_reason::user_shutdown);
}

// A short secret (a cvc, kept inside the string object) moved away leaves none of its digits in
// the string it was moved from: only the size is reset by a move, so the wipe clears the buffer.
TEST_F(PaymentActor, AShortSecretMovedAwayLeavesNoDigitBehind) {
  SecretString cvc("9876");
  const char* buffer = cvc.reveal().data();  // the string's own inline buffer
  SecretString moved(std::move(cvc));
  EXPECT_EQ(moved.reveal(), "9876");
  EXPECT_TRUE(cvc.empty());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(buffer[i], '\0') << i;
  SecretString assigned;
  SecretString other("1234");
  const char* other_buffer = other.reveal().data();
  assigned = std::move(other);
  EXPECT_EQ(assigned.reveal(), "1234");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(other_buffer[i], '\0') << i;
}

// What actors hold a card in: the card it is given is emptied, take() hands it on and holds none
// after, and an empty holder reads as a card with nothing in it.
TEST_F(PaymentActor, HeldCardHandsTheCardOnAndKeepsNoCopy) {
  HeldCard held;
  EXPECT_TRUE(held->number.empty());
  Card given = card("4242424242424242");
  held = std::move(given);
  EXPECT_TRUE(given.number.empty());
  EXPECT_TRUE(given.cvc.empty());
  EXPECT_EQ(held->last4(), "4242");
  Card taken = held.take();
  EXPECT_EQ(taken.number.reveal(), "4242424242424242");
  EXPECT_TRUE(held->number.empty());
  held = std::move(taken);
  held.wipe();
  EXPECT_TRUE(held->number.empty());
  EXPECT_EQ(held->exp_month, 0);
}

}  // namespace
}  // namespace emporium::testing
