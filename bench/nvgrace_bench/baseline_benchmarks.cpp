// What the copy path is measured against: libc memcpy/memset on the same
// bytes, the plainest possible aligned volatile loop (the limit for uncached
// memory), the driver's byte-at-a-time padding fill, and a pread syscall.
//
//   baseline/read/<split>/<size>    memcpy of the memory part + memset 0xFF of the padding part
//   baseline/write/<split>/<size>   memcpy of the memory part (in_memory, straddle)
//   baseline/chunk_read/<size>      aligned volatile 8-byte loop + 4/2/1 tail, memory → buffer
//   baseline/chunk_write/<size>     the same, buffer → memory
//   baseline/byte_fill/<size>       volatile 0xFF stores one byte at a time
//   baseline/pread_memfd/8          pread(2) of 8 bytes from a memfd
#include "bench_common.hpp"

#include <sys/mman.h>
#include <unistd.h>

namespace nvgrace_bench {
namespace {

template <class T>
inline void volatile_load(const std::byte* device, std::byte* user) {
  const T v = *reinterpret_cast<const volatile T*>(device);
  std::memcpy(user, &v, sizeof v);
}
template <class T>
inline void volatile_store(std::byte* device, const std::byte* user) {
  T v;
  std::memcpy(&v, user, sizeof v);
  *reinterpret_cast<volatile T*>(device) = v;
}

/// The uncached limit: `device` is 8-aligned, so the plan is 8-byte steps then a 4/2/1 tail.
void chunk_read(const std::byte* device, std::byte* user, std::size_t n) {
  std::size_t i = 0;
  for (; n - i >= 8; i += 8) volatile_load<std::uint64_t>(device + i, user + i);
  if (n - i >= 4) {
    volatile_load<std::uint32_t>(device + i, user + i);
    i += 4;
  }
  if (n - i >= 2) {
    volatile_load<std::uint16_t>(device + i, user + i);
    i += 2;
  }
  if (n - i >= 1) volatile_load<std::uint8_t>(device + i, user + i);
}
void chunk_write(std::byte* device, const std::byte* user, std::size_t n) {
  std::size_t i = 0;
  for (; n - i >= 8; i += 8) volatile_store<std::uint64_t>(device + i, user + i);
  if (n - i >= 4) {
    volatile_store<std::uint32_t>(device + i, user + i);
    i += 4;
  }
  if (n - i >= 2) {
    volatile_store<std::uint16_t>(device + i, user + i);
    i += 2;
  }
  if (n - i >= 1) volatile_store<std::uint8_t>(device + i, user + i);
}

struct memfd_file {
  int fd = -1;
  memfd_file() {
    fd = ::memfd_create("nvgrace-bench", MFD_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, 4096) != 0) std::abort();
    const char data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (::pwrite(fd, data, 8, 0) != 8) std::abort();
  }
  ~memfd_file() { ::close(fd); }
};

}  // namespace

void register_baseline_benchmarks() {
  std::byte* const memory = fixture::get().view(nvgrace::mem::caching::cached).base;
  for (const split s : splits)
    for (const std::size_t size : sizes) {
      if (!applies(s, size)) continue;
      const std::string tail = std::string("/") + name_of(s) + "/" + std::to_string(size);
      const std::uint64_t offset = offset_of(s, size);
      const std::size_t mem_part = memory_part(s, size);
      // Each split calls exactly the libc functions it needs: memcpy, memset, or both.
      auto read = [=](std::uint64_t at, std::span<std::byte> out) {
        const std::size_t m = opaque(mem_part);
        if (s == split::in_memory) {
          std::memcpy(out.data(), memory + at, out.size());
        } else if (s == split::padding) {
          std::memset(out.data(), 0xFF, out.size());
        } else {
          std::memcpy(out.data(), memory + at, m);
          std::memset(out.data() + m, 0xFF, out.size() - m);
        }
        return out.size();
      };
      configure(benchmark::RegisterBenchmark(("baseline/read" + tail).c_str(), [=](benchmark::State& st) {
        read_body(st, read, offset, size, memory + offset);
      }));
      if (s == split::padding) continue;  // nothing to copy
      auto write = [=](std::uint64_t at, std::span<const std::byte> in) {
        const std::size_t m = opaque(mem_part);
        std::memcpy(memory + at, in.data(), m);
        return in.size();
      };
      configure(benchmark::RegisterBenchmark(("baseline/write" + tail).c_str(), [=](benchmark::State& st) {
        write_body(st, write, offset, size, memory + offset);
      }));
    }

  for (const std::size_t size : sizes) {
    const std::string tail = "/" + std::to_string(size);
    configure(benchmark::RegisterBenchmark(("baseline/chunk_read" + tail).c_str(), [=](benchmark::State& st) {
      read_body(
          st,
          [=](std::uint64_t at, std::span<std::byte> out) {
            chunk_read(memory + at, out.data(), out.size());
            return out.size();
          },
          0, size, memory);
    }));
    configure(benchmark::RegisterBenchmark(("baseline/chunk_write" + tail).c_str(), [=](benchmark::State& st) {
      write_body(
          st,
          [=](std::uint64_t at, std::span<const std::byte> in) {
            chunk_write(memory + at, in.data(), in.size());
            return in.size();
          },
          0, size, memory);
    }));
    configure(benchmark::RegisterBenchmark(("baseline/byte_fill" + tail).c_str(), [=](benchmark::State& st) {
      read_body(
          st,
          [](std::uint64_t, std::span<std::byte> out) {
            auto* p = reinterpret_cast<volatile unsigned char*>(out.data());
            for (std::size_t i = 0; i < out.size(); ++i) p[i] = 0xFF;
            return out.size();
          },
          memory_length, size, memory + memory_length);
    }));
  }

  configure(benchmark::RegisterBenchmark("baseline/pread_memfd/8", [=](benchmark::State& st) {
    static memfd_file file;
    read_body(
        st,
        [fd = file.fd](std::uint64_t at, std::span<std::byte> out) {
          return static_cast<std::size_t>(::pread(fd, out.data(), out.size(), static_cast<off_t>(at)));
        },
        0, 8, memory);
  }));
}

}  // namespace nvgrace_bench
