#pragma once
// Where the guest test and the host put bytes in ivshmem's BAR2 (the host
// file). run.sh seeds the file and checks it with the same numbers; keep
// the two in step (run.sh repeats them in its python check).

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace nvgrace::guest_layout {

// Seeded by the host before boot, read by the guest.
inline constexpr std::uint64_t seed_offset = 0x8000;
inline constexpr std::string_view seed_text = "NVGRACE-HOST-SEED";
inline constexpr std::size_t seed_size = 256;
/// Bytes after the seed text: (i * 5 + 7) & 0xff.
[[nodiscard]] constexpr std::byte seed_byte(std::size_t i) noexcept {
  return static_cast<std::byte>((i * 5 + 7) & 0xFF);
}

// Written by the guest, checked by the host.
inline constexpr std::uint64_t mmap_text_offset = 0x0;
inline constexpr std::string_view mmap_text = "NVGRACE-GUEST-MMAP";
inline constexpr std::uint64_t pwrite_text_offset = 0x100;
inline constexpr std::string_view pwrite_text = "NVGRACE-GUEST-PWRITE";
inline constexpr std::uint64_t words_offset = 0x1000;
inline constexpr std::uint32_t word_count = 1024;
[[nodiscard]] constexpr std::uint32_t word(std::uint32_t i) noexcept { return 0x5A000000u | i; }
inline constexpr std::uint64_t block_offset = 0x3000;
inline constexpr std::size_t block_size = 4096;
[[nodiscard]] constexpr std::byte block_byte(std::size_t i) noexcept {
  return static_cast<std::byte>((i * 7 + 3) & 0xFF);
}
inline constexpr std::uint64_t odd_offset = 0x4001;           // 3 bytes 11 22 33
inline constexpr std::uint64_t accessor_map_offset = 0x5000;  // accessor, through its mapping
inline constexpr std::string_view accessor_map_text = "NVGRACE-ACCESSOR-MAPPED";
inline constexpr std::uint64_t accessor_file_offset = 0x5100;  // accessor, through pwrite
inline constexpr std::string_view accessor_file_text = "NVGRACE-ACCESSOR-PWRITE";
inline constexpr std::string_view end_text = "NVGRACE-GUEST-END";  // at BAR2 size - its length

}  // namespace nvgrace::guest_layout
