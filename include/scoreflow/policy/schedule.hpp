#pragma once
// The "schedule" policy: a time grid plus the rule that steps between its points. The sampler
// walks grid indices 0 … size()−1 and never looks inside. Three instantiations give the sampler
// the same interface (`ScheduleFor`, policy/concepts.hpp):
//   DiffusionSchedule  ᾱ table + integer timestep grid   (DDPM, DDIM, DeepFloyd IF, our DDPM UNet)
//   FlowSchedule       grid on [0, 1]                    (the seed's flow matching)
//   SigmaSchedule      decreasing VE σ grid              (EDM / k-diffusion denoisers D(x, σ))
// Each is also a SolverPath (solver/path.hpp): its grid as noise levels (α, σ), so the rules of
// solver/ (DPM-Solver++, UniPC, DEIS, iPNDM, the k-diffusion family) serve all three. A schedule
// accepts two kinds of rule: its family's own (DDPMStep / DDIMStep on diffusion; Euler, Heun, RK4 …
// on flow time) and any PathRule, which also receives the loop's SolverHistory.
#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>

#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/process/noise_schedule.hpp"
#include "scoreflow/process/process.hpp"
#include "scoreflow/process/time_grid.hpp"
#include "scoreflow/solver/diffusion_steps.hpp"
#include "scoreflow/solver/flow_solvers.hpp"
#include "scoreflow/solver/history.hpp"
#include "scoreflow/solver/path.hpp"

namespace scoreflow {

namespace detail {
template <class Rule, class T, class Predict>
concept DiffusionFamilyRule = requires(const Rule& r, const T& x, const DiffusionStepContext& c, Predict& p,
                                       Generator& g) {
  { r(x, c, p, g) } -> std::same_as<T>;
};
template <class Rule, class T, class Predict>
concept FlowFamilyRule = requires(const Rule& r, const T& x, FlowTime t, Predict& p) {
  { r(x, t, t, p) } -> std::same_as<T>;
};
}  // namespace detail

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
  [[nodiscard]] NoiseLevel level(std::size_t i) const { return diffusion::level(alpha_bar(i)); }
  /// The level of any timestep of the table (the model may be called between grid points).
  [[nodiscard]] NoiseLevel level_at(Timestep t) const { return diffusion::level(table.alpha_bar(t.value)); }
  [[nodiscard]] std::optional<DataMap> data_map(Parameterization kind, NoiseLevel l) const {
    return diffusion::data_map(kind, l);
  }

  /// x̂₀ from whatever the model predicts (a learned-range variance output is not used here: the
  /// ODE solvers drop it, as diffusers does; DDPMStep reads it from the Prediction).
  template <Tensor T>
  T data_estimate(const Prediction<T>& p, const T& x, NoiseLevel l) const {
    return diffusion::data_estimate(p, x, l);
  }

  /// Data noised to grid point i (seed §1.1).
  template <Tensor T>
  T forward(const T& x0, std::size_t i, const T& noise) const {
    return diffusion::forward(x0, alpha_bar(i), noise);
  }

