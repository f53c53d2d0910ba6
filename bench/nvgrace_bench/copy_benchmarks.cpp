// The copy path itself: nvgrace::mem::read_window / write_window.
#include "bench_common.hpp"

namespace nvgrace_bench {

void register_copy_benchmarks() {
  register_window_family(
      "copy",
      [](nvgrace::mem::caching c) {
        return [view = fixture::get().view(c)](std::uint64_t offset, std::span<std::byte> out) {
          return nvgrace::mem::read_window(view, offset, out);
        };
      },
      [](nvgrace::mem::caching c) {
        return [view = fixture::get().view(c)](std::uint64_t offset, std::span<const std::byte> in) {
          return nvgrace::mem::write_window(view, offset, in);
        };
      },
      [](nvgrace::mem::caching, split) -> const std::byte* {
        return fixture::get().view(nvgrace::mem::caching::cached).base;
      });
}

}  // namespace nvgrace_bench
