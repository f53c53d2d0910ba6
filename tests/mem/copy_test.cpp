// §5.1, §5.2, §5.3: the copy path between a memory window and a user buffer.
#include <nvgrace/mem/copy.hpp>
#include <nvgrace/mem/span_memory.hpp>
#include <nvgrace/vfio/chunk_plan.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace {

using nvgrace::mem::caching;
using nvgrace::mem::in_memory_count;
using nvgrace::mem::memory_view;
using nvgrace::mem::read_memory;
using nvgrace::mem::read_window;
using nvgrace::mem::write_memory;
using nvgrace::mem::write_window;

constexpr std::byte ff{0xFF};
constexpr std::byte canary{0xA5};

static_assert(in_memory_count(40, 0, 64) == 40);
static_assert(in_memory_count(40, 39, 8) == 1);
static_assert(in_memory_count(40, 40, 8) == 0);
static_assert(in_memory_count(40, 1000, 8) == 0);
static_assert(in_memory_count(40, 8, 8) == 8);
static_assert(in_memory_count(0, 0, 8) == 0);
static_assert(in_memory_count(40, 0, 0) == 0);

constexpr std::byte pattern(std::size_t i) { return static_cast<std::byte>(0x10 + (i * 7) % 0xE0); }

/// A 64-byte window over a buffer whose bytes past the memory are canaries,
/// placed `misalign` bytes past an 8-aligned address.
struct window_fixture {
  static constexpr std::size_t window = 64;
  alignas(64) std::array<std::byte, window + 16> storage{};
  std::size_t misalign = 0;
  std::uint64_t length = 0;

  window_fixture(std::uint64_t memory_length, caching mode, std::size_t misalignment = 0)
      : misalign(misalignment), length(memory_length), mode_(mode) {
    storage.fill(canary);
    for (std::size_t i = 0; i < length; ++i) storage[misalign + i] = pattern(i);
  }
  [[nodiscard]] memory_view view() { return {storage.data() + misalign, length, mode_}; }
  [[nodiscard]] std::span<std::byte> memory() { return std::span(storage).subspan(misalign, length); }

  caching mode_;
};

/// The byte-at-a-time model of a read: memory byte or 0xFF.
std::vector<std::byte> reference_read(std::span<const std::byte> memory, std::uint64_t offset, std::size_t count) {
  std::vector<std::byte> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = offset + i < memory.size() ? memory[offset + i] : ff;
  return out;
}

