#pragma once
// Helpers shared by the model tests: byte buffers from literals, and copies
// into exactly-sized heap blocks so AddressSanitizer sees any over-read.
#include <nvgrace/core/bytes.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <vector>

namespace nvgrace::test {

/// Bytes from small integer literals.
inline std::vector<std::byte> bytes(std::initializer_list<unsigned> values) {
  std::vector<std::byte> out;
  out.reserve(values.size());
  for (const unsigned v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

/// A heap block of exactly `source.size()` bytes holding a copy of `source`.
/// (std::vector may over-allocate; new[] of the exact size may not.)
class exact_copy {
public:
  explicit exact_copy(std::span<const std::byte> source)
      : size_(source.size()), data_(std::make_unique<std::byte[]>(source.size() == 0 ? 1 : source.size())) {
    for (std::size_t i = 0; i < size_; ++i) data_[i] = source[i];
  }
  [[nodiscard]] std::span<const std::byte> span() const noexcept { return {data_.get(), size_}; }
  [[nodiscard]] std::span<std::byte> mutable_span() noexcept { return {data_.get(), size_}; }

private:
  std::size_t size_;
  std::unique_ptr<std::byte[]> data_;
};

/// A tiny deterministic PRNG (xorshift64*), for reproducible random inputs.
class prng {
public:
  explicit prng(std::uint64_t seed) : state_(seed ? seed : 1) {}
  std::uint64_t next() noexcept {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }

private:
  std::uint64_t state_;
};

}  // namespace nvgrace::test
