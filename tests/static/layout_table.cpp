// §2.3: every row of the worked-examples table, plus the ≤6.13 rule (§10 E1)
// and the ACPI step for memory size 0 (§2.1, §10 E13), as static_asserts.
#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/acpi.hpp>
#include <nvgrace/grace/kernel_rule.hpp>
#include <nvgrace/grace/layout.hpp>

#include <cstdint>

namespace {

using namespace nvgrace;
using grace::derive_layout;
using grace::generation;
using grace::kernel_rule;
using grace::memregion;

constexpr std::uint64_t base = 0x4000'0000'0000;

/// A table row that succeeds: usemem and resmem exactly as given.
constexpr bool row(std::uint64_t length, generation gen, memregion usemem, memregion resmem,
                   kernel_rule rule = kernel_rule::current) {
  const auto l = derive_layout(base, length, gen, rule);
  return l.has_value() && l->usemem == usemem && l->resmem == resmem && l->generation == gen;
}
/// A table row that fails with `error`.
constexpr bool row_fails(std::uint64_t length, generation gen, nvgrace::errc error,
                         kernel_rule rule = kernel_rule::current) {
  return derive_layout(base, length, gen, rule).error() == error;
}

// 96 GiB, Hopper.
static_assert(row(96 * GiB, generation::hopper, {base, 0x17'C000'0000, 0x20'0000'0000},
                  {0x4017'C000'0000, 0x4000'0000, 0x4000'0000}));
// 96 GiB + 300 MiB, Hopper: resmem grows past 1 GiB and reports 2 GiB.
static_assert(row(96 * GiB + 300 * MiB, generation::hopper, {base, 0x17'C000'0000, 0x20'0000'0000},
                  {0x4017'C000'0000, 0x52C0'0000, 0x8000'0000}));
// 65 GiB + 100 MiB, Hopper: the usemem BAR is sized before the round-down
// (128 GiB); up to 6.13 it was sized after it (64 GiB), §10 E1.
static_assert(row(65 * GiB + 100 * MiB, generation::hopper, {base, 0x10'0000'0000, 0x20'0000'0000},
                  {base + 0x10'0000'0000, 0x4640'0000, 0x8000'0000}));
static_assert(row(65 * GiB + 100 * MiB, generation::hopper, {base, 0x10'0000'0000, 0x10'0000'0000},
                  {base + 0x10'0000'0000, 0x4640'0000, 0x8000'0000}, kernel_rule::v6_13));
// 96 GiB is a case where both rules agree.
static_assert(derive_layout(base, 96 * GiB, generation::hopper, kernel_rule::v6_13) ==
              derive_layout(base, 96 * GiB, generation::hopper));
// 1.5 GiB, Hopper: the smallest memory that works.
static_assert(row(GiB + 512 * MiB, generation::hopper, {base, 0x2000'0000, 0x2000'0000},
                  {base + 0x2000'0000, 0x4000'0000, 0x4000'0000}));
// 1 GiB and 1.25 GiB, Hopper: usable memory rounds down to 0 → EINVAL.
static_assert(row_fails(GiB, generation::hopper, nvgrace::errc::invalid_argument));
static_assert(row_fails(GiB + 256 * MiB, generation::hopper, nvgrace::errc::invalid_argument));
static_assert(row_fails(GiB + 512 * MiB - 1, generation::hopper, nvgrace::errc::invalid_argument));
static_assert(row_fails(GiB, generation::hopper, nvgrace::errc::invalid_argument, kernel_rule::v6_13));
static_assert(row_fails(GiB + 256 * MiB, generation::hopper, nvgrace::errc::invalid_argument, kernel_rule::v6_13));
// 0.5 GiB, Hopper: length − 1 GiB underflows → EOVERFLOW.
static_assert(row_fails(512 * MiB, generation::hopper, nvgrace::errc::value_too_large));
static_assert(row_fails(GiB - 1, generation::hopper, nvgrace::errc::value_too_large));
// 186 GiB + 4 KiB, Blackwell: one region over everything, no resmem.
static_assert(row(186 * GiB + 4 * KiB, generation::blackwell, {base, 0x2E'8000'1000, 0x40'0000'0000}, {}));
static_assert(!derive_layout(base, 186 * GiB + 4 * KiB, generation::blackwell)->has_resmem());
// 0, any generation: the ACPI step fails with ENOMEM → plain mode, probe succeeds.
static_assert(grace::fetch_memory({base, 0}).error() == nvgrace::errc::not_enough_memory);
static_assert(grace::mode_for({base, 0}) == grace::mode::plain);
static_assert(grace::probe({base, 0}, generation::hopper)->mode == grace::mode::plain);
static_assert(grace::probe({base, 0}, generation::blackwell)->mode == grace::mode::plain);
static_assert(grace::probe({base, 0}, generation::hopper)->layout == grace::layout{});
// …while a Hopper memory that is too small fails the probe itself (§10 E13).
static_assert(grace::probe({base, GiB}, generation::hopper).error() == nvgrace::errc::invalid_argument);
static_assert(grace::probe({base, 512 * MiB}, generation::hopper).error() == nvgrace::errc::value_too_large);
static_assert(grace::probe({base, 96 * GiB}, generation::hopper)->mode == grace::mode::emulated);
static_assert(grace::probe({base, 96 * GiB}, generation::hopper)->layout ==
              *derive_layout(base, 96 * GiB, generation::hopper));

// The memregion(index) predicate (§2.3, last paragraph).
constexpr auto hopper = *derive_layout(base, 96 * GiB, generation::hopper);
constexpr auto blackwell = *derive_layout(base, 96 * GiB, generation::blackwell);
static_assert(hopper.region(4) == hopper.usemem && hopper.region(2) == hopper.resmem);
static_assert(blackwell.region(4) == blackwell.usemem && !blackwell.region(2));
static_assert(!hopper.region(0) && !hopper.region(3) && !hopper.region(7));
static_assert(hopper.usemem.padding() == 0x20'0000'0000 - 0x17'C000'0000 && hopper.resmem.padding() == 0);

}  // namespace

// The driver's rule by kernel version and by uname release text.
namespace kernel_rules {
using nvgrace::grace::kernel_rule;
constexpr kernel_rule of(nvgrace::text_view release) {
  kernel_rule r = kernel_rule::v7_1;
  return nvgrace::grace::parse_kernel_release(release, r) ? r : static_cast<kernel_rule>(0xFF);
}
static_assert(nvgrace::grace::kernel_rule_of(6, 10) == kernel_rule::v6_13);
static_assert(nvgrace::grace::kernel_rule_of(6, 13) == kernel_rule::v6_13);
static_assert(nvgrace::grace::kernel_rule_of(6, 14) == kernel_rule::v6_18);
static_assert(nvgrace::grace::kernel_rule_of(6, 18) == kernel_rule::v6_18);
static_assert(nvgrace::grace::kernel_rule_of(6, 19) == kernel_rule::v7_1);
static_assert(nvgrace::grace::kernel_rule_of(7, 1) == kernel_rule::v7_1);
static_assert(nvgrace::grace::kernel_rule_of(7, 2) == kernel_rule::current);
static_assert(nvgrace::grace::kernel_rule_of(8, 0) == kernel_rule::current);
static_assert(nvgrace::grace::kernel_rule_of(5, 15) == kernel_rule::v6_13);
static_assert(of("7.2.13-amd64") == kernel_rule::current);
static_assert(of("6.12.0") == kernel_rule::v6_13);
static_assert(of("6.14") == kernel_rule::v6_18);
static_assert(of("6.19-rc1") == kernel_rule::v7_1);
static_assert(of("7.1.0+") == kernel_rule::v7_1);
static_assert(of("") == static_cast<kernel_rule>(0xFF));
static_assert(of("7") == static_cast<kernel_rule>(0xFF));
static_assert(of("7.") == static_cast<kernel_rule>(0xFF));
static_assert(of("x7.2") == static_cast<kernel_rule>(0xFF));
static_assert(of("7.12345") == static_cast<kernel_rule>(0xFF));
static_assert(of("99999.1") == static_cast<kernel_rule>(0xFF));
}  // namespace kernel_rules
