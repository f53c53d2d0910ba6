// The tools' JSON writer (tools/common/json.hpp): escaping, structure, hex twins.

#include "json.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

namespace json = nvgrace::tools::json;

TEST_CASE("[probe] JSON escaping: quote, backslash and control characters") {
  CHECK(json::escaped("plain /dev/vfio/3") == R"("plain /dev/vfio/3")");
  CHECK(json::escaped("a\"b\\c") == R"("a\"b\\c")");
  CHECK(json::escaped("\b\f\n\r\t") == R"("\b\f\n\r\t")");
  CHECK(json::escaped(std::string_view("\x00\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\x7f\"");
  CHECK(json::escaped("") == R"("")");
}

TEST_CASE("[probe] JSON escaping: well-formed UTF-8 passes, malformed bytes become U+FFFD") {
  CHECK(json::escaped("\xc3\xa9") == "\"\xc3\xa9\"");                           // é
  CHECK(json::escaped("\xe2\x82\xac") == "\"\xe2\x82\xac\"");                   // €
  CHECK(json::escaped("\xf0\x9f\x98\x80") == "\"\xf0\x9f\x98\x80\"");           // U+1F600
  CHECK(json::escaped("\x80") == R"("\ufffd")");                                // stray continuation byte
  CHECK(json::escaped("\xc3") == R"("\ufffd")");                                // truncated
  CHECK(json::escaped("\xc0\xaf") == R"("\ufffd\ufffd")");                      // overlong '/'
  CHECK(json::escaped("\xe0\x80\xaf") == R"("\ufffd\ufffd\ufffd")");            // overlong 3-byte
  CHECK(json::escaped("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");            // surrogate U+D800
  CHECK(json::escaped("\xf4\x90\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");  // above U+10FFFF
  CHECK(json::escaped("\xff") == R"("\ufffd")");
  CHECK(json::escaped("a\xffz\xc3\xa9") == "\"a\\ufffdz\xc3\xa9\"");
}

TEST_CASE("[probe] JSON writer: commas, nesting, numbers, literals") {
  json::writer w;
  w.begin_object();
  w.member("schema", "nvgrace-probe/1");
  w.member("big", std::uint64_t{0xFFFFFFFFFFFFFFFF});
  w.member("neg", std::int64_t{-5});
  w.member("yes", true);
  w.key("none");
  w.null();
  w.key("list");
  w.begin_array();
  w.number(std::uint64_t{1});
  w.begin_object();
  w.end_object();
  w.begin_array();
  w.end_array();
  w.string("x\"y");
  w.end_array();
  w.key("nested");
  w.begin_object();
  w.member("k", std::uint32_t{7});
  w.end_object();
  w.end_object();
  CHECK(w.str() == R"({"schema":"nvgrace-probe/1","big":18446744073709551615,"neg":-5,"yes":true,"none":null,)"
                   R"("list":[1,{},[],"x\"y"],"nested":{"k":7}})");
}

TEST_CASE("[probe] JSON writer: a 64-bit value also as a hex string") {
  json::writer w;
  w.begin_object();
  w.member_u64("after", std::uint64_t{18446743936270598156u});
  w.member_u64("zero", std::uint64_t{0});
  w.member_u64_or_null("end", nullptr);
  w.end_object();
  CHECK(w.str() == R"({"after":18446743936270598156,"after_hex":"0xffffffe00000000c","zero":0,"zero_hex":"0x0",)"
                   R"("end":null,"end_hex":null})");
}
