// libFuzzer target: vfio::decode_region_caps on arbitrary region-info replies.
//
// Input (first byte selects the mode):
// - 0xA5: round trip. The rest describes a region size, sparse areas and an
//   argsz; the chain is built with cap_chain, encoded with encode_region_info
//   and decoded again: the decode must succeed exactly when the caps fit, and
//   give back the same areas.
// - anything else: the whole input is a reply as a kernel or vfio-user server
//   might send it. It is copied into a buffer of exactly its size (so ASan
//   flags any byte read outside it) and decoded; a successful decode must
//   describe areas inside the region and read only bytes of the buffer.

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace {

using namespace nvgrace;

[[noreturn]] void fail() { __builtin_trap(); }

/// Bytes of the input, consumed from the front; zeros when exhausted.
class input {
public:
  input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  template <class T>
  T take() {
    T value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      const T byte = at_ < size_ ? data_[at_++] : 0;
      value |= static_cast<T>(byte << (8 * i));
    }
    return value;
  }

private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

void check_decoded(std::span<const std::byte> reply, const vfio::region_caps& caps) {
  const auto info = vfio::load_region_info(reply);
  if (!caps.sparse_mmap) return;
  const auto& areas = *caps.sparse_mmap;
  // Every area is read from the buffer (ASan checks the bytes) and lies inside the region.
  for (std::uint32_t i = 0; i < areas.size(); ++i) {
    const auto area = areas[i];
    if (!range_within(area.offset, area.size, info.size)) fail();
  }
  // The areas' bytes must lie in the reply (and in what the provider says it wrote).
  const std::uint64_t limit = info.argsz < reply.size() ? info.argsz : reply.size();
  if (std::uint64_t{areas.size()} * vfio::sparse_mmap_area_size + 16 + vfio::region_info_size > limit) fail();
}

void round_trip(input in) {
  const std::uint64_t size = in.take<std::uint64_t>() | 1;   // never 0
  const std::uint32_t count = in.take<std::uint8_t>() % 14;  // 16 + 16·13 = 224 bytes ≤ the chain capacity
  std::vector<vfio::sparse_mmap_area> areas(count);
  for (auto& a : areas) {
    a.offset = in.take<std::uint64_t>() % size;
    const std::uint64_t room = size - a.offset;  // the area may run to the region end
    a.size = room == UINT64_MAX ? in.take<std::uint64_t>() : in.take<std::uint64_t>() % (room + 1);
  }
  const std::uint32_t argsz = in.take<std::uint16_t>();
  vfio::cap_chain<256> chain;
  if (!chain.add_sparse_mmap(areas)) fail();
  if (in.take<std::uint8_t>() & 1)
    if (!chain.add_type(in.take<std::uint32_t>(), in.take<std::uint32_t>())) fail();
  std::vector<std::byte> out(512);
  const auto written = vfio::encode_region_info(
      out, argsz, vfio::region_info{0, vfio::region_flags::read | vfio::region_flags::mmap, 4, 0, size, 4ull << 40},
      chain);
  if (argsz < vfio::region_info_size) {
    if (written) fail();
    return;
  }
  if (!written) fail();
  const auto reply = std::span<const std::byte>(out).first(*written);
  const auto caps = vfio::decode_region_caps(reply);
  const bool fits = argsz >= vfio::region_info_size + chain.size();
  if (!fits) {
    if (caps.error() != nvgrace::errc::no_buffer_space) fail();
    return;
  }
  if (!caps || !caps->sparse_mmap || caps->sparse_mmap->size() != count) fail();
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto a = (*caps->sparse_mmap)[i];
    if (a.offset != areas[i].offset || a.size != areas[i].size) fail();
  }
  check_decoded(reply, *caps);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size >= 1 && data[0] == 0xA5) {
    round_trip(input(data + 1, size - 1));
    return 0;
  }
  // An exactly sized heap copy: one byte past it is a redzone.
  const auto copy = std::make_unique<std::byte[]>(size);
  if (size != 0) std::memcpy(copy.get(), data, size);
  const std::span<const std::byte> reply(copy.get(), size);
  const auto caps = vfio::decode_region_caps(reply);
  if (caps) check_decoded(reply, *caps);
  return 0;
}
