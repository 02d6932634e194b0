#pragma once
// What a solver rule sees of a schedule: the grid as noise levels (α, σ) (process/noise_level.hpp),
// the model's time at each point, and the model family's conversion of a prediction into a data
// estimate. DiffusionSchedule, FlowSchedule and SigmaSchedule (policy/schedule.hpp) are paths, so
// every rule of solver/ runs on ε-, x₀- and v-predicting diffusion models, velocity-predicting flow
// models and EDM-style denoisers alike.
//
//   rule(x, i, path, predict, history, gen) -> x at grid point i + 1
//
// `predict(x, time)` is the sampler's (guidance and combiner applied); `history` the loop's
// SolverHistory (solver/history.hpp). Rules that evaluate the model between grid points (single-
// step DPM-Solver++(2S), k-diffusion's dpm_2) need a ContinuousPath: a DiffusionSchedule's model
// takes integer timesteps, so they are compile errors there.
#include <cmath>
#include <concepts>
#include <cstddef>

#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/process/prediction.hpp"
#include "scoreflow/solver/history.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

template <class P, class T>
concept SolverPath = requires(const P& p, std::size_t i, const Prediction<T>& pred, const T& x, NoiseLevel l) {
  typename P::time_type;
  { p.size() } -> std::convertible_to<std::size_t>;
  { p.level(i) } -> std::same_as<NoiseLevel>;
  { p.time(i) } -> std::same_as<typename P::time_type>;
  { p.data_estimate(pred, x, l) } -> std::same_as<T>;
};

/// A path whose model accepts any level in between grid points.
template <class P, class T>
concept ContinuousPath = SolverPath<P, T> && requires(const P& p, NoiseLevel l, double lambda) {
  { p.time_at(l) } -> std::same_as<typename P::time_type>;
  { p.level_at_lambda(lambda) } -> std::same_as<NoiseLevel>;
};

namespace detail {
/// Stands in for the sampler's predict when a concept checks a rule (declared only).
template <class T, class Time>
struct PathPredictArchetype {
  Prediction<T> operator()(const T&, Time) const;
};
}  // namespace detail

/// A solver rule of this folder, applicable to path P.
template <class R, class T, class P>
concept PathRule = SolverPath<P, T> &&
                   requires(const R& r, const T& x, std::size_t i, const P& p,
                            detail::PathPredictArchetype<T, typename P::time_type>& predict, SolverHistory<T>& h,
                            Generator& gen) {
                     { r(x, i, p, predict, h, gen) } -> std::same_as<T>;
                   };

namespace detail {
/// x̂ at grid point i: one model call.
template <class Path, class Predict, Tensor T>
T data_at(const Path& path, Predict& predict, const T& x, std::size_t i) {
  return path.data_estimate(predict(x, path.time(i)), x, path.level(i));
}

/// x̂ at a level between grid points (ContinuousPath only): one model call.
template <class Path, class Predict, Tensor T>
T data_at_level(const Path& path, Predict& predict, const T& x, NoiseLevel l) {
  return path.data_estimate(predict(x, path.time_at(l)), x, l);
}

/// ε̂ = (x − α x̂)/σ, the noise a data estimate implies (undefined at σ = 0).
template <Tensor T>
T noise_estimate(const T& x, const T& data, NoiseLevel l) {
  return ops::axpby(1.0 / l.sigma, x, -l.alpha / l.sigma, data);
}
}  // namespace detail

}  // namespace scoreflow
