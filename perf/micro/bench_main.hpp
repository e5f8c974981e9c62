// The main() of actnet's Google Benchmark binaries: a short default run time (a command-line
// --benchmark_min_time still wins), then the binary's own benchmarks and summary reporter.
#pragma once

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <vector>

namespace actnet::perf {

/// The console table (coloured only on a terminal, so piped results stay plain text), for
/// reporters that add a summary of ratios after it.
class summary_reporter_base : public benchmark::ConsoleReporter {
 public:
  summary_reporter_base()
      : ConsoleReporter(::isatty(STDOUT_FILENO) != 0 ? OO_ColorTabular : OO_Tabular) {}

 protected:
  /// Whether `run` feeds the summary: a plain run, or the median of repetitions (then `median`
  /// is set, and that figure wins over plain runs of the same benchmark). Errors and the other
  /// aggregates (mean, stddev, cv) do not.
  static bool summarised(const Run& run, bool& median) {
    median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
    return !run.error_occurred && (run.run_type != Run::RT_Aggregate || median);
  }
};

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
