// The http payment provider's URL, checked when the node starts: payment.url names the key.
#include "http/payment_client.hpp"

#include <string>

#include <gtest/gtest.h>

namespace emporium {
namespace {

std::string refusal(const std::string& url) {
  Config::Payment settings;
  settings.provider = "http";
  settings.url = url;
  try {
    make_http_provider(settings);
  } catch (const ConfigError& e) {
    return e.key();
  }
  return "";
}

TEST(HttpPaymentProvider, TakesAnHttpUrlWithAHostAndRefusesAnyOther) {
  for (std::string url : {"http://127.0.0.1:9/psp", "http://127.0.0.1:9", "http://127.0.0.1/psp/",
                          "http://[::1]:9/psp", "http://localhost:9"})
    EXPECT_EQ(refusal(url), "") << url;
  for (std::string url : {"https://127.0.0.1:9/psp", "http://127.0.0.1:/psp", "http://127.0.0.1:9/psp?x=1",
                          "http://127.0.0.1:9/psp#f", "http://user@127.0.0.1:9", "127.0.0.1:9", "http://",
                          "ftp://127.0.0.1/"})
    EXPECT_EQ(refusal(url), "payment.url") << url;
}

}  // namespace
}  // namespace emporium
