#pragma once
/// \file
/// A lock-free word for the few atomics nvgrace needs (the in-process device's
/// state word, a server's stop flag), built on the compiler's __atomic
/// builtins. <atomic> is avoided on purpose: in C++20 libstdc++ it brings
/// wait/notify and with them <system_error> and <string>, which would triple
/// the cost of every header that needs one flag. Sanitizers see these
/// operations exactly as they see std::atomic's.

#include <type_traits>

namespace nvgrace::detail {

/// Memory orders, as the builtins spell them.
enum class order : int {
  relaxed = __ATOMIC_RELAXED,
  acquire = __ATOMIC_ACQUIRE,
  release = __ATOMIC_RELEASE,
  acq_rel = __ATOMIC_ACQ_REL,
  seq_cst = __ATOMIC_SEQ_CST,
};

template <class T>
class atomic_word {
  static_assert(std::is_trivially_copyable_v<T> &&
                    (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8),
                "a lock-free word: a trivially copyable type of 1, 2, 4 or 8 bytes");

public:
  constexpr atomic_word() noexcept = default;
  constexpr explicit atomic_word(T value) noexcept : value_(value) {}
  atomic_word(const atomic_word&) = delete;
  atomic_word& operator=(const atomic_word&) = delete;

  [[nodiscard]] T load(order o = order::seq_cst) const noexcept {
    return __atomic_load_n(&value_, static_cast<int>(o));
  }
  void store(T value, order o = order::seq_cst) noexcept { __atomic_store_n(&value_, value, static_cast<int>(o)); }
  T exchange(T value, order o = order::seq_cst) noexcept {
    return __atomic_exchange_n(&value_, value, static_cast<int>(o));
  }
  T fetch_or(T bits, order o = order::seq_cst) noexcept requires std::is_integral_v<T> {
    return __atomic_fetch_or(&value_, bits, static_cast<int>(o));
  }
  T fetch_and(T bits, order o = order::seq_cst) noexcept requires std::is_integral_v<T> {
    return __atomic_fetch_and(&value_, bits, static_cast<int>(o));
  }
  T fetch_add(T n, order o = order::seq_cst) noexcept requires std::is_integral_v<T> {
    return __atomic_fetch_add(&value_, n, static_cast<int>(o));
  }
  /// On failure `expected` receives the current value.
  bool compare_exchange_weak(T& expected, T desired, order success, order failure) noexcept {
    return __atomic_compare_exchange_n(&value_, &expected, desired, true, static_cast<int>(success),
                                       static_cast<int>(failure));
  }

private:
  T value_{};
};

}  // namespace nvgrace::detail
