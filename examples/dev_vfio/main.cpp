// dev_vfio: the VMM side over a real device under /dev/vfio: the same accessor code as the
// in-process example, with the kernel's driver answering (vfio-pci, or nvgrace-gpu's
// variant driver on a Grace machine).
//
//   dev_vfio PCI-ADDRESS        e.g. dev_vfio 0000:01:00.0
//
// Opens the device through its IOMMU group (sysfs finds it, noiommu groups included),
// lists the regions with their sparse areas, sizes the BARs through config space and, on a
// Grace GPU, maps its memory with the driver's caching (the carve-out uncached) and reads the
// first bytes past usemem's real memory, which read as 0xFF.
// Exit status: 0 done, 1 a step failed, 2 usage, 3 the device cannot be opened.
#include <nvgrace/access/accessor.hpp>
#include <nvgrace/backend/linux/device.hpp>
#include <nvgrace/backend/linux/pci_address.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/layout.hpp>

#include <array>
#include <cstdint>
#include <cstdio>

using namespace nvgrace;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: dev_vfio PCI-ADDRESS (e.g. 0000:01:00.0)\n");
    return 2;
  }
  const auto address = linux_vfio::parse_pci_address(argv[1]);
  if (!address) {
    std::fprintf(stderr, "dev_vfio: '%s' is not a PCI address: %s\n", argv[1], errno_name(address.error()).c_str());
    return 2;
  }
  auto dev = linux_vfio::device::open_pci(*address);
  if (!dev) {
    std::fprintf(stderr, "dev_vfio: cannot open %s: %s (%s)\n", argv[1], errno_name(dev.error()).c_str(),
                 dev.message().c_str());
    return 3;
  }

  // Discover first; the caching policy depends on what the device is.
  auto vmm = access::open(*dev, access::map_none);
  if (!vmm) {
    std::fprintf(stderr, "dev_vfio: cannot query the regions: %s\n", vmm.message().c_str());
    return 1;
  }
  for (std::uint32_t index = 0; index < vmm->region_count(); ++index) {
    const auto r = vmm->find_region(index);
    if (!r) continue;
    std::printf("region %u: size 0x%llx flags 0x%x", index, static_cast<unsigned long long>(r->size()), r->flags());
    for (const access::area& a : r->sparse_areas())
      std::printf(" sparse [0x%llx +0x%llx]", static_cast<unsigned long long>(a.offset),
                  static_cast<unsigned long long>(a.size));
    std::printf("\n");
  }
  const auto bars = vmm->size_bars();
  if (!bars) {
    std::fprintf(stderr, "dev_vfio: BAR sizing failed: %s\n", bars.message().c_str());
    return 1;
  }
  for (const access::bar_info& b : *bars)
    if (b.implemented)
      std::printf("BAR%u: size 0x%llx%s\n", b.bar, static_cast<unsigned long long>(b.size),
                  b.prefetchable ? " prefetchable" : "");

  // On a Grace GPU: reopen the accessor with the driver's caching and map.
  const auto vendor = vmm->config_read<std::uint16_t>(pci::reg::vendor_id);
  const auto device = vmm->config_read<std::uint16_t>(pci::reg::device_id);
  if (!vendor || !device) return 1;
  const auto grace_id = grace::find_device(*vendor, *device);
  if (!grace_id) {
    std::printf("%04x:%04x is not a Grace GPU: done\n", *vendor, *device);
    return 0;
  }
  auto mapped = access::open(*dev, access::map_all.with_uncached(grace::uncached_regions(grace_id->generation)));
  if (!mapped) {
    std::fprintf(stderr, "dev_vfio: mapping failed: %s\n", mapped.message().c_str());
    return 1;
  }
  const auto usemem = mapped->find_region(grace::usemem_index);
  if (!usemem || usemem->sparse_areas().empty()) return 1;
  std::array<std::byte, 8> past_end{};
  const auto n = mapped->read(grace::usemem_index, usemem->sparse_areas()[0].size, past_end);
  if (!n) {
    std::fprintf(stderr, "dev_vfio: read past the real memory: %s\n", n.message().c_str());
    return 1;
  }
  std::printf("%s: %zu bytes past usemem's real memory read as 0x%02x\n", grace_id->name.data(), *n,
              std::to_integer<unsigned>(past_end[0]));
  return 0;
}
