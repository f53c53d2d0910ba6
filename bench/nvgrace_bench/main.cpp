// nvgrace_bench: the copy path and its baselines (and, as they land, the same
// accesses through the in-process device and the accessor: add a
// register_*_benchmarks() call below and a file that calls register_window_family).
#include "bench_common.hpp"

int main(int argc, char** argv) {
  nvgrace_bench::register_copy_benchmarks();
  nvgrace_bench::register_baseline_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