std::vector<std::byte> bytes(std::initializer_list<unsigned> values) {
  std::vector<std::byte> out;
  for (const unsigned v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

/// Records every access of the uncached path (and performs it).
struct access {
  std::uintptr_t address;
  unsigned width;
  bool store;
  friend bool operator==(const access&, const access&) = default;
};
std::vector<access> recorded;  // NOLINT: the policy has only static members

struct recording_io {
  template <class T>
  static T load(const std::byte* address) noexcept {
    recorded.push_back({reinterpret_cast<std::uintptr_t>(address), sizeof(T), false});
    return nvgrace::mem::detail::volatile_io::load<T>(address);
  }
  template <class T>
  static void store(std::byte* address, T value) noexcept {
    recorded.push_back({reinterpret_cast<std::uintptr_t>(address), sizeof(T), true});
    nvgrace::mem::detail::volatile_io::store<T>(address, value);
  }
};

/// The accesses the §5.3 plan prescribes for `count` bytes at `address`.
std::vector<access> planned(std::uintptr_t address, std::size_t count, bool store) {
  std::vector<access> out;
  for (const auto c : nvgrace::vfio::chunks(address, count)) out.push_back({c.offset, c.width, store});
  return out;
}

}  // namespace

TEST_CASE("§5.1 read_window exact bytes: all memory, straddling, all padding, zero-length") {
  constexpr auto top = std::numeric_limits<std::uint64_t>::max();
  for (const caching mode : {caching::cached, caching::uncached}) {
    CAPTURE(static_cast<int>(mode));
    window_fixture f(12, mode);
    std::array<std::byte, 8> out{};
    auto read = [&](memory_view view, std::uint64_t offset, std::size_t count) {
      out.fill(canary);
      CHECK(read_window(view, offset, std::span(out).first(count)) == count);
      return std::vector(out.begin(), out.end());
    };
    const std::vector<std::byte> all_ff(8, ff);
    const std::vector<std::byte> untouched(8, canary);
    // all memory
    CHECK(read(f.view(), 3, 6) ==
          std::vector{pattern(3), pattern(4), pattern(5), pattern(6), pattern(7), pattern(8), canary, canary});
    // straddling the end of memory
    CHECK(read(f.view(), 9, 8) == std::vector{pattern(9), pattern(10), pattern(11), ff, ff, ff, ff, ff});
    // all padding: from the end of memory, and far past it up to the last offset
    CHECK(read(f.view(), 12, 8) == all_ff);
    CHECK(read(f.view(), top - 8, 8) == all_ff);
    // zero-length reads touch nothing, wherever they are
    CHECK(read(f.view(), 0, 0) == untouched);
    CHECK(read(f.view(), 12, 0) == untouched);
    CHECK(read(f.view(), top, 0) == untouched);
    CHECK(read_window(f.view(), 500, std::span<std::byte>{}) == 0);
    // empty memory with a null base reads as padding
    CHECK(read(memory_view{nullptr, 0, mode}, 0, 8) == all_ff);
  }
}

TEST_CASE("§5.2 write_window exact bytes: all memory, straddling, all padding, zero-length") {
  constexpr auto top = std::numeric_limits<std::uint64_t>::max();
  const auto in = bytes({0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7});
  for (const caching mode : {caching::cached, caching::uncached}) {
    CAPTURE(static_cast<int>(mode));
    window_fixture f(12, mode);
    std::vector<std::byte> expected(f.storage.begin(), f.storage.end());
    auto storage = [&] { return std::vector(f.storage.begin(), f.storage.end()); };

    // all memory
    CHECK(write_window(f.view(), 2, std::span(in).first(5)) == 5);
    std::copy_n(in.begin(), 5, expected.begin() + 2);
    CHECK(storage() == expected);
    // straddling: the head lands, the tail is dropped, the canaries after the memory survive
    CHECK(write_window(f.view(), 10, in) == 8);
    std::copy_n(in.begin(), 2, expected.begin() + 10);
    CHECK(storage() == expected);
    // all padding: nothing changes
    CHECK(write_window(f.view(), 12, in) == 8);
    CHECK(write_window(f.view(), top - 8, in) == 8);
    CHECK(storage() == expected);
    // zero-length
    CHECK(write_window(f.view(), 4, std::span(in).first(0)) == 0);
    CHECK(write_window(f.view(), 40, std::span<const std::byte>{}) == 0);
    CHECK(storage() == expected);
    // empty memory with a null base drops everything
    CHECK(write_window(memory_view{nullptr, 0, mode}, 0, in) == 8);
  }
}

TEST_CASE("§5.1 read_memory / §5.2 write_memory copy exactly the memory range") {
  for (const caching mode : {caching::cached, caching::uncached}) {
    window_fixture f(40, mode);
    std::array<std::byte, 11> out{};
    read_memory(f.view(), 29, out);
    CHECK(std::vector(out.begin(), out.end()) == reference_read(f.memory(), 29, 11));
    const auto in = bytes({1, 2, 3});
    write_memory(f.view(), 37, in);
    CHECK(f.storage[37] == std::byte{1});
    CHECK(f.storage[38] == std::byte{2});
    CHECK(f.storage[39] == std::byte{3});
    CHECK(f.storage[40] == canary);
    read_memory(f.view(), 40, std::span<std::byte>{});  // empty at the very end: allowed
    write_memory(f.view(), 40, std::span<const std::byte>{});
    CHECK(f.storage[40] == canary);
  }
}

TEST_CASE("§5.1 §5.2 window copies equal the byte-by-byte model for every (offset, count), memory 0..40 of 64") {
  std::size_t cases = 0;
  std::size_t mismatches = 0;
  for (const caching mode : {caching::cached, caching::uncached})
    for (const std::size_t misalign : {std::size_t{0}, std::size_t{3}})
      for (std::uint64_t length = 0; length <= 40; ++length)
        for (std::uint64_t offset = 0; offset <= window_fixture::window; ++offset)
          for (std::size_t count = 0; offset + count <= window_fixture::window; ++count) {
            ++cases;
            // Read: exact bytes, and nothing written around the output.
            window_fixture f(length, mode, misalign);
            std::array<std::byte, window_fixture::window + 2> out;
            out.fill(canary);
            const auto n = read_window(f.view(), offset, std::span(out).subspan(1, count));
            auto expected = reference_read(f.memory(), offset, count);
            expected.insert(expected.begin(), canary);
            expected.resize(out.size(), canary);
            if (n != count || !std::equal(out.begin(), out.end(), expected.begin())) {
              ++mismatches;
              MESSAGE("read mismatch: mode " << static_cast<int>(mode) << " misalign " << misalign << " length "
                                             << length << " offset " << offset << " count " << count);
            }
            // Write: the in-memory part lands, everything else is untouched.
            std::vector<std::byte> in(count);
            for (std::size_t i = 0; i < count; ++i) in[i] = static_cast<std::byte>(0x80 + i);
            std::vector<std::byte> after(f.storage.begin(), f.storage.end());
            for (std::size_t i = 0; i < count; ++i)
              if (offset + i < length) after[misalign + offset + i] = in[i];
            const auto w = write_window(f.view(), offset, in);
            if (w != count || !std::equal(after.begin(), after.end(), f.storage.begin())) {
              ++mismatches;
              MESSAGE("write mismatch: mode " << static_cast<int>(mode) << " misalign " << misalign << " length "
                                              << length << " offset " << offset << " count " << count);
            }
          }
  CHECK(cases == 2 * 2 * 41 * (65 * 66 / 2));
  CHECK(mismatches == 0);
}

TEST_CASE("§5.3 uncached copies make exactly the chunk plan's aligned accesses, at any base alignment") {
  std::size_t mismatches = 0;
  std::size_t accesses = 0;
  for (std::size_t misalign = 0; misalign < 8; ++misalign)
    for (std::uint64_t offset = 0; offset <= window_fixture::window; ++offset)
      for (std::size_t count = 0; offset + count <= window_fixture::window; ++count) {
        window_fixture f(40, caching::uncached, misalign);
        const auto view = f.view();
        const auto base = reinterpret_cast<std::uintptr_t>(view.base);
        const std::size_t in_memory = in_memory_count(view.length, offset, count);
        std::array<std::byte, window_fixture::window> buffer{};

        recorded.clear();
        nvgrace::mem::detail::read_window_with<recording_io>(view, offset, std::span(buffer).first(count));
        const bool read_ok = recorded == planned(base + offset, in_memory, false);
        accesses += recorded.size();

        recorded.clear();
        nvgrace::mem::detail::write_window_with<recording_io>(view, offset, std::span(buffer).first(count));
        const bool write_ok = recorded == planned(base + offset, in_memory, true);

        bool aligned = true;
        for (const auto& a : recorded) aligned = aligned && a.address % a.width == 0;
        if (!read_ok || !write_ok || !aligned) {
          ++mismatches;
          MESSAGE("access mismatch: misalign " << misalign << " offset " << offset << " count " << count);
        }
      }
  CHECK(mismatches == 0);
  CHECK(accesses > 0);
}

TEST_CASE(
    "§5.3 the spec examples as real accesses: off 3 count 13 → 1, 4, 8; off 6 count 3 → 2, 1; off 0 count 20 → 8, 8, "
    "4") {
  window_fixture f(40, caching::uncached);
  const auto base = reinterpret_cast<std::uintptr_t>(f.view().base);
  std::array<std::byte, 20> buffer{};
  auto widths_of_read = [&](std::uint64_t offset, std::size_t count) {
    recorded.clear();
    nvgrace::mem::detail::read_memory_with<recording_io>(f.view(), offset, std::span(buffer).first(count));
    std::vector<std::pair<std::uint64_t, unsigned>> out;
    for (const auto& a : recorded) out.emplace_back(a.address - base, a.width);
    return out;
  };
  using v = std::vector<std::pair<std::uint64_t, unsigned>>;
  CHECK(widths_of_read(3, 13) == v{{3, 1}, {4, 4}, {8, 8}});
  CHECK(widths_of_read(6, 3) == v{{6, 2}, {8, 1}});
  CHECK(widths_of_read(0, 20) == v{{0, 8}, {8, 8}, {16, 4}});
  CHECK(std::vector(buffer.begin(), buffer.end()) == reference_read(f.memory(), 0, 20));
}

TEST_CASE("§5.3 cached memory never takes the chunk path") {
  window_fixture f(40, caching::cached, 1);
  std::array<std::byte, 64> buffer{};
  recorded.clear();
  for (std::uint64_t offset = 0; offset < 64; ++offset) {
    nvgrace::mem::detail::read_window_with<recording_io>(f.view(), offset, std::span(buffer).first(64 - offset));
    nvgrace::mem::detail::write_window_with<recording_io>(f.view(), offset, std::span(buffer).first(64 - offset));
  }
  CHECK(recorded.empty());
}

TEST_CASE("§5.1 fill_padding fills exactly its span with 0xFF") {
  std::array<std::byte, 10> out{};
  out.fill(canary);
  nvgrace::mem::fill_padding(std::span(out).subspan(2, 5));
  CHECK(std::vector(out.begin(), out.end()) == std::vector{canary, canary, ff, ff, ff, ff, ff, canary, canary, canary});
  nvgrace::mem::fill_padding({});
}

TEST_CASE("§5.3 is_word_access: exactly a count of 1, 2, 4 or 8 at an address that is a multiple of it") {
  static_assert(nvgrace::mem::is_word_access(0, 8));
  static_assert(nvgrace::mem::is_word_access(12, 4));
  static_assert(!nvgrace::mem::is_word_access(12, 8));
  static_assert(!nvgrace::mem::is_word_access(0, 0));
  static_assert(!nvgrace::mem::is_word_access(0, 16));
  std::size_t words = 0;
  for (std::uintptr_t address = 0; address < 64; ++address)
    for (std::size_t count = 0; count <= 40; ++count) {
      const bool expected = (count == 1 || count == 2 || count == 4 || count == 8) && address % count == 0;
      if (nvgrace::mem::is_word_access(address, count) != expected) {
        FAIL_CHECK("address " << address << " count " << count);
      }
      words += expected ? 1 : 0;
    }
  CHECK(words == 64 + 32 + 16 + 8);
  // The high bits of an address and huge counts never look like a word.
  const std::uintptr_t high = std::uintptr_t{1} << 63;
  CHECK(nvgrace::mem::is_word_access(high, 8));
  CHECK_FALSE(nvgrace::mem::is_word_access(high + 4, 8));
  CHECK_FALSE(nvgrace::mem::is_word_access(0, std::numeric_limits<std::size_t>::max()));
  CHECK_FALSE(nvgrace::mem::is_word_access(0, std::size_t{1} << 40));
}

TEST_CASE("§5.3 read_word / write_word: one access of the word's width, the chunk plan's, exact bytes") {
  window_fixture f(40, caching::uncached);
  const auto base = reinterpret_cast<std::uintptr_t>(f.view().base);
  for (const std::size_t width : {1u, 2u, 4u, 8u})
    for (std::uint64_t offset = 0; offset + width <= 40; offset += width) {
      CAPTURE(width);
      CAPTURE(offset);
      std::byte* const at = f.view().base + offset;
      std::array<std::byte, 8> out{};
      out.fill(canary);
      recorded.clear();
      nvgrace::mem::detail::read_word_with<recording_io>(at, out.data(), width);
      CHECK(recorded == planned(base + offset, width, false));
      const auto want = reference_read(f.memory(), offset, width);
      CHECK(std::equal(want.begin(), want.end(), out.begin()));
      CHECK(std::all_of(out.begin() + static_cast<std::ptrdiff_t>(width), out.end(),
                        [](std::byte b) { return b == canary; }));

      const std::array<std::byte, 8> in{std::byte{0xC1}, std::byte{0xC2}, std::byte{0xC3}, std::byte{0xC4},
                                        std::byte{0xC5}, std::byte{0xC6}, std::byte{0xC7}, std::byte{0xC8}};
      const std::vector<std::byte> before(f.storage.begin(), f.storage.end());
      recorded.clear();
      nvgrace::mem::detail::write_word_with<recording_io>(at, in.data(), width);
      CHECK(recorded == planned(base + offset, width, true));
      for (std::size_t i = 0; i < f.storage.size(); ++i) {
        const bool written = i >= offset && i < offset + width;
        if (f.storage[i] != (written ? in[i - offset] : before[i])) FAIL_CHECK("byte " << i);
      }
      // The public functions move the same bytes.
      std::array<std::byte, 8> again{};
      nvgrace::mem::read_word(at, again.data(), width);
      CHECK(std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(width), again.begin()));
      nvgrace::mem::write_word(at, before.data() + offset, width);  // put the pattern back
      CHECK(std::equal(f.storage.begin(), f.storage.end(), before.begin()));
    }
}
