// A console reporter that also keeps each benchmark's counters, for the summary of ratios that
// actors_bench and peers_bench print after the table.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "bench_main.hpp"

namespace actnet::perf {

/// Prints the console table as usual and keeps, per benchmark (name and arguments), the
/// counters of its plain run or, when there are repetitions, of their median, since ratios
/// taken from one run survive machine noise where absolute figures do not. Subclasses print
/// their summary in Finalize().
class summary_table : public summary_reporter_base {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      bool median = false;
      if (!summarised(run, median)) {
        continue;
      }
      std::string name = run.run_name.function_name;
      if (!run.run_name.args.empty()) {
        name += '/' + run.run_name.args;
      }
      if (!results_.contains(name)) {
        order_.push_back(name);
      }
      entry& e = results_[name];
      if (median || !e.from_median) {
        e.from_median = median;
        for (const auto& [counter, value] : run.counters) {
          e.counters[counter] = value.value;
        }
      }
    }
  }

 protected:
  /// The benchmarks that reported, in the order they ran.
  [[nodiscard]] const std::vector<std::string>& names() const noexcept { return order_; }
  /// `counter` of benchmark `name`; 0 when either is missing (a benchmark that failed or was
  /// filtered out).
  [[nodiscard]] double counter(const std::string& name, const std::string& counter) const {
    const auto it = results_.find(name);
    if (it == results_.end()) {
      return 0;
    }
    const auto c = it->second.counters.find(counter);
    return c == it->second.counters.end() ? 0 : c->second;
  }

 private:
  struct entry {
    std::map<std::string, double> counters;
    bool from_median = false;
  };

  std::map<std::string, entry> results_;
  std::vector<std::string> order_;
};

}  // namespace actnet::perf
