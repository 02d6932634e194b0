#pragma once
// The state a multistep rule needs, carried by the sampler's loop (not by the rule).
//
// A multistep rule (DPM-Solver++(2M/3M), UniPC, DEIS, iPNDM, LMS) extrapolates from the model's
// answers at earlier grid points. Rules are stateless values: the loop owns one SolverHistory,
// hands it to every step, shows it to the step callback (StepInfo::history) and accepts it back in
// FromState, so a cancelled run restarted from its last state continues bit for bit. A rule reads
// how many entries there are to decide its order (the warm-up needs no step counter) and records
// the point it just evaluated. Jumping back on the grid (RePaint's re-noising) clears the history:
// answers at points ahead of x no longer describe its path.
#include <cstddef>
#include <optional>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

template <Tensor T>
struct SolverHistory {
  struct Entry {
    std::size_t index;     ///< grid index of the point
    std::optional<T> x;    ///< the sample there, kept only by rules that need it (UniPC's corrector,
                           ///< which also rewrites it; LMS): a copy per step costs time
    T data;                ///< the data estimate x̂ there (guidance and combiner applied)
  };
  std::vector<Entry> entries;  ///< oldest first

  [[nodiscard]] std::size_t size() const { return entries.size(); }
  [[nodiscard]] bool empty() const { return entries.empty(); }
  /// The k-th most recent entry (0: the last recorded).
  [[nodiscard]] const Entry& back(std::size_t k = 0) const {
    if (k >= entries.size())
      throw invalid_option(detail::concat("history: entry ", k, " back requested, ", entries.size(), " recorded"));
    return entries[entries.size() - 1 - k];
  }
  /// Appends the point just evaluated (its data estimate only) and keeps the last `keep` entries.
  void record(std::size_t index, T data, std::size_t keep) { push(Entry{index, std::nullopt, std::move(data)}, keep); }
  /// The same, keeping the sample x there too.
  void record(std::size_t index, T x, T data, std::size_t keep) { push(Entry{index, std::move(x), std::move(data)}, keep); }
  /// The sample of the k-th most recent entry; an error if that rule did not keep it.
  [[nodiscard]] const T& x_at(std::size_t k = 0) const {
    const auto& e = back(k);
    if (!e.x) throw invalid_option(detail::concat("history: entry at grid index ", e.index, " holds no sample"));
    return *e.x;
  }
  /// Replaces the sample of the last entry (a corrector's improved x at that point).
  void correct_last(T x) { entries.back().x = std::move(x); }
  void clear() { entries.clear(); }

 private:
  void push(Entry e, std::size_t keep) {
    entries.push_back(std::move(e));
    if (entries.size() > keep) entries.erase(entries.begin(), entries.end() - static_cast<std::ptrdiff_t>(keep));
  }
};

}  // namespace scoreflow
