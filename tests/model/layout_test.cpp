// §2.1 ACPI inputs and §2.3 layout derivation, incl. §10 E1 and E13.
#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/acpi.hpp>
#include <nvgrace/grace/layout.hpp>

#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <optional>

namespace {

using namespace nvgrace;
using grace::derive_layout;
using grace::generation;
using grace::kernel_rule;

constexpr std::uint64_t base = 0x4000'0000'0000;

TEST_CASE("§2.1 ACPI: missing properties or size 0 mean plain mode, not an error") {
  using grace::acpi_properties;
  CHECK(grace::fetch_memory(acpi_properties{}).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::fetch_memory(acpi_properties{base, std::nullopt}).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::fetch_memory(acpi_properties{std::nullopt, 96 * GiB}).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::fetch_memory(acpi_properties{base, 0}).error() == nvgrace::errc::not_enough_memory);
  for (const auto& props : {acpi_properties{}, acpi_properties{base, std::nullopt}, acpi_properties{base, 0}}) {
    CHECK(grace::mode_for(props) == grace::mode::plain);
    const auto probed = grace::probe(props, generation::hopper);
    REQUIRE(probed);
    CHECK(probed->mode == grace::mode::plain);
    CHECK(probed->layout == grace::layout{});
  }
  const auto memory = grace::fetch_memory(acpi_properties{base, 96 * GiB});
  REQUIRE(memory);
  CHECK(*memory == grace::device_memory_range{base, 96 * GiB});
  CHECK(grace::mode_for(acpi_properties{base, 96 * GiB}) == grace::mode::emulated);
  CHECK(grace::acpi_base_property == "nvidia,gpu-mem-base-pa");
  CHECK(grace::acpi_size_property == "nvidia,gpu-mem-size");
}

TEST_CASE("§2.1 ACPI: values beyond the address width are EOVERFLOW, in the driver's order") {
  const grace::address_widths narrow{48, 40};
  CHECK(grace::fetch_memory({std::uint64_t{1} << 48, GiB}, narrow).error() == nvgrace::errc::value_too_large);
  CHECK(grace::fetch_memory({(std::uint64_t{1} << 48) - 1, GiB}, narrow).value().phys_base ==
        (std::uint64_t{1} << 48) - 1);
  CHECK(grace::fetch_memory({base, std::uint64_t{1} << 40}, narrow).error() == nvgrace::errc::value_too_large);
  CHECK(grace::fetch_memory({base, (std::uint64_t{1} << 40) - 1}, narrow).value().length ==
        (std::uint64_t{1} << 40) - 1);
  // The base is checked before the size is even looked at.
  CHECK(grace::fetch_memory({std::uint64_t{1} << 48, std::nullopt}, narrow).error() == nvgrace::errc::value_too_large);
  // On 64-bit arm64 the width checks can never fire.
  CHECK(grace::fetch_memory({~std::uint64_t{0}, ~std::uint64_t{0}}).has_value());
  CHECK(grace::mode_for({std::uint64_t{1} << 48, GiB}, narrow) == grace::mode::plain);
}

TEST_CASE("§2.3 worked examples, table rows 1-4 (Hopper)") {
  const auto a = derive_layout(base, 96 * GiB, generation::hopper).value();
  CHECK(a.usemem == grace::memregion{base, 0x17'C000'0000, 0x20'0000'0000});
  CHECK(a.resmem == grace::memregion{0x4017'C000'0000, 0x4000'0000, 0x4000'0000});
  const auto b = derive_layout(base, 96 * GiB + 300 * MiB, generation::hopper).value();
  CHECK(b.usemem == grace::memregion{base, 0x17'C000'0000, 0x20'0000'0000});
  CHECK(b.resmem == grace::memregion{0x4017'C000'0000, 0x52C0'0000, 0x8000'0000});
  const auto c = derive_layout(base, 65 * GiB + 100 * MiB, generation::hopper).value();
  CHECK(c.usemem == grace::memregion{base, 0x10'0000'0000, 0x20'0000'0000});
  CHECK(c.resmem == grace::memregion{base + 0x10'0000'0000, 0x4640'0000, 0x8000'0000});
  const auto d = derive_layout(base, GiB + 512 * MiB, generation::hopper).value();
  CHECK(d.usemem == grace::memregion{base, 0x2000'0000, 0x2000'0000});
  CHECK(d.resmem == grace::memregion{base + 0x2000'0000, 0x4000'0000, 0x4000'0000});
  for (const auto& l : {a, b, c, d}) {
    CHECK(l.generation == generation::hopper);
    CHECK(l.has_resmem());
    CHECK(l.resmem.phys_base == l.usemem.phys_base + l.usemem.real_length);
    CHECK(l.resmem.real_length >= GiB);
    CHECK(l.resmem.real_length < GiB + 512 * MiB);
    CHECK(l.usemem.real_length % (512 * MiB) == 0);
  }
}

TEST_CASE("§2.3 worked examples, failing rows: 1 GiB and 1.25 GiB EINVAL, 0.5 GiB EOVERFLOW") {
  CHECK(derive_layout(base, GiB, generation::hopper).error() == nvgrace::errc::invalid_argument);
  CHECK(derive_layout(base, GiB + 256 * MiB, generation::hopper).error() == nvgrace::errc::invalid_argument);
  CHECK(derive_layout(base, 512 * MiB, generation::hopper).error() == nvgrace::errc::value_too_large);
  CHECK(derive_layout(base, 0, generation::hopper).error() == nvgrace::errc::value_too_large);
  CHECK(grace::describe_layout_error(base, GiB + 256 * MiB, generation::hopper) == "usable memory rounds down to 0");
  CHECK(grace::describe_layout_error(base, 512 * MiB, generation::hopper) ==
        "memory is smaller than the 1 GiB carve-out");
  CHECK(grace::describe_layout_error(base, 96 * GiB, generation::hopper).empty());
  // §10 E13: those sizes fail the probe itself with the same errno.
  CHECK(grace::probe({base, GiB + 256 * MiB}, generation::hopper).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::probe({base, 512 * MiB}, generation::hopper).error() == nvgrace::errc::value_too_large);
}

TEST_CASE("§2.3 worked examples: Blackwell 186 GiB + 4 KiB, and size 0 → plain via ENOMEM") {
  const auto l = derive_layout(base, 186 * GiB + 4 * KiB, generation::blackwell).value();
  CHECK(l.generation == generation::blackwell);
  CHECK(l.usemem == grace::memregion{base, 0x2E'8000'1000, 0x40'0000'0000});
  CHECK(l.resmem == grace::memregion{});
  CHECK_FALSE(l.has_resmem());
  CHECK_FALSE(l.region(2).has_value());
  CHECK(l.region(4) == l.usemem);
  for (const auto gen : {generation::hopper, generation::blackwell}) {
    CHECK(grace::fetch_memory({base, 0}).error() == nvgrace::errc::not_enough_memory);
    CHECK(grace::probe({base, 0}, gen).value().mode == grace::mode::plain);
  }
  CHECK(derive_layout(base, 0, generation::blackwell).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::describe_layout_error(base, 0, generation::blackwell) == "memory size is 0");
}

TEST_CASE("§10 E1 the 6.13 rule sizes usemem after the round-down, and has no Blackwell case") {
  const auto now = derive_layout(base, 65 * GiB + 100 * MiB, generation::hopper).value();
  const auto old = derive_layout(base, 65 * GiB + 100 * MiB, generation::hopper, kernel_rule::v6_13).value();
  CHECK(now.usemem.reported_size == 128 * GiB);
  CHECK(old.usemem.reported_size == 64 * GiB);
  CHECK(old.usemem.real_length == now.usemem.real_length);
  CHECK(old.resmem == now.resmem);
  // Before 6.14 every device got the carve-out.
  const auto bw_old = derive_layout(base, 96 * GiB, generation::blackwell, kernel_rule::v6_13).value();
  CHECK(bw_old.generation == generation::hopper);
  CHECK(bw_old == derive_layout(base, 96 * GiB, generation::hopper, kernel_rule::v6_13).value());
  CHECK(grace::to_string(kernel_rule::current) == "current");
  CHECK(grace::to_string(kernel_rule::v6_13) == "6.13");
}

TEST_CASE("§2.3 the 512 MiB granule and BAR sizes over a sweep of Hopper sizes") {
  // Every 64 MiB step from 1.5 GiB to 40 GiB: check the invariants against a
  // direct restatement of the algorithm.
  for (std::uint64_t length = GiB + 512 * MiB; length <= 40 * GiB; length += 64 * MiB) {
    const auto l = derive_layout(base, length, generation::hopper).value();
    const std::uint64_t usable = length - GiB;
    CHECK(l.usemem.reported_size == std::bit_ceil(usable));
    CHECK(l.usemem.real_length == usable / (512 * MiB) * (512 * MiB));
    CHECK(l.resmem.real_length == length - l.usemem.real_length);
    CHECK(l.resmem.reported_size == (l.resmem.real_length == GiB ? GiB : 2 * GiB));
  }
}

TEST_CASE("§2.3 extremes: 64-bit limits are errors, never a crash") {
  const std::uint64_t max = ~std::uint64_t{0};
  CHECK(derive_layout(base, max, generation::blackwell).error() == nvgrace::errc::value_too_large);
  CHECK(derive_layout(base, std::uint64_t{1} << 63, generation::blackwell).value().usemem.reported_size ==
        std::uint64_t{1} << 63);
  CHECK(derive_layout(0, max, generation::hopper).error() == nvgrace::errc::value_too_large);
  CHECK(grace::describe_layout_error(0, max, generation::hopper) ==
        "usable memory has no 64-bit power of two above it");
  // The 6.13 rule sizes after the round-down, which can also exceed 2^63.
  CHECK(derive_layout(0, max, generation::hopper, kernel_rule::v6_13).error() == nvgrace::errc::value_too_large);
  // Hopper resmem base overflow (step 7).
  CHECK(derive_layout(max - 2 * GiB, 4 * GiB, generation::hopper).error() == nvgrace::errc::value_too_large);
  CHECK(grace::describe_layout_error(max - 2 * GiB, 4 * GiB, generation::hopper) ==
        "the carve-out's physical address overflows 64 bits");
  // Blackwell does not check memphys + memlength (§2.3 "not validated").
  CHECK(derive_layout(max, 4 * GiB, generation::blackwell).has_value());
  CHECK(grace::region_name(2) == "resmem");
  CHECK(grace::region_name(4) == "usemem");
  CHECK(grace::region_name(0).empty());
}

}  // namespace
