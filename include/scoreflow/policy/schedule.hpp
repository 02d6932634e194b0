#pragma once
// The "schedule" policy: a time grid plus the rule that steps between its points. The sampler
// walks grid indices 0 … size()−1 and never looks inside. Two instantiations exist: a diffusion
// schedule (ᾱ table + integer grid + DDPM/DDIM rule) and a flow schedule (grid on [0, 1] + ODE
// solver); both give the sampler the same interface (`ScheduleFor`, policy/concepts.hpp).
#include <cmath>
#include <concepts>
#include <cstddef>

#include "scoreflow/process/noise_schedule.hpp"
#include "scoreflow/process/process.hpp"
#include "scoreflow/process/time_grid.hpp"
#include "scoreflow/solver/diffusion_steps.hpp"
#include "scoreflow/solver/flow_solvers.hpp"

namespace scoreflow {

template <class Step>
struct DiffusionSchedule {
  using time_type = Timestep;

  NoiseSchedule table;
  DiffusionGrid grid;
  Step rule{};

  DiffusionSchedule(NoiseSchedule table_, DiffusionGrid grid_, Step rule_ = {})
      : table(std::move(table_)), grid(std::move(grid_)), rule(std::move(rule_)) {
    const int last = grid.timesteps().front();
    detail::require(last < table.size(), "grid[0]", last,
                    "lies beyond the noise schedule (T = table size)");
  }

  [[nodiscard]] std::size_t size() const { return grid.size(); }
  [[nodiscard]] Timestep time(std::size_t i) const { return grid[i]; }
  [[nodiscard]] double alpha_bar(std::size_t i) const { return table.alpha_bar(grid[i].value); }

  /// Data noised to grid point i (seed §1.1).
  template <Tensor T>
  T forward(const T& x0, std::size_t i, const T& noise) const {
    return diffusion::forward(x0, alpha_bar(i), noise);
  }

  /// x at grid point i → x at grid point i + 1.
  template <Tensor T, class Predict>
  T step(const T& x, std::size_t i, Predict&& predict, Generator& gen) const {
    const DiffusionStepContext c{grid[i], grid[i + 1], alpha_bar(i), alpha_bar(i + 1)};
    return rule(x, c, predict, gen);
  }

  /// Back to a noisier point j < i: q(x_j | x_i) = N(√(ᾱ_j/ᾱ_i) x_i, (1 − ᾱ_j/ᾱ_i) I) (RePaint eq. 8 strided).
  template <Tensor T>
  T renoise(const T& x, std::size_t from, std::size_t to, const T& noise) const {
    const double a = alpha_bar(to) / alpha_bar(from);
    return ops::axpby(std::sqrt(a), x, std::sqrt(1.0 - a), noise);
  }
};

template <class Solver>
struct FlowSchedule {
  using time_type = FlowTime;

  FlowGrid grid;
  Solver rule{};

  explicit FlowSchedule(FlowGrid grid_, Solver rule_ = {}) : grid(std::move(grid_)), rule(std::move(rule_)) {}

  [[nodiscard]] std::size_t size() const { return grid.size(); }
  [[nodiscard]] FlowTime time(std::size_t i) const { return grid[i]; }

  /// x_t = (1 − t) ε + t x₁ (seed Part B §2).
  template <Tensor T>
  T forward(const T& data, std::size_t i, const T& noise) const {
    return flow::forward(data, grid[i].value, noise);
  }

  template <Tensor T, class Predict>
  T step(const T& x, std::size_t i, Predict&& predict, Generator&) const {
    return rule(x, grid[i], grid[i + 1], predict);
  }

  /// Back to an earlier time s < t: x_s = (s/t) x_t + √((1 − s)² − (s(1 − t)/t)²) ε, which has
  /// the marginal (1 − s) ε' + s x₁ exactly.
  template <Tensor T>
  T renoise(const T& x, std::size_t from, std::size_t to, const T& noise) const {
    const double t = grid[from].value, s = grid[to].value;
    const double r = s / t;
    const double sd = std::sqrt(std::max((1.0 - s) * (1.0 - s) - r * r * (1.0 - t) * (1.0 - t), 0.0));
    return ops::axpby(r, x, sd, noise);
  }
};

}  // namespace scoreflow
