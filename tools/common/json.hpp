#pragma once
/// \file
/// The JSON writer of the tools' --json output: one object, built in a
/// std::string, with commas placed by the writer. Strings are escaped so that
/// any input bytes (paths, device names) give valid JSON: quote, backslash
/// and control characters are escaped, and bytes that are not well-formed
/// UTF-8 become U+FFFD.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nvgrace::tools::json {

namespace detail {

/// Length of the well-formed UTF-8 sequence at the start of `s`, or 0 when
/// its first byte does not start one (stray continuation byte, overlong
/// form, surrogate, code point above U+10FFFF, truncated sequence).
[[nodiscard]] constexpr std::size_t utf8_sequence_length(std::string_view s) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto continuation = [&](std::size_t i) { return i < s.size() && (byte(i) & 0xC0) == 0x80; };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return continuation(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!continuation(1) || !continuation(2)) return 0;
    if (b0 == 0xE0 && byte(1) < 0xA0) return 0;   // overlong
    if (b0 == 0xED && byte(1) >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (b0 == 0xF0 && byte(1) < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && byte(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace detail

/// Append `text` to `out` as a JSON string literal, quotes included.
inline void append_escaped(std::string& out, std::string_view text) {
  constexpr std::string_view hex = "0123456789abcdef";
  out += '"';
  while (!text.empty()) {
    const auto c = static_cast<unsigned char>(text.front());
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else if (const auto n = detail::utf8_sequence_length(text); n == 0) {
          out += "\\ufffd";
        } else {
          out.append(text.substr(0, n));
          text.remove_prefix(n);
          continue;
        }
    }
    text.remove_prefix(1);
  }
  out += '"';
}

/// `text` as a JSON string literal.
[[nodiscard]] inline std::string escaped(std::string_view text) {
  std::string out;
  append_escaped(out, text);
  return out;
}

/// Streaming writer. Usage: w.begin_object(); w.key("a"); w.number(1); w.end_object();
/// Commas between members and elements are inserted automatically.
class writer {
public:
  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }

  /// The name of the next member of the current object.
  void key(std::string_view name) {
    separate();
    append_escaped(out_, name);
    out_ += ':';
    after_key_ = true;
  }

  void string(std::string_view value) {
    separate();
    append_escaped(out_, value);
  }
  void number(std::uint64_t value) {
    separate();
    out_ += std::to_string(value);
  }
  void number(std::int64_t value) {
    separate();
    out_ += std::to_string(value);
  }
  void boolean(bool value) {
    separate();
    out_ += value ? "true" : "false";
  }
  void null() {
    separate();
    out_ += "null";
  }

  /// Convenience: key followed by a value.
  void member(std::string_view name, std::string_view value) { key(name), string(value); }
  void member(std::string_view name, const char* value) { key(name), string(value); }
  void member(std::string_view name, std::uint64_t value) { key(name), number(value); }
  void member(std::string_view name, std::uint32_t value) { key(name), number(std::uint64_t{value}); }
  void member(std::string_view name, std::uint16_t value) { key(name), number(std::uint64_t{value}); }
  void member(std::string_view name, std::int64_t value) { key(name), number(value); }
  void member(std::string_view name, int value) { key(name), number(std::int64_t{value}); }
  void member(std::string_view name, bool value) { key(name), boolean(value); }
  /// A 64-bit value twice: `name` as a JSON number and `name_hex` as a string
  /// ("0x1800000000"), because many JSON readers (jq, JavaScript) keep only
  /// 53 bits of a number.
  void member_u64(std::string_view name, std::uint64_t value) {
    key(name), number(value);
    key(std::string(name) + "_hex"), string(hex(value));
  }
  /// The same for a value that may be absent (null, twice).
  void member_u64_or_null(std::string_view name, const std::uint64_t* value) {
    if (value != nullptr) return member_u64(name, *value);
    key(name), null();
    key(std::string(name) + "_hex"), null();
  }

  /// Lower-case hex with a 0x prefix ("0x0", "0xffffffffffffffff").
  [[nodiscard]] static std::string hex(std::uint64_t value) {
    constexpr std::string_view digits = "0123456789abcdef";
    std::string out = "0x";
    int shift = 60;
    while (shift > 0 && ((value >> shift) & 0xF) == 0) shift -= 4;
    for (; shift >= 0; shift -= 4) out += digits[(value >> shift) & 0xF];
    return out;
  }

  [[nodiscard]] const std::string& str() const noexcept { return out_; }

private:
  void open(char c) {
    separate();
    out_ += c;
    first_.push_back(true);
  }
  void close(char c) {
    out_ += c;
    first_.pop_back();
  }
  // Emit the comma that precedes a value or key, unless it follows a key or
  // starts a container.
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace nvgrace::tools::json
