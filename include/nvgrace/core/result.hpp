#pragma once
/// \file
/// `nvgrace::result<T>`: a value or an errno-style `std::errc`.
///
/// The type is the library's own so it is identical whether the consumer
/// compiles as C++20 or C++23 (it is not `std::expected`), and it is a literal
/// type so every rule of the model can be evaluated in a `static_assert`.

#include <nvgrace/core/contracts.hpp>

#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace nvgrace {

/// A value of type T, or the reason there is none.
/// T must be default-constructible (the value slot always exists, which keeps
/// the type trivially usable in constant expressions).
template <class T>
class [[nodiscard]] result {
  static_assert(std::is_default_constructible_v<T>, "result<T> needs a default-constructible T");
  static_assert(!std::is_same_v<T, std::errc>, "result<std::errc> would be ambiguous");

public:
  using value_type = T;

  constexpr result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit on purpose
      : value_(std::move(value)) {}
  constexpr result(std::errc error) noexcept : value_{}, error_(error) {  // NOLINT: implicit on purpose
    NVGRACE_EXPECTS(error != std::errc{});
  }

  [[nodiscard]] constexpr bool has_value() const noexcept { return error_ == std::errc{}; }
  constexpr explicit operator bool() const noexcept { return has_value(); }

  /// The error; `std::errc{}` when there is a value.
  [[nodiscard]] constexpr std::errc error() const noexcept { return error_; }

  [[nodiscard]] constexpr T& value() & noexcept {
    NVGRACE_EXPECTS(has_value());
    return value_;
  }
  [[nodiscard]] constexpr const T& value() const& noexcept {
    NVGRACE_EXPECTS(has_value());
    return value_;
  }
  [[nodiscard]] constexpr T&& value() && noexcept {
    NVGRACE_EXPECTS(has_value());
    return std::move(value_);
  }
  [[nodiscard]] constexpr T value_or(T fallback) const& { return has_value() ? value_ : fallback; }

  constexpr T& operator*() & noexcept { return value(); }
  constexpr const T& operator*() const& noexcept { return value(); }
  constexpr T&& operator*() && noexcept { return std::move(*this).value(); }
  constexpr T* operator->() noexcept { return &value(); }
  constexpr const T* operator->() const noexcept { return &value(); }

  friend constexpr bool operator==(const result& a, const result& b) noexcept
    requires std::equality_comparable<T>
  {
    return a.error_ == b.error_ && (!a.has_value() || a.value_ == b.value_);
  }

private:
  T value_;
  std::errc error_{};
};

/// Success, or the reason for failure.
template <>
class [[nodiscard]] result<void> {
public:
  constexpr result() noexcept = default;
  constexpr result(std::errc error) noexcept : error_(error) {}  // NOLINT: implicit on purpose

  [[nodiscard]] constexpr bool has_value() const noexcept { return error_ == std::errc{}; }
  constexpr explicit operator bool() const noexcept { return has_value(); }
  [[nodiscard]] constexpr std::errc error() const noexcept { return error_; }

  friend constexpr bool operator==(result, result) noexcept = default;

private:
  std::errc error_{};
};

/// Success or an errno-style error, for operations that produce no value.
using status = result<void>;

/// The positive errno value of a code (`std::errc` values are the errno values).
[[nodiscard]] constexpr int to_errno(std::errc e) noexcept { return static_cast<int>(e); }

/// The symbolic errno name ("EINVAL") of the codes this library produces;
/// "E?" for others. For messages in tools and tests.
[[nodiscard]] constexpr std::string_view errno_name(std::errc e) noexcept {
  if (e == std::errc{}) return "OK";
  switch (e) {
    case std::errc::invalid_argument: return "EINVAL";
    case std::errc::value_too_large: return "EOVERFLOW";
    case std::errc::not_enough_memory: return "ENOMEM";
    case std::errc::bad_address: return "EFAULT";
    case std::errc::io_error: return "EIO";
    case std::errc::stream_timeout: return "ETIME";
    case std::errc::timed_out: return "ETIMEDOUT";
    case std::errc::inappropriate_io_control_operation: return "ENOTTY";
    case std::errc::no_such_device: return "ENODEV";
    case std::errc::no_such_file_or_directory: return "ENOENT";
    case std::errc::operation_not_supported: return "EOPNOTSUPP";
    case std::errc::file_exists: return "EEXIST";
    case std::errc::interrupted: return "EINTR";
    case std::errc::resource_unavailable_try_again: return "EAGAIN";
    case std::errc::permission_denied: return "EACCES";
    case std::errc::operation_not_permitted: return "EPERM";
    case std::errc::bad_file_descriptor: return "EBADF";
    case std::errc::connection_reset: return "ECONNRESET";
    case std::errc::broken_pipe: return "EPIPE";
    case std::errc::message_size: return "EMSGSIZE";
    case std::errc::protocol_error: return "EPROTO";
    case std::errc::bad_message: return "EBADMSG";
    case std::errc::function_not_supported: return "ENOSYS";
    case std::errc::argument_list_too_long: return "E2BIG";
    case std::errc::no_buffer_space: return "ENOBUFS";
    case std::errc::device_or_resource_busy: return "EBUSY";
    case std::errc::not_connected: return "ENOTCONN";
    case std::errc::result_out_of_range: return "ERANGE";
    case std::errc::address_in_use: return "EADDRINUSE";
    case std::errc::filename_too_long: return "ENAMETOOLONG";
    case std::errc::not_a_directory: return "ENOTDIR";
    case std::errc::is_a_directory: return "EISDIR";
    case std::errc::connection_refused: return "ECONNREFUSED";
    case std::errc::too_many_files_open: return "EMFILE";
    case std::errc::no_message_available: return "ENODATA";
    case std::errc::protocol_not_supported: return "EPROTONOSUPPORT";
    case std::errc::no_space_on_device: return "ENOSPC";
    case std::errc::read_only_file_system: return "EROFS";
    case std::errc::too_many_symbolic_link_levels: return "ELOOP";
    default: return "E?";
  }
}

}  // namespace nvgrace
