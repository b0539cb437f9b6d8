// Card data on its way to the provider: it lives only in memory, is wiped when destroyed, and
// prints as "***" so no log or error can hold it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <type_traits>

#include <caf/deserializer.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/serializer.hpp>

namespace emporium {

// Overwrites the whole buffer of a string that held card data (not just its size: a string moved
// from keeps the characters of its inline buffer past the first), then empties it.
void cleanse(std::string& s) noexcept;

class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string value) : value_(std::move(value)) {}
  SecretString(const SecretString& other) : value_(other.value_) {}
  SecretString(SecretString&& other) noexcept : value_(std::move(other.value_)) { other.wipe(); }
  SecretString& operator=(const SecretString& other);
  SecretString& operator=(SecretString&& other) noexcept;
  ~SecretString() { wipe(); }

  std::string_view reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  void wipe() noexcept;  // OPENSSL_cleanse, then empty

 private:
  std::string value_;

  // Between nodes the secret travels (CAF's serializers); anything else (printing, logs) gets ***.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, SecretString& x) {
    if constexpr (std::is_base_of_v<caf::serializer, Inspector> ||
                  std::is_base_of_v<caf::deserializer, Inspector>) {
      return f(x.value_);
    } else {
      std::string masked = "***";
      return f(masked);
    }
  }
};

struct Card {
  SecretString number;
  SecretString cvc;
  int exp_month = 0;
  int exp_year = 0;

  std::string brand() const;  // visa, mastercard, amex, discover, unknown
  std::string last4() const;
  void wipe() noexcept {
    number.wipe();
    cvc.wipe();
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Card& x) {
  return f(caf::meta::type_name("Card"), x.number, x.cvc, x.exp_month, x.exp_year);
}

// A card an actor holds only while a charge is being decided: a pointer in the actor's state the
// rest of the time (actors stay small), wiped when it is let go.
class HeldCard {
 public:
  HeldCard() = default;
  HeldCard& operator=(Card&& card) {
    wipe();
    card_ = std::make_unique<Card>(std::move(card));
    card.wipe();
    return *this;
  }
  // Hands the card on (and holds none after).
  Card take() {
    Card out = card_ ? std::move(*card_) : Card{};
    wipe();
    return out;
  }
  const Card& operator*() const { return card_ ? *card_ : none(); }
  const Card* operator->() const { return &**this; }
  void wipe() noexcept {
    if (card_) card_->wipe();
    card_.reset();
  }
  ~HeldCard() { wipe(); }

 private:
  static const Card& none() {
    static const Card empty;
    return empty;
  }
  std::unique_ptr<Card> card_;
};

// Luhn check over a string of digits (false for anything else).
bool luhn_valid(std::string_view digits);

}  // namespace emporium

