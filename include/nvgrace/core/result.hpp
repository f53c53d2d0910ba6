#pragma once
/// \file
/// `nvgrace::result<T>`: a value or an errno-style `nvgrace::errc`.
///
/// The type is the library's own so it is identical whether the consumer
/// compiles as C++20 or C++23 (it is not `std::expected`), and for literal T it
/// is a literal type, so every rule of the model can be evaluated in a
/// `static_assert`. T needs no default constructor: an error holds no T at all.
/// Asking an error for its value is a precondition violation (a compile error
/// in constant evaluation, a trap at run time; see core/contracts.hpp).
/// `<nvgrace/core/error_code.hpp>` bridges to `std::error_code`.

#include <nvgrace/core/contracts.hpp>
#include <nvgrace/core/errc.hpp>
#include <nvgrace/core/text_view.hpp>

#include <new>
#include <type_traits>
#include <utility>

namespace nvgrace {

namespace detail {

/// Specialised to true by <nvgrace/core/error_code.hpp>: result::error_code()
/// then compiles, and otherwise says which header it needs.
template <class Bridge>
inline constexpr bool error_code_bridge_included = false;

// The traits result<T> asks of every T, through the compiler's built-ins where
// it has them: libstdc++'s class-template traits made each result<T> several
// times as expensive to instantiate, and the model instantiates some twenty.
#if defined(__GNUC__) || defined(__clang__)
template <class T>
inline constexpr bool trivially_copyable = __is_trivially_copyable(T);  // implies a trivial destructor
template <class T, class... Args>
inline constexpr bool nothrow_constructible = __is_nothrow_constructible(T, Args...);
#else
template <class T>
inline constexpr bool trivially_copyable = std::is_trivially_copyable_v<T>;
template <class T, class... Args>
inline constexpr bool nothrow_constructible = std::is_nothrow_constructible_v<T, Args...>;
#endif

/// Storage of result<T>: a T or nothing, plus the error. Trivially copyable T
/// (everything the constexpr model returns) keep the whole result trivially
/// copyable and usable in constant expressions.
template <class T, bool Trivial = trivially_copyable<T>>
struct result_storage {
  union {
    char none_;
    T value_;
  };
  errc error_{};

  constexpr explicit result_storage(T&& v) noexcept(detail::nothrow_constructible<T, T&&>) : value_(std::move(v)) {}
  constexpr explicit result_storage(const T& v) noexcept(detail::nothrow_constructible<T, const T&>) : value_(v) {}
  constexpr explicit result_storage(errc e) noexcept : none_(), error_(e) {}
};

template <class T>
struct result_storage<T, false> {
  union {
    char none_;
    T value_;
  };
  errc error_{};

  explicit result_storage(T&& v) noexcept(detail::nothrow_constructible<T, T&&>) : value_(std::move(v)) {}
  explicit result_storage(const T& v) noexcept(detail::nothrow_constructible<T, const T&>) : value_(v) {}
  explicit result_storage(errc e) noexcept : none_(), error_(e) {}
  result_storage(const result_storage& other) noexcept(detail::nothrow_constructible<T, const T&>)
      : none_(), error_(other.error_) {
    if (error_ == errc{}) ::new (static_cast<void*>(&value_)) T(other.value_);
  }
  result_storage(result_storage&& other) noexcept(detail::nothrow_constructible<T, T&&>)
      : none_(), error_(other.error_) {
    if (error_ == errc{}) ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
  }
  result_storage& operator=(const result_storage& other) noexcept(detail::nothrow_constructible<T, const T&>) {
    if (this != &other) {
      destroy();
      error_ = other.error_;
      if (error_ == errc{}) ::new (static_cast<void*>(&value_)) T(other.value_);
    }
    return *this;
  }
  result_storage& operator=(result_storage&& other) noexcept(detail::nothrow_constructible<T, T&&>) {
    if (this != &other) {
      destroy();
      error_ = other.error_;
      if (error_ == errc{}) ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
    }
    return *this;
  }
  ~result_storage() { destroy(); }

private:
  void destroy() noexcept {
    if (error_ == errc{}) value_.~T();
  }
};

}  // namespace detail

/// A value of type T, or the errno that says why there is none.
template <class T>
class [[nodiscard]] result {
  static_assert(!std::is_reference_v<T>, "result<T&> is not supported: return a pointer or std::reference_wrapper");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, errc>, "result<errc> would be ambiguous");

public:
  using value_type = T;

