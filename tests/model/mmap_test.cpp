// §6.1 mmap bound and §6.2 the (huge) fault decision, for 4 KiB and 64 KiB pages (§10 E9–E10).
#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/grace/mmap.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <doctest/doctest.h>

#include <cstdint>

namespace {

using namespace nvgrace;
using grace::fault_outcome;

const auto hopper = grace::derive_layout(0x4000'0000'0000, 96 * GiB, grace::generation::hopper).value();

TEST_CASE("§6.1 §10 E9 mmap: exactly memlength maps, one page more is EINVAL, a huge pgoff EOVERFLOW") {
  const auto& use = hopper.usemem;
  const auto whole = grace::check_mmap(use, false, 0, use.real_length).value();
  CHECK(whole == grace::mmap_plan{0, use.real_length, false, grace::stage2_memory::cacheable});
  CHECK(grace::check_mmap(use, false, 0, use.real_length + 4096).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::check_mmap(use, false, 1, use.real_length).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::check_mmap(use, false, (use.real_length >> 12) - 1, 4096).value().region_offset ==
        use.real_length - 4096);
  // The padding up to the BAR size is never mappable.
  CHECK(grace::check_mmap(use, false, use.real_length >> 12, 4096).error() == nvgrace::errc::invalid_argument);
  CHECK(grace::check_mmap(use, false, ~std::uint64_t{0} >> 4, 4096).error() == nvgrace::errc::value_too_large);
  CHECK(grace::check_mmap(use, false, 1, ~std::uint64_t{0} - 100).error() == nvgrace::errc::value_too_large);
  // resmem maps write-combine.
  CHECK(grace::check_mmap(hopper.resmem, true, 0, GiB).value().write_combine);
  CHECK(grace::check_mmap(hopper.resmem, true, 0, GiB).value().stage2 == grace::stage2_memory::normal_nc);
  // 64 KiB pages scale the page offset.
  CHECK(grace::check_mmap(use, false, 2, 0x10000, 16).value().region_offset == 0x20000);
}

TEST_CASE("§6.1 §11 before 6.19: mapped at mmap time, the first-PFN overflow check comes before the bound") {
  using grace::kernel_rule;
  const auto& use = hopper.usemem;
  for (const kernel_rule rule : {kernel_rule::v6_13, kernel_rule::v6_18}) {
    CHECK(grace::check_mmap(use, false, 0, use.real_length, 12, rule).value() ==
          grace::mmap_plan{0, use.real_length, false, grace::stage2_memory::cacheable, true});
    CHECK(grace::check_mmap(use, false, 0, use.real_length + 4096, 12, rule).error() ==
          nvgrace::errc::invalid_argument);
    CHECK(grace::check_mmap(hopper.resmem, true, 0, GiB, 12, rule).value() ==
          grace::mmap_plan{0, GiB, true, grace::stage2_memory::normal_nc, true});
    CHECK(grace::check_mmap(use, false, 1, ~std::uint64_t{0} - 100, 12, rule).error() ==
          nvgrace::errc::value_too_large);
  }
  for (const kernel_rule rule : {kernel_rule::v7_1, kernel_rule::current})
    CHECK_FALSE(grace::check_mmap(use, false, 0, 4096, 12, rule).value().populated);
  // PHYS_PFN(base) + page offset overflowing while page offset · page size does
  // not: only the old driver said EOVERFLOW (reachable only with a tiny page
  // shift; with 4 KiB pages a 64-bit PFN cannot overflow first).
  const grace::memregion high{0x8000'0000'0000'0000, 0x1000, 0x1000};
  const std::uint64_t pgoff = 0x8000'0000'0000'0000;
  CHECK(grace::check_mmap(high, false, pgoff, 1, 0, kernel_rule::v6_18).error() == nvgrace::errc::value_too_large);
  CHECK(grace::check_mmap(high, false, pgoff, 1, 0, kernel_rule::current).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("§6.2 §11 before 6.19 a touch never faults: premapped at the page, whatever the order") {
  const auto& use = hopper.usemem;
  const grace::vma v{0x7F00'0000'0000, 0x7F00'4000'0000, (vfio::region_offset(4) >> 12) + 16};
  const std::uint64_t pfn0 = (use.phys_base >> 12) + 16;
  CHECK(grace::decide_premapped_touch(use, v, 0x7F00'0020'0123) ==
        grace::fault_decision{fault_outcome::premapped, 0x7F00'0020'0000, pfn0 + 0x200});
  CHECK(grace::decide_premapped_touch(use, v, 0x7F00'0000'0000) ==
        grace::fault_decision{fault_outcome::premapped, 0x7F00'0000'0000, pfn0});
  // 64 KiB pages: the page is 64 KiB.
  const grace::vma w{0x7F00'0000'0000, 0x7F00'4000'0000, (vfio::region_offset(4) >> 16) + 1};
  CHECK(grace::decide_premapped_touch(use, w, 0x7F00'0002'1234, grace::arm64_64k_pages) ==
        grace::fault_decision{fault_outcome::premapped, 0x7F00'0002'0000, (use.phys_base >> 16) + 1 + 2});
}

TEST_CASE("§6.1 a memlength that is not page-aligned: the last partial page cannot be mapped") {
  const grace::memregion odd{0x4000'0000'0000, 0x10'0000 + 0x800, 0x20'0000};
  CHECK(grace::check_mmap(odd, false, 0, 0x10'0000).has_value());
  CHECK(grace::check_mmap(odd, false, 0, 0x10'1000).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("§6.1 vm_pgoff splits into region index and page offset") {
  const std::uint64_t pgoff = vfio::region_offset(4) >> 12;
  CHECK(grace::region_index_of_pgoff(pgoff + 77) == 4);
  CHECK(grace::region_page_offset(pgoff + 77) == 77);
  CHECK(grace::region_index_of_pgoff(vfio::region_offset(2) >> 16, 16) == 2);
}

TEST_CASE("§6.2 order-0 faults insert a PTE at the right pfn") {
  const auto& use = hopper.usemem;
  const grace::vma v{0x7F00'0000'0000, 0x7F00'0020'0000, (vfio::region_offset(4) >> 12) + 16};
  const auto d = grace::decide_fault(use, v, 0x7F00'0000'3123, 0);
  CHECK(d.outcome == fault_outcome::insert_pte);
  CHECK(d.address == 0x7F00'0000'3000);
  CHECK(d.pfn == (use.phys_base >> 12) + 3 + 16);
}

TEST_CASE("§6.2 §10 E10 huge faults: aligned PMD/PUD insert, misaligned ones fall back, then order 0 works") {
  const auto& use = hopper.usemem;  // phys base 0x4000_0000_0000 is 1 GiB aligned
  const std::uint64_t pgoff = vfio::region_offset(4) >> 12;
  const grace::vma v{0x4000'0000'0000, 0x4000'0000'0000 + 4 * GiB, pgoff};
  CHECK(grace::decide_fault(use, v, 0x4000'0020'1234, 9).outcome == fault_outcome::insert_pmd);
  CHECK(grace::decide_fault(use, v, 0x4000'4000'1234, 18).outcome == fault_outcome::insert_pud);
  CHECK(grace::decide_fault(use, v, 0x4000'4000'1234, 18).address == 0x4000'4000'0000);
  // An order the platform does not insert falls back.
  CHECK(grace::decide_fault(use, v, 0x4000'0000'0000, 4).outcome == fault_outcome::fallback);
  // VMA not 2 MiB aligned: the PMD would start before vm_start.
  const grace::vma shifted{0x4000'0000'1000, 0x4000'0000'1000 + 64 * MiB, pgoff};
  CHECK(grace::decide_fault(use, shifted, 0x4000'0000'2000, 9).outcome == fault_outcome::fallback);
  CHECK(grace::decide_fault(use, shifted, 0x4000'0000'2000, 0).outcome == fault_outcome::insert_pte);
  // pfn not a multiple of 2^order: a page offset of 1 into the region.
  const grace::vma off_by_page{0x4000'0000'0000, 0x4000'0000'0000 + 64 * MiB, pgoff + 1};
  CHECK(grace::decide_fault(use, off_by_page, 0x4000'0020'0000, 9).outcome == fault_outcome::fallback);
  CHECK(grace::decide_fault(use, off_by_page, 0x4000'0020'0000, 0).outcome == fault_outcome::insert_pte);
  // The huge page would cross vm_end.
  const grace::vma short_vma{0x4000'0000'0000, 0x4000'0000'0000 + 3 * MiB, pgoff};
  CHECK(grace::decide_fault(use, short_vma, 0x4000'0020'0000, 9).outcome == fault_outcome::fallback);
  CHECK(grace::decide_fault(use, short_vma, 0x4000'0000'0000, 9).outcome == fault_outcome::insert_pmd);
}

TEST_CASE("§6.2 device state: PM, readiness and memory enable give SIGBUS; misalignment is checked first") {
  const auto& use = hopper.usemem;
  const grace::vma v{0x4000'0000'0000, 0x4000'0000'0000 + 64 * MiB, vfio::region_offset(4) >> 12};
  for (const grace::fault_state state : {grace::fault_state{true, true, true}, grace::fault_state{false, false, true},
                                         grace::fault_state{false, true, false}}) {
    CHECK(grace::decide_fault(use, v, 0x4000'0000'0000, 0, state).outcome == fault_outcome::sigbus);
    CHECK(grace::decide_fault(use, v, 0x4000'0000'0000, 9, state).outcome == fault_outcome::sigbus);
    // Misaligned huge faults fall back before the device is consulted.
    CHECK(grace::decide_fault(use, v, 0x4000'0000'0000, 18, state).outcome == fault_outcome::fallback);
  }
}

TEST_CASE("§6.2 64 KiB pages: PMD order 13 (512 MiB), no PUD; PMD support can be switched off") {
  const auto& use = hopper.usemem;
  const grace::vma v{0x4000'0000'0000, 0x4000'0000'0000 + 2 * GiB, vfio::region_offset(4) >> 16};
  const auto pmd = grace::decide_fault(use, v, 0x4000'2000'0000 + 0x1234, 13, {}, grace::arm64_64k_pages);
  CHECK(pmd.outcome == fault_outcome::insert_pmd);
  CHECK(pmd.address == 0x4000'2000'0000);
  CHECK(pmd.pfn == (use.phys_base >> 16) + (0x2000'0000 >> 16));
  CHECK(grace::decide_fault(use, v, 0x4000'0001'0000, 0, {}, grace::arm64_64k_pages).outcome ==
        fault_outcome::insert_pte);
  CHECK(grace::decide_fault(use, v, 0x4000'0000'0000, 9, {}, grace::arm64_64k_pages).outcome ==
        fault_outcome::fallback);
  grace::huge_pfnmap no_pmd = grace::arm64_4k_pages;
  no_pmd.pmd_supported = false;
  const grace::vma v4k{0x4000'0000'0000, 0x4000'0000'0000 + 2 * GiB, vfio::region_offset(4) >> 12};
  CHECK(grace::decide_fault(use, v4k, 0x4000'0000'0000, 9, {}, no_pmd).outcome == fault_outcome::fallback);
  CHECK(grace::decide_fault(use, v4k, 0x4000'0000'0000, 9, {}, grace::arm64_4k_pages).outcome ==
        fault_outcome::insert_pmd);
}

TEST_CASE("§6.2 a fault address below vm_start never passes the huge checks") {
  const auto& use = hopper.usemem;
  const grace::vma v{0x4000'0010'0000, 0x4000'0010'0000 + 64 * MiB, vfio::region_offset(4) >> 12};
  CHECK(grace::decide_fault(use, v, 0x4000'0010'0000, 9).outcome == fault_outcome::fallback);
  // Near the top of the address space the end computation must not wrap.
  const grace::vma top{~std::uint64_t{0} - 0x1F'FFFF - 0x20'0000, ~std::uint64_t{0}, 0};
  CHECK(grace::decide_fault(use, top, ~std::uint64_t{0} - 5, 9).outcome == fault_outcome::fallback);
}

}  // namespace
