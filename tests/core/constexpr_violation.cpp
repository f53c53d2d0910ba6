// Compiled by ctest, never linked. As it is, it compiles (the control). With
// NVGRACE_VIOLATE_<CHECK> defined, exactly one precondition is violated in
// constant evaluation, which must be a compile error that names the contract
// function and quotes that check's condition (tests/core/CMakeLists.txt has
// one test per check, each looking for its own condition).
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>

#include <array>
#include <cstddef>
#include <span>

constexpr nvgrace::result<int> failed = nvgrace::errc::invalid_argument;
constexpr nvgrace::result<int> fine = 42;
constexpr std::array<std::byte, 4> four_bytes{};
static_assert(fine.value() == 42);
static_assert(nvgrace::align_down(1000, 512) == 512);
static_assert(nvgrace::is_aligned(1024, 512));
static_assert(nvgrace::load_le<std::uint32_t>(std::span<const std::byte>(four_bytes), 0) == 0);

#if defined(NVGRACE_VIOLATE_VALUE)
constexpr int value_of_an_error = failed.value();  // result::value(): has_value()
#endif
#if defined(NVGRACE_VIOLATE_EMPTY_ERROR)
constexpr nvgrace::result<int> no_error = nvgrace::errc{};  // result(errc): error != errc{}
#endif
#if defined(NVGRACE_VIOLATE_ALIGN_DOWN)
constexpr auto odd_alignment = nvgrace::align_down(1000, 3);  // align_down: a power of two
#endif
#if defined(NVGRACE_VIOLATE_IS_ALIGNED)
constexpr bool odd_aligned = nvgrace::is_aligned(1000, 3);  // is_aligned: a power of two
#endif
#if defined(NVGRACE_VIOLATE_LOAD_LE)
// load_le: the bytes inside the span.
constexpr auto past_the_end = nvgrace::load_le<std::uint32_t>(std::span<const std::byte>(four_bytes), 1);
#endif