  constexpr result(T value) noexcept(detail::nothrow_constructible<T, T&&>)  // NOLINT: implicit on purpose
      : storage_(std::move(value)) {}
  constexpr result(errc error) noexcept : storage_(error) {  // NOLINT: implicit on purpose
    NVGRACE_EXPECTS(error != errc{});
  }

  [[nodiscard]] constexpr bool has_value() const noexcept { return storage_.error_ == errc{}; }
  constexpr explicit operator bool() const noexcept { return has_value(); }

  /// The error; `errc{}` when there is a value.
  [[nodiscard]] constexpr errc error() const noexcept { return storage_.error_; }
  /// The error's message ("Invalid argument"), "Success" when there is a value.
  [[nodiscard]] constexpr text_view message() const noexcept { return errno_message(error()); }
  /// The error as a `std::error_code` (generic category; empty when there is a
  /// value). Needs `<nvgrace/core/error_code.hpp>`.
  template <class Bridge = void>
  [[nodiscard]] auto error_code() const noexcept {
    static_assert(detail::error_code_bridge_included<Bridge>,
                  "result::error_code() needs #include <nvgrace/core/error_code.hpp>");
    return make_error_code(detail_dependent<Bridge>(error()));
  }

  /// The value. Precondition: has_value().
  [[nodiscard]] constexpr T& value() & noexcept {
    NVGRACE_EXPECTS(has_value());
    return storage_.value_;
  }
  [[nodiscard]] constexpr const T& value() const& noexcept {
    NVGRACE_EXPECTS(has_value());
    return storage_.value_;
  }
  [[nodiscard]] constexpr T&& value() && noexcept {
    NVGRACE_EXPECTS(has_value());
    return std::move(storage_.value_);
  }
  [[nodiscard]] constexpr T value_or(T fallback) const& { return has_value() ? storage_.value_ : std::move(fallback); }
  [[nodiscard]] constexpr T value_or(T fallback) && {
    return has_value() ? std::move(storage_.value_) : std::move(fallback);
  }

  constexpr T& operator*() & noexcept { return value(); }
  constexpr const T& operator*() const& noexcept { return value(); }
  constexpr T&& operator*() && noexcept { return std::move(*this).value(); }
  constexpr T* operator->() noexcept { return __builtin_addressof(value()); }
  constexpr const T* operator->() const noexcept { return __builtin_addressof(value()); }

  friend constexpr bool operator==(const result& a, const result& b) noexcept requires std::equality_comparable<T> {
    if (a.error() != b.error()) return false;
    return !a.has_value() || a.storage_.value_ == b.storage_.value_;
  }
  friend constexpr bool operator==(const result& a, errc e) noexcept { return a.error() == e; }

private:
  template <class Bridge>
  static constexpr errc detail_dependent(errc e) noexcept {
    return e;
  }

  detail::result_storage<T> storage_;
};

/// Success, or the reason for failure.
template <>
class [[nodiscard]] result<void> {
public:
  constexpr result() noexcept = default;
  constexpr result(errc error) noexcept : error_(error) {}  // NOLINT: implicit on purpose

  [[nodiscard]] constexpr bool has_value() const noexcept { return error_ == errc{}; }
  constexpr explicit operator bool() const noexcept { return has_value(); }
  [[nodiscard]] constexpr errc error() const noexcept { return error_; }
  [[nodiscard]] constexpr text_view message() const noexcept { return errno_message(error_); }
  template <class Bridge = void>
  [[nodiscard]] auto error_code() const noexcept {
    static_assert(detail::error_code_bridge_included<Bridge>,
                  "status::error_code() needs #include <nvgrace/core/error_code.hpp>");
    return make_error_code(dependent<Bridge>(error_));
  }

  friend constexpr bool operator==(result, result) noexcept = default;
  friend constexpr bool operator==(result a, errc e) noexcept { return a.error_ == e; }

private:
  template <class Bridge>
  static constexpr errc dependent(errc e) noexcept {
    return e;
  }

  errc error_{};
};

/// Success or an errno-style error, for operations that produce no value.
using status = result<void>;

}  // namespace nvgrace
