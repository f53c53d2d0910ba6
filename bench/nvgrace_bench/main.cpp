// nvgrace_bench: the copy path, the same accesses through the in-process
// device and through the accessor, and their baselines. A new path is a file
// that calls register_window_family and a register_*_benchmarks() call below.
#include "bench_common.hpp"

int main(int argc, char** argv) {
  nvgrace_bench::register_copy_benchmarks();
  nvgrace_bench::register_device_benchmarks();
  nvgrace_bench::register_baseline_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
