// vfio_user_client: the VMM side over a vfio-user socket: the same accessor code as the
// in-process and /dev/vfio examples, with a vfio-user server answering.
//
//   vfio_user_client SOCKET
//
// Connects, lists the regions, maps the Grace memory through the fds the server passes,
// writes and reads usemem through the mapping, and reads across its real end (the padding
// part arrives as REGION_READ and reads 0xFF).
#include <nvgrace/access/accessor.hpp>
#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/grace/layout.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>

using namespace nvgrace;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: vfio_user_client SOCKET\n");
    return 2;
  }
  auto client = vfio_user::client::connect(argv[1]);
  if (!client) {
    std::fprintf(stderr, "vfio_user_client: cannot connect to %s: %s\n", argv[1], errno_name(client.error()).c_str());
    return 3;
  }
  auto vmm = access::open(*client, access::map_all.with_uncached(grace::uncached_regions(grace::generation::hopper)));
  if (!vmm) {
    std::fprintf(stderr, "vfio_user_client: cannot open the device: %s\n", vmm.message().c_str());
    return 1;
  }
  for (std::uint32_t index = 0; index < vmm->region_count(); ++index) {
    const auto r = vmm->find_region(index);
    if (!r || r->size() == 0) continue;
    std::printf("region %u: size 0x%llx flags 0x%x mapped %u\n", index, static_cast<unsigned long long>(r->size()),
                r->flags(), r->mapped_count);
  }

  constexpr auto usemem = grace::usemem_index;
  const auto region = vmm->find_region(usemem);
  if (!region || region->sparse_areas().empty()) return 1;
  const std::uint64_t real = region->sparse_areas()[0].size;
  const char hello[] = "hello, Grace";
  if (!vmm->write(usemem, 0x1000, std::as_bytes(std::span(hello)))) return 1;
  std::array<char, sizeof hello> back{};
  if (!vmm->read(usemem, 0x1000, std::as_writable_bytes(std::span(back)))) return 1;
  std::printf("usemem at 0x1000: \"%s\"\n", back.data());

  std::array<std::byte, 8> edge{};
  const auto n = vmm->read(usemem, real - 4, edge);
  if (!n) {
    std::fprintf(stderr, "vfio_user_client: read across the real end: %s\n", n.message().c_str());
    return 1;
  }
  std::printf("usemem at real end - 4: %zu bytes:", *n);
  for (std::size_t i = 0; i < *n; ++i) std::printf(" %02x", std::to_integer<unsigned>(edge[i]));
  std::printf("\n");
  return 0;
}
