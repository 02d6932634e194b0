#pragma once
// Starts: where sampling begins (a tensor and a grid index). `index()` is known before any
// noise is drawn, so the sampler validates it against the grid first.
#include <cstddef>

#include "scoreflow/errors.hpp"
#include "scoreflow/solver/history.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

template <Tensor T>
struct StartState {
  T x;
  std::size_t index;
  SolverHistory<T> history{};  ///< a multistep rule's earlier answers (empty: the rule warms up)
};

/// Pure Gaussian noise at grid index 0 (seed §1.5; Part B §2.3), shaped like `prototype`.
template <Tensor T>
struct PureNoise {
  using tensor_type = T;
  T prototype;
  [[nodiscard]] std::size_t index() const { return 0; }
  template <class Schedule>
  StartState<T> init(const Schedule&, Generator& gen) const { return {ops::randn_like(prototype, gen), 0}; }
};

/// SDEdit (Meng et al. 2022; seed §1.7): the original noised to grid index `i_start`.
template <Tensor T>
struct SDEdit {
  using tensor_type = T;
  T original;
  std::size_t i_start;
  [[nodiscard]] std::size_t index() const { return i_start; }
  template <class Schedule>
  StartState<T> init(const Schedule& s, Generator& gen) const {
    return {s.forward(original, i_start, ops::randn_like(original, gen)), i_start};
  }
};

/// A given noisy image at grid index `index`: the seed's iterative_denoise(im_noisy, i_start) (§1.4).
/// With the `history` a step callback saw (StepInfo::history), a multistep run cancelled after
/// any step continues exactly as if it had not stopped (a stochastic rule also needs the same
/// noise: RecordedNoise, keyed by grid index, gives it).
template <Tensor T>
struct FromState {
  using tensor_type = T;
  T x;
  std::size_t grid_index;
  SolverHistory<T> history{};
  [[nodiscard]] std::size_t index() const { return grid_index; }
  template <class Schedule>
  StartState<T> init(const Schedule&, Generator&) const {
    for (const auto& e : history.entries)
      if (e.index > grid_index)
        throw invalid_option(detail::concat("FromState: history entry at grid index ", e.index,
                                            " lies ahead of the start index ", grid_index));
    return {x, grid_index, history};
  }
};

}  // namespace scoreflow
