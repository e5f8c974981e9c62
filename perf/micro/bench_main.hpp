// The main() of actnet's Google Benchmark binaries: a short default run time (a command-line
// --benchmark_min_time still wins), then the binary's own benchmarks and summary reporter.
#pragma once

#include <benchmark/benchmark.h>

#include <vector>

namespace actnet::perf {

/// Registers with `register_all`, runs everything with `reporter` as the display reporter.
template <class Reporter, class Register>
int bench_main(int argc, char** argv, Register register_all) {
  // The default goes first, so a --benchmark_min_time given on the command line overrides it.
  static char default_min_time[] = "--benchmark_min_time=0.2";
  std::vector<char*> args(argv, argv + argc);
  args.insert(args.begin() + 1, default_min_time);
  args.push_back(nullptr);
  int count = argc + 1;
  register_all();
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) {
    return 1;
  }
  Reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace actnet::perf