  /// x at grid point i → x at grid point i + 1.
  template <Tensor T, class Predict>
  T step(const T& x, std::size_t i, Predict&& predict, Generator& gen, SolverHistory<T>& history) const {
    if constexpr (detail::DiffusionFamilyRule<Step, T, Predict>) {
      const DiffusionStepContext c{grid[i], grid[i + 1], alpha_bar(i), alpha_bar(i + 1)};
      return rule(x, c, predict, gen);
    } else {
      static_assert(PathRule<Step, T, DiffusionSchedule>,
                    "DiffusionSchedule's rule must be a diffusion step (DDPMStep, DDIMStep) or a solver of "
                    "scoreflow/solver/ callable as rule(x, i, path, predict, history, gen)");
      return rule(x, i, *this, predict, history, gen);
    }
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
  [[nodiscard]] NoiseLevel level(std::size_t i) const { return flow::level(grid[i].value); }
  [[nodiscard]] NoiseLevel level_at(FlowTime t) const { return flow::level(t.value); }
  [[nodiscard]] std::optional<DataMap> data_map(Parameterization kind, NoiseLevel l) const {
    return flow::data_map(kind, l);
  }
  [[nodiscard]] FlowTime time_at(NoiseLevel l) const { return {flow::time_of(l)}; }
  [[nodiscard]] NoiseLevel level_at_lambda(double lambda) const { return flow::level_at_lambda(lambda); }

  /// x̂₁ = x + (1 − t) u from a velocity model (process.hpp, flow::data_estimate).
  template <Tensor T>
  T data_estimate(const Prediction<T>& p, const T& x, NoiseLevel l) const {
    return flow::data_estimate(p, x, l);
  }

  /// x_t = (1 − t) ε + t x₁ (seed Part B §2).
  template <Tensor T>
  T forward(const T& data, std::size_t i, const T& noise) const {
    return flow::forward(data, grid[i].value, noise);
  }

  template <Tensor T, class Predict>
  T step(const T& x, std::size_t i, Predict&& predict, Generator& gen, SolverHistory<T>& history) const {
    if constexpr (detail::FlowFamilyRule<Solver, T, Predict>) {
      return rule(x, grid[i], grid[i + 1], predict);
    } else {
      static_assert(PathRule<Solver, T, FlowSchedule>,
                    "FlowSchedule's rule must be an ODE step on flow time (Euler, Midpoint, Heun, RK4, …) or a "
                    "solver of scoreflow/solver/ callable as rule(x, i, path, predict, history, gen)");
      return rule(x, i, *this, predict, history, gen);
    }
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

/// A variance-exploding σ grid (EDM; k-diffusion's samplers take exactly this): x = x₀ + σ ε,
/// the model D(x, Sigma{σ}) (usually Parameterization::sample). Only PathRules step it.
template <class Solver>
struct SigmaSchedule {
  using time_type = Sigma;

  SigmaGrid grid;
  Solver rule{};

  explicit SigmaSchedule(SigmaGrid grid_, Solver rule_ = {}) : grid(std::move(grid_)), rule(std::move(rule_)) {}

  [[nodiscard]] std::size_t size() const { return grid.size(); }
  [[nodiscard]] Sigma time(std::size_t i) const { return grid[i]; }
  [[nodiscard]] NoiseLevel level(std::size_t i) const { return {1.0, grid[i].value}; }
  [[nodiscard]] NoiseLevel level_at(Sigma s) const { return {1.0, s.value}; }
  [[nodiscard]] std::optional<DataMap> data_map(Parameterization kind, NoiseLevel l) const {
    return ve::data_map(kind, l);
  }
  [[nodiscard]] Sigma time_at(NoiseLevel l) const { return {l.ve_sigma()}; }
  [[nodiscard]] NoiseLevel level_at_lambda(double lambda) const { return {1.0, std::exp(-lambda)}; }

  template <Tensor T>
  T data_estimate(const Prediction<T>& p, const T& x, NoiseLevel l) const {
    return ve::data_estimate(p, x, l);
  }

  /// x = x₀ + σ_i ε.
  template <Tensor T>
  T forward(const T& x0, std::size_t i, const T& noise) const {
    return ve::forward(x0, grid[i].value, noise);
  }

  template <Tensor T, class Predict>
  T step(const T& x, std::size_t i, Predict&& predict, Generator& gen, SolverHistory<T>& history) const {
    static_assert(PathRule<Solver, T, SigmaSchedule>,
                  "SigmaSchedule's rule must be a solver of scoreflow/solver/ callable as "
                  "rule(x, i, path, predict, history, gen)");
    return rule(x, i, *this, predict, history, gen);
  }

  /// Back to a noisier σ_to > σ_from: x + √(σ_to² − σ_from²) ε.
  template <Tensor T>
  T renoise(const T& x, std::size_t from, std::size_t to, const T& noise) const {
    const double a = grid[from].value, b = grid[to].value;
    return ops::axpby(1.0, x, std::sqrt(std::max(b * b - a * a, 0.0)), noise);
  }
};

}  // namespace scoreflow
