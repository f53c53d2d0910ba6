// Compiled by ctest, never linked: with NVGRACE_VIOLATE a precondition is violated in
// constant evaluation, which must be a compile error naming the contract check.
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>

constexpr nvgrace::result<int> failed = nvgrace::errc::invalid_argument;
constexpr nvgrace::result<int> fine = 42;
static_assert(fine.value() == 42);
static_assert(nvgrace::align_down(1000, 512) == 512);

#if defined(NVGRACE_VIOLATE)
constexpr int value_of_an_error = failed.value();             // precondition: has_value()
constexpr auto odd_alignment = nvgrace::align_down(1000, 3);  // precondition: a power of two
#endif
