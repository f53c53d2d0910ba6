// §1: region file offsets (index << 40) and the vm_pgoff split of §6.1.
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/grace/mmap.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <cstdint>

namespace {

using namespace nvgrace::vfio;

static_assert(offset_shift == 40 && offset_mask == 0xFF'FFFF'FFFF);
static_assert(region_offset(0) == 0 && region_offset(2) == 0x200'0000'0000 && region_offset(4) == 0x400'0000'0000);
static_assert(region_offset(7) == 0x700'0000'0000 && region_offset(8) == 0x800'0000'0000);
// The shift is done in 64 bits: the largest index that fits, 2^24 − 1, keeps all its bits.
static_assert(region_offset(0x00FF'FFFF) == 0xFFFF'FF00'0000'0000);
static_assert(region_index_of(0x400'0000'0000) == 4 && region_index_of(0x3FF'FFFF'FFFF) == 3);
static_assert(offset_in_region(0x400'0000'1234) == 0x1234 && offset_in_region(0x4FF'FFFF'FFFF) == offset_mask);
static_assert(file_offset(4, 0x1234) == 0x400'0000'1234);
// file_offset keeps only the in-region bits of the offset.
static_assert(file_offset(2, 0x100'0000'0001) == 0x200'0000'0001);
static_assert(to_index(region::bar2) == 2 && to_index(region::bar4) == 4 && to_index(region::config) == 7);
static_assert(to_index(region::vga) == 8 && pci_num_regions == 9);
constexpr bool round_trips() {
  for (std::uint32_t index = 0; index < pci_num_regions; ++index)
    for (std::uint64_t off : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0x17'C000'0000}, offset_mask}) {
      const std::uint64_t pos = file_offset(index, off);
      if (region_index_of(pos) != index || offset_in_region(pos) != off) return false;
    }
  return true;
}
static_assert(round_trips());

// §6.1 vm_pgoff: index = pgoff >> (40 − PAGE_SHIFT); in-region page = the rest.
static_assert(nvgrace::grace::region_index_of_pgoff(0x400'0000'0000 >> 12) == 4);
static_assert(nvgrace::grace::region_page_offset((0x400'0000'0000 >> 12) + 5) == 5);
static_assert(nvgrace::grace::region_index_of_pgoff(0x200'0000'0000 >> 16, 16) == 2);
static_assert(nvgrace::grace::region_page_offset((0x200'0000'0000 >> 16) + 7, 16) == 7);

}  // namespace
