// A small vfio-user client session against nvgrace-vfio-user-server (used for
// the transcript in docs/vfio-user.md): connect, list the regions, write and
// read usemem through REGION_WRITE/READ, read across the real length (0xFF
// padding), and map usemem through the fd the server passed.
//
//   vfio_user_example_client SOCKET

#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/vfio/caps.hpp>

#include <sys/mman.h>

#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

using namespace nvgrace;

namespace {

int fail(const char* what, nvgrace::errc e) {
  std::fprintf(stderr, "example: %s: %s\n", what, errno_name(e).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  auto c = vfio_user::client::connect(argv[1]);
  if (!c) return fail("connect", c.error());
  const auto info = c->get_device_info().value();
  std::printf("connected: vfio-user 0.%u, max_data_xfer_size %u, flags 0x%x, %u regions, %u irqs\n", c->minor(),
              c->max_data_xfer_size(), info.flags, info.num_regions, info.num_irqs);

  std::uint64_t use_real = 0;
  for (std::uint32_t index = 0; index < info.num_regions; ++index) {
    std::vector<std::byte> buffer(256);
    store_le<std::uint32_t>(buffer, 0, 256);
    store_le<std::uint32_t>(buffer, 8, index);
    if (auto s = c->get_region_info(buffer); !s) {
      std::printf("region %u: %s\n", index, errno_name(s.error()).c_str());
      continue;
    }
    const auto r = vfio::load_region_info(buffer);
    std::printf("region %u: size 0x%" PRIx64 " flags 0x%x", index, r.size, r.flags);
    if (auto caps = vfio::decode_region_caps(buffer); caps && caps->sparse_mmap) {
      for (std::uint32_t i = 0; i < caps->sparse_mmap->size(); ++i) {
        const auto area = (*caps->sparse_mmap)[i];
        std::printf(" sparse {0x%" PRIx64 ", 0x%" PRIx64 "}", area.offset, area.size);
        if (index == 4) use_real = area.size;
      }
    }
    std::printf("%s\n", c->region_fd(index) >= 0 ? " fd" : "");
  }

  const std::uint64_t use = vfio::region_offset(4);
  const char message[] = "hello, Grace";
  auto w = c->pwrite(std::as_bytes(std::span(message)), use + 0x1000);
  if (!w) return fail("pwrite", w.error());
  std::array<char, sizeof message> back{};
  auto r = c->pread(std::as_writable_bytes(std::span(back)), use + 0x1000);
  if (!r) return fail("pread", r.error());
  std::printf("REGION_WRITE %zu bytes, REGION_READ %zu bytes: \"%s\"\n", *w, *r, back.data());

  std::array<std::byte, 8> edge{};
  auto e = c->pread(edge, use + use_real - 4);
  if (!e) return fail("pread at the real length", e.error());
  std::printf("REGION_READ of 8 bytes at usemem's real length - 4 gives %zu:", *e);
  for (std::size_t i = 0; i < *e; ++i) std::printf(" %02x", std::to_integer<unsigned>(edge[i]));
  std::printf("\n");

  auto p = c->mmap(nullptr, 4096, PROT_READ, use + 0x1000);
  if (!p) return fail("mmap", p.error());
  std::printf("mmap of usemem at 0x1000 reads \"%s\"\n", static_cast<const char*>(*p));
  ::munmap(*p, 4096);
  std::vector<std::byte> usemem(32);
  store_le<std::uint32_t>(usemem, 0, 32);
  store_le<std::uint32_t>(usemem, 8, 4);
  static_cast<void>(c->get_region_info(usemem));
  const std::uint64_t bar_size = vfio::load_region_info(usemem).size;
  auto bad = c->pread(edge, use + bar_size);
  std::printf("REGION_READ at the BAR end (0x%" PRIx64 "): %s\n", bar_size,
              bad ? "ok?" : errno_name(bad.error()).c_str());
  return 0;
}
