#pragma once
/// \file
/// `nvgrace::text_view`: a view of constant characters, for the names, messages
/// and descriptions the model returns and the short texts it parses.
///
/// It behaves like `std::string_view` where the model needs one (compare,
/// iterate, size) and converts to it, to `std::string` or to any type built from
/// a pointer and a length, but it does not include `<string_view>`: in
/// libstdc++ that header (char traits, `<cwchar>`, hashing) costs about as much
/// to parse as the rest of the constexpr model, and the model is meant to be
/// cheap to include. {fmt} keeps its own string view for the same reason.

#include <cstddef>

namespace nvgrace {

class text_view;

namespace detail {
template <class T>
inline constexpr bool is_text_view = false;
template <>
inline constexpr bool is_text_view<text_view> = true;
/// Another type's contiguous characters: data() and size().
template <class Chars>
concept char_sequence = !is_text_view<Chars> && requires(const Chars& c) {
  static_cast<const char*>(c.data());
  static_cast<std::size_t>(c.size());
};
}  // namespace detail

/// A pointer and a length; never owns. Every text_view the library returns
/// refers to a string literal, so its `c_str()` is a NUL-terminated C string;
/// one built from a caller's characters is as terminated as they are.
class text_view {
public:
  /// "Not found", as std::string_view::npos.
  static constexpr std::size_t npos = ~std::size_t{0};

  /// The empty text.
  constexpr text_view() noexcept = default;
  /// A NUL-terminated string, e.g. a literal. Precondition: not null.
  constexpr text_view(const char* s) noexcept
      : data_(s), size_(length_of(s)) {}  // NOLINT: implicit, as std::string_view's
  constexpr text_view(const char* s, std::size_t n) noexcept : data_(s), size_(n) {}
  /// Any contiguous character sequence with data() and size():
  /// `std::string_view`, `std::string`, `std::span<const char>`...
  template <class Chars>
  requires detail::char_sequence<Chars>
  constexpr text_view(const Chars& c) noexcept  // NOLINT: implicit, as std::string_view's
      : data_(c.data()), size_(static_cast<std::size_t>(c.size())) {}

  [[nodiscard]] constexpr const char* data() const noexcept { return data_; }
  /// The characters as a C string (see the class comment for when it ends in NUL).
  [[nodiscard]] constexpr const char* c_str() const noexcept { return data_; }
  [[nodiscard]] constexpr std::size_t size() const noexcept { return size_; }
  [[nodiscard]] constexpr bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] constexpr const char* begin() const noexcept { return data_; }
  [[nodiscard]] constexpr const char* end() const noexcept { return data_ + size_; }
  [[nodiscard]] constexpr char operator[](std::size_t i) const noexcept { return data_[i]; }
  /// The last character. Precondition: not empty.
  [[nodiscard]] constexpr char back() const noexcept { return data_[size_ - 1]; }
  /// Drop the last `n` characters. Precondition: n <= size().
  constexpr void remove_suffix(std::size_t n) noexcept { size_ -= n; }
  /// Drop the first `n` characters. Precondition: n <= size().
  constexpr void remove_prefix(std::size_t n) noexcept {
    data_ += n;
    size_ -= n;
  }

  /// The first `c` at or after `pos`, or npos.
  [[nodiscard]] constexpr std::size_t find(char c, std::size_t pos = 0) const noexcept {
    for (std::size_t i = pos; i < size_; ++i)
      if (data_[i] == c) return i;
    return npos;
  }
  /// The last `c`, or npos.
  [[nodiscard]] constexpr std::size_t rfind(char c) const noexcept {
    for (std::size_t i = size_; i-- > 0;)
      if (data_[i] == c) return i;
    return npos;
  }
  [[nodiscard]] constexpr bool starts_with(text_view prefix) const noexcept {
    return prefix.size_ <= size_ && text_view(data_, prefix.size_) == prefix;
  }
  /// At most `n` characters from `pos` on; empty when `pos` is past the end
  /// (where std::string_view would throw).
  [[nodiscard]] constexpr text_view substr(std::size_t pos, std::size_t n = ~std::size_t{0}) const noexcept {
    if (pos >= size_) return text_view(data_ + size_, 0);
    const std::size_t rest = size_ - pos;
    return text_view(data_ + pos, n < rest ? n : rest);
  }

  /// Converts to any string type built from (pointer, length): std::string_view,
  /// std::string.
  template <class String>
  requires(!detail::is_text_view<String> && requires(const char* p, std::size_t n) { String(p, n); }) constexpr
  operator String() const {
    return String(data_, size_);
  }

  /// Compares the characters, not the pointers.
  friend constexpr bool operator==(text_view a, text_view b) noexcept {
    if (a.size_ != b.size_) return false;
    for (std::size_t i = 0; i < a.size_; ++i)
      if (a.data_[i] != b.data_[i]) return false;
    return true;
  }
  /// The same against a std::string_view or std::string as such, so that
  /// their own comparisons (which would convert this view) are not ambiguous.
  template <class Chars>
  requires detail::char_sequence<Chars>
  friend constexpr bool operator==(text_view a, const Chars& b) noexcept { return a == text_view(b); }

  /// Writes the characters to any stream with write(const char*, n) (an
  /// std::ostream, for one), without naming <ostream>.
  template <class Stream>
  requires requires(Stream& s, const char* p, long n) { s.write(p, n); }
  friend Stream& operator<<(Stream& s, text_view t) {
    s.write(t.data_, static_cast<long>(t.size_));
    return s;
  }

private:
  [[nodiscard]] static constexpr std::size_t length_of(const char* s) noexcept {
    std::size_t n = 0;
    while (s[n] != '\0') ++n;
    return n;
  }

  const char* data_ = "";
  std::size_t size_ = 0;
};

}  // namespace nvgrace
