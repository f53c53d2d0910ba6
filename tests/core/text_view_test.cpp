// nvgrace::text_view: the model's texts compare by content, convert to the
// standard string types, and print, without <string_view> in the model.
#include <nvgrace/core/errc.hpp>
#include <nvgrace/core/text_view.hpp>

#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <string_view>

using nvgrace::text_view;

namespace {
constexpr text_view einval = nvgrace::errno_name(nvgrace::errc::invalid_argument);
}  // namespace

// Content, not pointer, comparison, in constant evaluation.
static_assert(einval == "EINVAL" && "EINVAL" == einval);
static_assert(einval != "EINVA" && einval != "EINVALX" && einval != "");
static_assert(einval.size() == 6 && !einval.empty());
static_assert(einval.c_str()[6] == '\0');  // returned texts are literals
static_assert(einval.starts_with("EIN") && !einval.starts_with("EINVALID"));
static_assert(einval.substr(1) == "INVAL" && einval.substr(6).empty() && einval.substr(99).empty());
static_assert(text_view{}.empty() && text_view{}.c_str()[0] == '\0');
static_assert(text_view("EINVAL", 3) == "EIN");
static_assert(text_view(std::string_view("EINVAL")) == einval);
// std::string_view on either side is not ambiguous with its own comparisons.
static_assert(std::string_view("EINVAL") == einval && einval == std::string_view("EINVAL"));
static_assert(std::string_view("EBUSY") != einval);
constexpr std::string_view converted = einval;
static_assert(converted == "EINVAL" && converted.size() == 6);

TEST_CASE("text_view converts to std::string and prints to a stream") {
  const std::string owned = einval;
  CHECK(owned == "EINVAL");
  CHECK(owned == std::string(einval));
  CHECK(einval == owned);
  const text_view back = owned;  // a view of the string's characters
  CHECK(back.data() == owned.data());
  CHECK(back.size() == 6);
  std::ostringstream out;
  out << einval << '|' << text_view("a\0b", 3);
  CHECK(out.str() == std::string("EINVAL|a\0b", 10));
  std::string loop;
  for (const char c : einval) loop += c;
  CHECK(loop == "EINVAL");
  CHECK(einval[0] == 'E');
}
