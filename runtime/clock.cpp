#include "runtime/clock.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

#include <openssl/rand.h>

namespace emporium {

std::int64_t SystemClock::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string new_id(std::string_view prefix, std::int64_t now_ms) {
  // Crockford base32: 10 characters of milliseconds, 16 of randomness (ULID layout).
  static constexpr char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
  // Strictly increasing within the process, so ids made in the same millisecond keep their order.
  static std::atomic<std::int64_t> last_ms{0};
  std::int64_t previous = last_ms.load();
  std::int64_t stamp = 0;
  do {
    stamp = std::max(now_ms, previous + 1);
  } while (!last_ms.compare_exchange_weak(previous, stamp));
  std::string id(prefix);
  id.resize(prefix.size() + 26);
  auto t = static_cast<std::uint64_t>(stamp);
  for (int i = 9; i >= 0; --i) {
    id[prefix.size() + i] = alphabet[t & 31];
    t >>= 5;
  }
  unsigned char random[16];
  RAND_bytes(random, sizeof random);
  for (int i = 0; i < 16; ++i) id[prefix.size() + 10 + i] = alphabet[random[i] & 31];
  return id;
}

std::string rfc3339(std::int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace emporium
