// Strict JSON: a first pass with a handler that rejects duplicate keys and bounds depth, then
// Boost.JSON's own parser builds the value.
#include "http/json.hpp"

#include <unordered_set>
#include <vector>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

namespace emporium {
namespace json = boost::json;
namespace {

class StrictCheck {
 public:
  static constexpr std::size_t max_array_size = -1;
  static constexpr std::size_t max_object_size = -1;
  static constexpr std::size_t max_string_size = -1;
  static constexpr std::size_t max_key_size = -1;

  explicit StrictCheck(std::size_t depth_max) : depth_max_(depth_max) {}

  bool duplicate = false;
  bool too_deep = false;

  bool on_object_begin(json::error_code&) {
    keys_.emplace_back();
    return enter();
  }
  bool on_object_end(std::size_t, json::error_code&) {
    keys_.pop_back();
    --depth_;
    return true;
  }
  bool on_array_begin(json::error_code&) { return enter(); }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth_;
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    pending_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    pending_.append(s.data(), s.size());
    const bool fresh = keys_.back().insert(std::move(pending_)).second;
    pending_.clear();
    if (!fresh) duplicate = true;
    return fresh;  // false aborts the parse
  }
  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
  bool on_double(double, json::string_view, json::error_code&) { return true; }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  bool enter() {
    if (++depth_ > depth_max_) too_deep = true;
    return !too_deep;
  }
  std::size_t depth_max_;
  std::size_t depth_ = 0;
  std::vector<std::unordered_set<std::string>> keys_;
  std::string pending_;
};

}  // namespace

std::optional<json::value> parse_strict(std::string_view text, std::string* error,
                                        std::size_t depth_max) {
  auto fail = [error](const char* why) {
    if (error) *error = why;
    return std::nullopt;
  };
  // Boost's own depth limit (32 by default) sits one above ours, so our bound decides and is named.
  json::parse_options options;
  options.max_depth = depth_max + 1;
  json::basic_parser<StrictCheck> check{options, depth_max};
  json::error_code ec;
  auto used = check.write_some(false, text.data(), text.size(), ec);
  if (check.handler().duplicate) return fail("duplicate key in JSON object");
  if (check.handler().too_deep) return fail("JSON nested too deeply");
  if (ec) return fail("malformed JSON");
  if (used != text.size() || !check.done()) return fail("malformed JSON");
  auto value = json::parse(text, ec, {}, options);
  if (ec) return fail("malformed JSON");
  return value;
}

}  // namespace emporium
