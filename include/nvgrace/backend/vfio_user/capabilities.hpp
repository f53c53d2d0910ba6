#pragma once
/// \file
/// The JSON capabilities of a vfio-user VERSION message, read by a tiny bounded
/// parser (no library) and written by a tiny formatter.
///
/// Shape: `{"capabilities": {"max_msg_fds": n, "max_data_xfer_size": n, ...}}`.
/// The reader accepts any well-formed JSON text up to `max_json_depth` levels
/// deep, skips keys it does not know, and is strict about the keys it does:
/// a known key with the wrong type, a number that is not a non-negative
/// integer below 2^64, malformed JSON, or trailing bytes → EINVAL. Input size
/// is the only bound on work; recursion is bounded by the depth limit.

#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace nvgrace::vfio_user {

/// What a peer's VERSION JSON says. Absent keys stay empty/false; the
/// protocol's defaults apply to them (see protocol.hpp).
struct capabilities {
  std::optional<std::uint64_t> max_msg_fds;
  std::optional<std::uint64_t> max_data_xfer_size;
  std::optional<std::uint64_t> max_dma_maps;
  std::optional<std::uint64_t> pgsizes;
  /// `migration` object present (with its optional `pgsize`).
  bool migration = false;
  std::optional<std::uint64_t> migration_pgsize;
  /// `twin_socket.supported` was true.
  bool twin_socket = false;
  /// `write_multiple` was true.
  bool write_multiple = false;
};

/// Deepest nesting of objects/arrays the reader follows.
inline constexpr unsigned max_json_depth = 16;

namespace detail {

class json_reader {
public:
  constexpr explicit json_reader(text_view text) noexcept : text_(text) {}

  constexpr status parse_document(capabilities& out) noexcept {
    skip_space();
    if (at_end()) return {};  // an empty text names no capabilities
    if (peek() != '{') return errc::invalid_argument;
    if (auto s = parse_object(1,
                              [&](text_view key) -> status {
                                if (key == "capabilities") return parse_capabilities(out);
                                return skip_value(2);
                              });
        !s)
      return s;
    skip_space();
    if (!at_end()) return errc::invalid_argument;
    return {};
  }

private:
  [[nodiscard]] constexpr bool at_end() const noexcept { return pos_ >= text_.size(); }
  [[nodiscard]] constexpr char peek() const noexcept { return text_[pos_]; }

  constexpr void skip_space() noexcept {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }

  constexpr bool consume(char c) noexcept {
    skip_space();
    if (at_end() || peek() != c) return false;
    ++pos_;
    return true;
  }

  constexpr bool consume_literal(text_view word) noexcept {
    if (text_.size() - pos_ < word.size() || text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  /// An object; `on_key` must consume the value that follows each key.
  template <class OnKey>
  constexpr status parse_object(unsigned depth, OnKey&& on_key) noexcept {
    if (depth > max_json_depth) return errc::invalid_argument;
    if (!consume('{')) return errc::invalid_argument;
    if (consume('}')) return {};
    while (true) {
      skip_space();
      text_view key;
      if (auto s = parse_string(key); !s) return s;
      if (!consume(':')) return errc::invalid_argument;
      skip_space();
      if (auto s = on_key(key); !s) return s;
      if (consume(',')) continue;
      if (consume('}')) return {};
      return errc::invalid_argument;
    }
  }

  constexpr status parse_capabilities(capabilities& out) noexcept {
    if (at_end() || peek() != '{') return errc::invalid_argument;
    return parse_object(2, [&](text_view key) -> status {
      if (key == "max_msg_fds") return parse_unsigned(out.max_msg_fds);
      if (key == "max_data_xfer_size") return parse_unsigned(out.max_data_xfer_size);
      if (key == "max_dma_maps") return parse_unsigned(out.max_dma_maps);
      if (key == "pgsizes") return parse_unsigned(out.pgsizes);
      if (key == "write_multiple") return parse_bool(out.write_multiple);
      if (key == "migration") {
        if (at_end() || peek() != '{') return errc::invalid_argument;
        out.migration = true;
        return parse_object(3, [&](text_view inner) -> status {
          if (inner == "pgsize") return parse_unsigned(out.migration_pgsize);
          return skip_value(4);
        });
      }
      if (key == "twin_socket") {
        if (at_end() || peek() != '{') return errc::invalid_argument;
        return parse_object(3, [&](text_view inner) -> status {
          if (inner == "supported") return parse_bool(out.twin_socket);
          return skip_value(4);
        });
      }
      return skip_value(3);
    });
  }

  constexpr status parse_bool(bool& out) noexcept {
    if (consume_literal("true")) {
      out = true;
      return {};
    }
    if (consume_literal("false")) {
      out = false;
      return {};
    }
    return errc::invalid_argument;
  }

  /// A non-negative integer (no sign, fraction or exponent) that fits 64 bits.
  constexpr status parse_unsigned(std::optional<std::uint64_t>& out) noexcept {
    if (at_end() || peek() < '0' || peek() > '9') return errc::invalid_argument;
    if (peek() == '0' && pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' && text_[pos_ + 1] <= '9')
      return errc::invalid_argument;  // JSON forbids leading zeros
    std::uint64_t value = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      const auto digit = static_cast<std::uint64_t>(peek() - '0');
      if (value > (UINT64_MAX - digit) / 10) return errc::invalid_argument;
      value = value * 10 + digit;
      ++pos_;
    }
    if (!at_end() && (peek() == '.' || peek() == 'e' || peek() == 'E')) return errc::invalid_argument;
    out = value;
    return {};
  }

  /// A string; `out` is its raw text between the quotes (escapes not decoded).
  constexpr status parse_string(text_view& out) noexcept {
    if (at_end() || peek() != '"') return errc::invalid_argument;
    const std::size_t start = ++pos_;
    while (!at_end()) {
      const char c = peek();
      if (c == '"') {
        out = text_.substr(start, pos_ - start);
        ++pos_;
        return {};
      }
      if (static_cast<unsigned char>(c) < 0x20) return errc::invalid_argument;
      if (c == '\\') {
        ++pos_;
        if (at_end()) return errc::invalid_argument;
        const char e = peek();
        if (e == 'u') {
          for (int i = 0; i < 4; ++i) {
            ++pos_;
            if (at_end() || !is_hex(peek())) return errc::invalid_argument;
          }
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
          return errc::invalid_argument;
        }
      }
      ++pos_;
    }
    return errc::invalid_argument;
  }

  [[nodiscard]] static constexpr bool is_hex(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }

  constexpr status skip_number() noexcept {
    if (!at_end() && peek() == '-') ++pos_;
    if (at_end()) return errc::invalid_argument;
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      return errc::invalid_argument;
    }
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (at_end() || peek() < '0' || peek() > '9') return errc::invalid_argument;
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || peek() < '0' || peek() > '9') return errc::invalid_argument;
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
    }
    return {};
  }

