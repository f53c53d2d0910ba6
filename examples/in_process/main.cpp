// in_process: what a VMM does with an nvgrace-gpu device, in one page, over the
// in-process device (no kernel, no hardware).
//
// It opens the in-process device (a Grace Hopper with 1.5 GiB + 4 KiB of GPU
// memory: usemem 512 MiB behind a 1 GiB BAR4, resmem 1 GiB + 4 KiB behind a
// 2 GiB BAR2), enumerates its regions, sizes the BARs through config space,
// maps the sparse areas, then reads and writes across the real end of BAR4
// and of BAR2. The same code runs over /dev/vfio or vfio-user: only the
// device type changes.
#include <nvgrace/access/accessor.hpp>
#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/core/result.hpp>

#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace {

using namespace nvgrace;
using device = shim::memfd_device;

std::string hex_bytes(std::span<const std::byte> bytes) {
  std::string out;
  char piece[4];
  for (const std::byte b : bytes) {
    std::snprintf(piece, sizeof piece, " %02x", std::to_integer<unsigned>(b));
    out += piece;
  }
  return out;
}

template <class Accessor>
void show_read(Accessor& vmm, const char* name, std::uint32_t index, std::uint64_t offset) {
  std::array<std::byte, 16> buffer{};
  const auto n = vmm.read(index, offset, buffer);
  if (!n) {
    std::printf("read %s @0x%llx 16 bytes: %s\n", name, static_cast<unsigned long long>(offset),
                errno_name(n.error()).c_str());
    return;
  }
  std::printf("read %s @0x%llx 16 bytes: %zu:%s\n", name, static_cast<unsigned long long>(offset), *n,
              hex_bytes(std::span<const std::byte>(buffer).first(*n)).c_str());
}

}  // namespace

int main() {
  auto dev = device::create(shim::hopper(3 * GiB / 2 + 4 * KiB));
  if (!dev) {
    std::fprintf(stderr, "in_process: cannot create the device: %s\n", dev.message().c_str());
    return 1;
  }
  std::printf("device 10de:%04x generation %s mode %s\n", dev->device_id(), grace::to_string(dev->generation()).data(),
              grace::to_string(dev->mode()).c_str());

  // Discover the regions; map nothing yet.
  auto opened = access::open(*dev, access::map_none);
  if (!opened) {
    std::fprintf(stderr, "in_process: cannot open: %s\n", opened.message().c_str());
    return 1;
  }
  auto& vmm = *opened;
  for (std::uint32_t index = 0; index < vmm.region_count(); ++index) {
    const auto r = vmm.find_region(index);
    if (!r.has_value()) {
      std::printf("region %u: absent\n", index);
      continue;
    }
    std::printf("region %u: size 0x%llx flags 0x%x offset 0x%llx", index, static_cast<unsigned long long>(r->size()),
                r->flags(), static_cast<unsigned long long>(r->file_offset()));
    for (const access::area& a : r->sparse_areas())
      std::printf(" sparse [0x%llx +0x%llx]", static_cast<unsigned long long>(a.offset),
                  static_cast<unsigned long long>(a.size));
    std::printf("\n");
  }

  // Size the BARs the way a VMM does: decode off, all-ones, read back, restore.
  const auto bars = vmm.size_bars();
  if (!bars) {
    std::fprintf(stderr, "in_process: BAR sizing failed: %s\n", bars.message().c_str());
    return 1;
  }
  for (const access::bar_info& b : *bars) {
    if (!b.implemented) continue;
    std::printf("BAR%u: %s%s size 0x%llx\n", b.bar, b.is_64bit ? "64-bit" : "32-bit",
                b.prefetchable ? " prefetchable" : "", static_cast<unsigned long long>(b.size));
  }

  // Map every sparse area at a huge-page-friendly address.
  if (auto s = vmm.map_areas(); !s) {
    std::fprintf(stderr, "in_process: mapping failed: %s\n", s.message().c_str());
    return 1;
  }
  for (std::uint32_t index = 0; index < vmm.region_count(); ++index) {
    const auto r = vmm.find_region(index);
    if (!r.has_value()) continue;
    for (const access::mapped_area& m : r->mappings()) {
      const std::uint64_t alignment = std::min<std::uint64_t>(GiB, std::bit_floor(m.length));
      const bool aligned = reinterpret_cast<std::uintptr_t>(m.base) % alignment == 0;
      std::printf("region %u: mapped 0x%llx bytes, %s\n", index, static_cast<unsigned long long>(m.length),
                  aligned ? "huge-page aligned" : "NOT aligned");
    }
  }

  // Across the real end of BAR4 (usemem, 512 MiB of memory in a 1 GiB BAR):
  // the memory part lands, the padding drops writes and reads 0xFF.
  const std::uint64_t usemem_real = 0x2000'0000;
  std::array<std::byte, 16> data{};
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(0x11 * (i + 1));
  constexpr auto usemem = grace::usemem_index;
  constexpr auto resmem = grace::resmem_index;
  const auto written = vmm.write(usemem, usemem_real - 8, data);
  if (written)
    std::printf("write BAR4 @0x%llx 16 bytes: %zu\n", static_cast<unsigned long long>(usemem_real - 8), *written);
  show_read(vmm, "BAR4", usemem, usemem_real - 8);
  show_read(vmm, "BAR4", usemem, 0x4000'0000 - 8);  // clipped at the BAR end
  show_read(vmm, "BAR4", usemem, 0x4000'0000);      // past it

  // Across the real end of BAR2 (resmem, uncached): the documented semantics
  // return the full count (upstream's driver would return only the memory part).
  const std::uint64_t resmem_real = 0x4000'1000;
  std::array<std::byte, 8> tail{};
  for (std::size_t i = 0; i < tail.size(); ++i) tail[i] = static_cast<std::byte>(0xA1 + i);
  if (!vmm.write(resmem, resmem_real - 8, tail)) return 1;  // wholly mapped: the copy path
  show_read(vmm, "BAR2", resmem, resmem_real - 8);
  return 0;
}
