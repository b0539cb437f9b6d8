// Card helpers and the simulated provider.
#include "actors/payment_provider.hpp"

#include <stdexcept>

#include <openssl/crypto.h>

namespace emporium {

SecretString& SecretString::operator=(const SecretString& other) {
  if (this != &other) {
    wipe();
    value_ = other.value_;
  }
  return *this;
}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    wipe();
    value_ = std::move(other.value_);
    other.wipe();
  }
  return *this;
}

void cleanse(std::string& s) noexcept {
  OPENSSL_cleanse(s.data(), s.capacity());
  s.clear();
}

void SecretString::wipe() noexcept { cleanse(value_); }

std::string Card::brand() const {
  auto n = number.reveal();
  if (n.empty()) return "unknown";
  if (n[0] == '4') return "visa";
  if (n.size() >= 2) {
    int two = (n[0] - '0') * 10 + (n[1] - '0');
    if (two >= 51 && two <= 55) return "mastercard";
    if (two == 34 || two == 37) return "amex";
    if (n.substr(0, 4) == "6011" || two == 65) return "discover";
  }
  if (n.size() >= 4) {
    int four = std::stoi(std::string(n.substr(0, 4)));
    if (four >= 2221 && four <= 2720) return "mastercard";
  }
  return "unknown";
}

std::string Card::last4() const {
  auto n = number.reveal();
  return std::string(n.size() >= 4 ? n.substr(n.size() - 4) : n);
}

bool luhn_valid(std::string_view digits) {
  if (digits.empty()) return false;
  int sum = 0;
  bool twice = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (*it < '0' || *it > '9') return false;
    int d = *it - '0';
    if (twice) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

ChargeResult SimulatedProvider::charge(const ChargeRequest& request) {
  auto number = request.card ? request.card->number.reveal() : std::string_view{};
  std::string ref = "sim_" + request.payment_id;
  if (number == "4000000000000002") return {ChargeOutcome::declined, ref};
  if (number == "4000000000009995") return {ChargeOutcome::insufficient_funds, ref};
  if (number == "4000000000000119") return {ChargeOutcome::transient_error, {}};
  return {ChargeOutcome::captured, ref};
}

bool SimulatedProvider::refund(const std::string&, std::int64_t) { return true; }

std::shared_ptr<PaymentProvider> make_provider(const Config::Payment& settings) {
  if (settings.provider == "simulated") return std::make_shared<SimulatedProvider>();
  // `http` is the edge's (http/payment_client.hpp): actors know nothing of HTTP.
  throw std::invalid_argument("payment.provider: make_provider builds only `simulated`");
}

}  // namespace emporium