  /// Any JSON value, checked for well-formedness and ignored.
  constexpr status skip_value(unsigned depth) noexcept {
    if (depth > max_json_depth) return errc::invalid_argument;
    skip_space();
    if (at_end()) return errc::invalid_argument;
    switch (peek()) {
      case '{': return parse_object(depth, [&](text_view) -> status { return skip_value(depth + 1); });
      case '[': {
        ++pos_;
        if (consume(']')) return {};
        while (true) {
          if (auto s = skip_value(depth + 1); !s) return s;
          if (consume(',')) continue;
          if (consume(']')) return {};
          return errc::invalid_argument;
        }
      }
      case '"': {
        text_view ignored;
        return parse_string(ignored);
      }
      case 't': return consume_literal("true") ? status{} : status{errc::invalid_argument};
      case 'f': return consume_literal("false") ? status{} : status{errc::invalid_argument};
      case 'n': return consume_literal("null") ? status{} : status{errc::invalid_argument};
      default: return skip_number();
    }
  }

  text_view text_;
  std::size_t pos_ = 0;
};

/// Append the decimal digits of `value` at `at`; false if they do not fit.
constexpr bool append_decimal(std::span<char> out, std::size_t& at, std::uint64_t value) noexcept {
  char digits[20] = {};
  std::size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  if (out.size() - at < n) return false;
  while (n > 0) out[at++] = digits[--n];
  return true;
}

constexpr bool append_text(std::span<char> out, std::size_t& at, text_view text) noexcept {
  if (out.size() - at < text.size()) return false;
  for (char c : text) out[at++] = c;
  return true;
}

}  // namespace detail

/// Parse the JSON text of a VERSION payload (without its terminating NUL).
/// Errors: EINVAL for malformed JSON, a top level that is not an object,
/// `capabilities` that is not an object, or a known key of the wrong type.
[[nodiscard]] constexpr result<capabilities> parse_capabilities(text_view json) noexcept {
  capabilities caps;
  detail::json_reader reader(json);
  if (auto s = reader.parse_document(caps); !s) return s.error();
  return caps;
}

/// Write `{"capabilities":{...}}` for the numeric keys that are set and the
/// booleans that are true, followed by the terminating NUL the protocol
/// requires. Returns the bytes written (NUL included); ENOBUFS if `out` is
/// too small.
[[nodiscard]] constexpr result<std::size_t> format_capabilities(std::span<char> out,
                                                                const capabilities& caps) noexcept {
  std::size_t at = 0;
  bool first = true;
  bool ok = detail::append_text(out, at, "{\"capabilities\":{");
  auto number = [&](text_view key, const std::optional<std::uint64_t>& value) {
    if (!ok || !value) return;
    ok = detail::append_text(out, at, first ? "\"" : ",\"") && detail::append_text(out, at, key) &&
         detail::append_text(out, at, "\":") && detail::append_decimal(out, at, *value);
    first = false;
  };
  number("max_msg_fds", caps.max_msg_fds);
  number("max_data_xfer_size", caps.max_data_xfer_size);
  number("max_dma_maps", caps.max_dma_maps);
  number("pgsizes", caps.pgsizes);
  if (ok && caps.migration) {
    ok = detail::append_text(out, at, first ? "\"migration\":{" : ",\"migration\":{");
    if (ok && caps.migration_pgsize)
      ok = detail::append_text(out, at, "\"pgsize\":") && detail::append_decimal(out, at, *caps.migration_pgsize);
    ok = ok && detail::append_text(out, at, "}");
    first = false;
  }
  if (ok && caps.twin_socket) {
    ok = detail::append_text(out, at, first ? "" : ",") &&
         detail::append_text(out, at, "\"twin_socket\":{\"supported\":true}");
    first = false;
  }
  if (ok && caps.write_multiple) {
    ok = detail::append_text(out, at, first ? "\"write_multiple\":true" : ",\"write_multiple\":true");
    first = false;
  }
  ok = ok && detail::append_text(out, at, "}}") && detail::append_text(out, at, text_view("\0", 1));
  if (!ok) return errc::no_buffer_space;
  return at;
}

}  // namespace nvgrace::vfio_user
