// §8.2–8.3 DMA-buf request validation and physical ranges.
#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/dma_buf.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/dma_buf.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

namespace {

using namespace nvgrace;
using vfio::region_dma_range;

const auto hopper = grace::derive_layout(0x4000'0000'0000, 96 * GiB, grace::generation::hopper).value();

TEST_CASE("§8.2 step 2 feature check: GET only, PROBE answers early, argsz minimum") {
  using vfio::feature_action;
  namespace f = vfio::feature_flags;
  constexpr auto dma = vfio::feature_dma_buf;
  CHECK(vfio::check_feature(f::get | dma, 16, f::get, 16).value() == feature_action::execute);
  CHECK(vfio::check_feature(f::get | dma, 15, f::get, 16).error() == nvgrace::errc::invalid_argument);
  CHECK(vfio::check_feature(f::set | dma, 16, f::get, 16).error() == nvgrace::errc::invalid_argument);
  CHECK(vfio::check_feature(f::probe | f::get | dma, 0, f::get, 16).value() == feature_action::probe_only);
  CHECK(vfio::check_feature(f::probe | f::set | dma, 0, f::get, 16).error() == nvgrace::errc::invalid_argument);
  CHECK(vfio::check_feature(dma, 16, f::get, 16).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("§8.2 steps 4-5 request checks: nr_ranges 0 or flags → EINVAL, index ≥ 6 → ENODEV") {
  CHECK(vfio::check_dma_buf_request({4, 0, 0, 1}).has_value());
  CHECK(vfio::check_dma_buf_request({4, 0, 0, 0}).error() == nvgrace::errc::invalid_argument);
  CHECK(vfio::check_dma_buf_request({4, 0, 1, 1}).error() == nvgrace::errc::invalid_argument);
  CHECK(vfio::check_dma_buf_request({6, 0, 0, 1}).error() == nvgrace::errc::no_such_device);
  CHECK(vfio::check_dma_buf_request({7, 0, 0, 0}).error() == nvgrace::errc::invalid_argument);  // order: EINVAL first
  CHECK(vfio::check_dma_buf_request({5, 0, 0, 1}).has_value());
}

TEST_CASE("§8.2 step 7 ranges: empty or unaligned → EINVAL, sum overflow → EINVAL, total ≥ 2^63 → EINVAL") {
  const std::array<region_dma_range, 1> ok{{{0x1000, 0x2000}}};
  CHECK(vfio::check_dma_buf_ranges(ok).has_value());
  const std::array<region_dma_range, 1> empty{{{0, 0}}};
  CHECK(vfio::check_dma_buf_ranges(empty).error() == nvgrace::errc::invalid_argument);
  const std::array<region_dma_range, 1> odd_offset{{{0x800, 0x1000}}};
  CHECK(vfio::check_dma_buf_ranges(odd_offset).error() == nvgrace::errc::invalid_argument);
  const std::array<region_dma_range, 1> odd_length{{{0, 0x1800}}};
  CHECK(vfio::check_dma_buf_ranges(odd_length).error() == nvgrace::errc::invalid_argument);
  CHECK(vfio::check_dma_buf_ranges(odd_length, 0x800).has_value());
  const std::array<region_dma_range, 2> overflow{{{0, ~std::uint64_t{0xFFF}}, {0, 0x1000}}};
  CHECK(vfio::check_dma_buf_ranges(overflow).error() == nvgrace::errc::invalid_argument);
  const std::array<region_dma_range, 2> swiotlb_bit{{{0, std::uint64_t{1} << 62}, {0, std::uint64_t{1} << 62}}};
  CHECK(vfio::check_dma_buf_ranges(swiotlb_bit).error() == nvgrace::errc::invalid_argument);
  const std::array<region_dma_range, 2> just_below{
      {{0, std::uint64_t{1} << 62}, {0, (std::uint64_t{1} << 62) - 0x1000}}};
  CHECK(vfio::check_dma_buf_ranges(just_below).has_value());
}

TEST_CASE("§8.3 ranges map to physical memory, bounded by memlength not the BAR size") {
  const auto& use = hopper.usemem;
  CHECK(grace::dma_range_to_phys(use, {0, use.real_length}).value() ==
        grace::phys_range{use.phys_base, use.real_length});
  CHECK(grace::dma_range_to_phys(use, {0x1000, 0x1000}).value() == grace::phys_range{use.phys_base + 0x1000, 0x1000});
  CHECK(grace::dma_range_to_phys(use, {0, use.real_length + 0x1000}).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::dma_range_to_phys(use, {use.real_length, 0x1000}).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::dma_range_to_phys(use, {0, 0}).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::dma_range_to_phys(use, {~std::uint64_t{0}, 0x1000}).error() == nvgrace::errc::value_too_large);
  CHECK(grace::dma_range_to_phys(use, {0, ~std::uint64_t{0} - 0x1000}).error() == nvgrace::errc::value_too_large);
  CHECK(grace::dma_range_to_phys(hopper.resmem, {0, GiB}).value() == grace::phys_range{hopper.resmem.phys_base, GiB});
}

TEST_CASE("§8.2-8.3 a whole request: all or nothing") {
  const auto& use = hopper.usemem;
  const std::array<region_dma_range, 2> ranges{{{0, 0x1000}, {0x10000, 0x2000}}};
  std::array<grace::phys_range, 2> out{};
  REQUIRE(grace::map_dma_buf(use, {4, 0, 0, 2}, ranges, out));
  CHECK(out[0] == grace::phys_range{use.phys_base, 0x1000});
  CHECK(out[1] == grace::phys_range{use.phys_base + 0x10000, 0x2000});
  const std::array<region_dma_range, 2> second_bad{{{0, 0x1000}, {use.real_length, 0x1000}}};
  std::array<grace::phys_range, 2> untouched{};
  CHECK(grace::map_dma_buf(use, {4, 0, 0, 2}, second_bad, untouched).error() == nvgrace::errc::invalid_argument);
  CHECK(untouched == std::array<grace::phys_range, 2>{});
  CHECK(grace::map_dma_buf(use, {4, 0, 0, 3}, ranges, out).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::map_dma_buf(use, {4, 0, 0, 0}, ranges, out).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::map_dma_buf(use, {6, 0, 0, 2}, ranges, out).error() == nvgrace::errc::no_such_device);
}

}  // namespace
