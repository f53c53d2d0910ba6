#pragma once
/// \file
/// Precondition checks. Violating a precondition is a programmer error, not bad
/// input (bad input always gets an errno and changes nothing), so it fails
/// loudly, with or without any other library:
/// - in constant evaluation it does not compile (the check calls a function
///   that is not constexpr);
/// - at run time it calls the handler set with `set_contract_handler` (if any)
///   and then traps (`__builtin_trap`, SIGILL), or, in a build that defines
///   NVGRACE_USE_GSL and has Microsoft GSL, ends through GSL's failure path;
/// - defining NVGRACE_NO_RUNTIME_CONTRACTS removes the run-time checks (for
///   those who insist); constant evaluation still checks.

#include <type_traits>

#if defined(NVGRACE_USE_GSL) && __has_include(<gsl/assert>)
#include <gsl/assert>
#define NVGRACE_DETAIL_GSL_FAIL() ::gsl::details::terminate()
#else
#define NVGRACE_DETAIL_GSL_FAIL() __builtin_trap()
#endif

namespace nvgrace {

/// Called with the failed condition's text and its place before the trap.
/// It may log, or end the process its own way; if it returns, the trap follows.
using contract_handler = void (*)(const char* condition, const char* file, int line) noexcept;

namespace detail {
inline contract_handler contract_violation_handler = nullptr;

/// Not constexpr on purpose: reaching it in constant evaluation is a compile error.
[[noreturn, gnu::cold, gnu::noinline]] inline void contract_violated(const char* condition, const char* file,
                                                                     int line) noexcept {
  if (const contract_handler h = contract_violation_handler) h(condition, file, line);
  NVGRACE_DETAIL_GSL_FAIL();
}
}  // namespace detail

/// Install `handler` for precondition violations; returns the previous one.
/// Set it once at start-up (the variable is not synchronised).
inline contract_handler set_contract_handler(contract_handler handler) noexcept {
  const contract_handler previous = detail::contract_violation_handler;
  detail::contract_violation_handler = handler;
  return previous;
}

}  // namespace nvgrace

#if defined(NVGRACE_NO_RUNTIME_CONTRACTS)
#define NVGRACE_DETAIL_CHECK(cond)                            \
  ((!std::is_constant_evaluated() || static_cast<bool>(cond)) \
       ? static_cast<void>(0)                                 \
       : ::nvgrace::detail::contract_violated(#cond, __FILE__, __LINE__))
#else
#define NVGRACE_DETAIL_CHECK(cond) \
  (static_cast<bool>(cond) ? static_cast<void>(0) : ::nvgrace::detail::contract_violated(#cond, __FILE__, __LINE__))
#endif

/// A precondition of the enclosing function.
#define NVGRACE_EXPECTS(cond) NVGRACE_DETAIL_CHECK(cond)
/// A postcondition of the enclosing function.
#define NVGRACE_ENSURES(cond) NVGRACE_DETAIL_CHECK(cond)
