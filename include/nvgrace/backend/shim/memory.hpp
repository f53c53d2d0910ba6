#pragma once
/// \file
/// What memory a shim device can be built on: a device memory it can create
/// for itself at a given length and caching (mem::memfd_memory,
/// mem::anonymous_memory, or a caller's own type).

#include <nvgrace/core/result.hpp>
#include <nvgrace/mem/device_memory.hpp>

#include <concepts>
#include <cstdint>

namespace nvgrace::shim {

/// Memory the device can allocate for itself: `M::create(length, caching)`.
template <class M>
concept creatable_memory = mem::device_memory<M> && std::default_initializable<M> && std::movable<M> &&
    requires(std::uint64_t length, mem::caching mode) {
  { M::create(length, mode) } -> std::same_as<result<M>>;
};

}  // namespace nvgrace::shim
