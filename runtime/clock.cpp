#include "runtime/clock.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include <openssl/rand.h>

namespace emporium {

std::int64_t SystemClock::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

namespace {

// 16 bytes from OpenSSL's CSPRNG, taken from a buffer of this thread's that is refilled 4 KiB at a
// time: one RAND_bytes call per 256 ids. A call per id took 2.5 % of the node's CPU (two ids per
// order). Should OpenSSL fail, the kernel's generator fills the buffer (std::random_device).
void random_bytes(unsigned char (&out)[16]) {
  thread_local unsigned char pool[4096];
  thread_local std::size_t used = sizeof pool;
  if (used == sizeof pool) {
    if (RAND_bytes(pool, sizeof pool) != 1) {
      std::random_device kernel;
      for (auto& b : pool) b = static_cast<unsigned char>(kernel());
    }
    used = 0;
  }
  std::memcpy(out, pool + used, sizeof out);
  std::memset(pool + used, 0, sizeof out);  // handed out once
  used += sizeof out;
}

}  // namespace

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
  random_bytes(random);
  for (int i = 0; i < 16; ++i) id[prefix.size() + 10 + i] = alphabet[random[i] & 31];
  return id;
}

std::string rfc3339(std::int64_t ms) {
  // Floored, so that a time before 1970 comes out right too.
  std::int64_t days = ms / 86'400'000, in_day = ms % 86'400'000;
  if (in_day < 0) {
    in_day += 86'400'000;
    days -= 1;
  }
  // The civil date of a day count (days since 1970-01-01), by 400-year eras of 146,097 days that
  // begin on 0000-03-01, so that a leap day ends its year. No gmtime_r (it takes glibc's time zone
  // lock) and no printf: every order answered writes two of these.
  std::int64_t z = days + 719'468;
  std::int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  std::int64_t day_of_era = z - era * 146'097;
  std::int64_t year_of_era =
      (day_of_era - day_of_era / 1'460 + day_of_era / 36'524 - day_of_era / 146'096) / 365;
  std::int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  std::int64_t month_from_march = (5 * day_of_year + 2) / 153;
  std::int64_t day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
  std::int64_t month = month_from_march < 10 ? month_from_march + 3 : month_from_march - 9;
  std::int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
  if (year < 0 || year > 9999) {  // not a time an order has: by gmtime_r, the slow way
    std::time_t seconds = static_cast<std::time_t>((ms - in_day % 1'000) / 1'000);  // floored too
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char wide[64];
    std::snprintf(wide, sizeof wide, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(in_day % 1'000));
    return wide;
  }
  char buf[] = "0000-00-00T00:00:00.000Z";  // 24 characters and the terminator
  auto put = [&buf](int at, std::int64_t value, int digits) {
    for (int i = digits - 1; i >= 0; --i, value /= 10)
      buf[at + i] = static_cast<char>('0' + value % 10);
  };
  put(0, year, 4);
  put(5, month, 2);
  put(8, day, 2);
  put(11, in_day / 3'600'000, 2);
  put(14, in_day / 60'000 % 60, 2);
  put(17, in_day / 1'000 % 60, 2);
  put(20, in_day % 1'000, 3);
  return std::string(buf, 24);
}

}  // namespace emporium
