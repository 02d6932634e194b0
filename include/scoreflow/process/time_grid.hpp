#pragma once
// Time grids: the points a sampler visits, in visiting order.
//
// Diffusion grids hold integer timesteps, decreasing (noisiest first); −1 may end a grid and means
// "clean data" (ᾱ = 1). Flow grids hold t ∈ [0, 1], increasing from noise (t = 0) to data (t = 1),
// the seed's convention x_t = (1 − t) x₀ + t x₁. The two are different types on purpose.
#include <cmath>
#include <cstddef>
#include <vector>

#include "scoreflow/errors.hpp"

namespace scoreflow {

/// A diffusion timestep: an index into the ᾱ table (larger is noisier), or −1 for clean data.
struct Timestep {
  int value;
  friend bool operator==(Timestep, Timestep) = default;
};

/// Flow time t ∈ [0, 1]: 0 is pure noise, 1 is data.
struct FlowTime {
  double value;
  friend bool operator==(FlowTime, FlowTime) = default;
};

/// The noise level σ of a variance-exploding model D(x, σ), x = x₀ + σ ε (EDM, k-diffusion).
struct Sigma {
  double value;
  friend bool operator==(Sigma, Sigma) = default;
};

class DiffusionGrid {
 public:
  explicit DiffusionGrid(std::vector<int> timesteps) : timesteps_(std::move(timesteps)) {
    detail::require(timesteps_.size() >= 2, "grid.size()", timesteps_.size(),
                    "a diffusion grid needs at least two points");
    for (std::size_t i = 0; i < timesteps_.size(); ++i) {
      if (timesteps_[i] < -1)
        throw invalid_option(detail::concat("grid[", i, "] = ", timesteps_[i], ": must be ≥ -1"));
      if (i > 0 && timesteps_[i] >= timesteps_[i - 1])
        throw invalid_option(detail::concat("grid[", i, "] = ", timesteps_[i],
                                            ": must be smaller than grid[", i - 1, "] = ", timesteps_[i - 1]));
    }
  }

  /// The seed's strided list (§1.4): start, start − stride, …, down to the last value ≥ 0
  /// (990, 960, …, 0 by default).
  static DiffusionGrid strided(int start = 990, int stride = 30) {
    detail::require(stride > 0, "stride", stride, "must be positive");
    detail::require(start >= stride, "start", start, "must be at least one stride above 0");
    std::vector<int> t;
    for (int v = start; v >= 0; v -= stride) t.push_back(v);
    return DiffusionGrid(std::move(t));
  }

  enum class Spacing { linspace, leading, trailing };

  /// diffusers' `timestep_spacing` for `steps` model calls out of T training steps, followed by
  /// the final target −1 (clean data), so a sampler makes exactly `steps` model calls.
  ///
  /// The values are diffusers' to the last integer for every steps = 1 … T: the float arithmetic
  /// of NumPy's linspace and arange is reproduced, then rounded half to even as np.round
  /// (tests/core/process/test_noise_schedule.cpp checks every n against recorded values):
  ///   linspace  np.linspace(0, T − 1, n).round()[::-1]: k·((T − 1)/(n − 1)), the last exactly T − 1;
  ///   leading   (np.arange(n) · (T // n))[::-1] + offset;
  ///   trailing  np.round(np.arange(T, 0, −T/n)) − 1: arange fills T + k·δ with δ = (T − T/n) − T
  ///             (its first two values' difference, which is not always −T/n). For 62 values of n
  ///             (T = 1000) arange returns n + 1 values, the last −1; we keep n, as asked for.
  static DiffusionGrid spaced(int steps, int train_steps = 1000, Spacing spacing = Spacing::leading,
                              int offset = 0) {
    detail::require(steps >= 1, "steps", steps, "must be positive");
    detail::require(steps <= train_steps, "steps", steps, "must not exceed the training steps");
    std::vector<int> t;
    const auto round_half_even = [](double v) { return static_cast<int>(std::nearbyint(v)); };  // FE_TONEAREST
    if (spacing == Spacing::linspace) {
      const double step = steps == 1 ? 0.0 : static_cast<double>(train_steps - 1) / (steps - 1);
      for (int k = steps - 1; k >= 0; --k)
        t.push_back(k == steps - 1 && steps > 1 ? train_steps - 1 : round_half_even(k * step));
    } else if (spacing == Spacing::leading) {
      const int ratio = train_steps / steps;
      for (int k = steps - 1; k >= 0; --k) t.push_back(k * ratio + offset);
    } else {
      const double start = train_steps;
      const double delta = (start - start / steps) - start;
      for (int k = 0; k < steps; ++k) t.push_back(round_half_even(start + k * delta) - 1);
    }
    t.push_back(-1);
    return DiffusionGrid(std::move(t));
  }

  [[nodiscard]] std::size_t size() const { return timesteps_.size(); }
  [[nodiscard]] Timestep operator[](std::size_t i) const { return {timesteps_.at(i)}; }
  [[nodiscard]] const std::vector<int>& timesteps() const { return timesteps_; }

 private:
  std::vector<int> timesteps_;
};

class FlowGrid {
 public:
  explicit FlowGrid(std::vector<double> times) : times_(std::move(times)) {
    detail::require(times_.size() >= 2, "grid.size()", times_.size(), "a flow grid needs at least two points");
    for (std::size_t i = 0; i < times_.size(); ++i) {
      if (!(times_[i] >= 0.0 && times_[i] <= 1.0))
        throw invalid_option(detail::concat("grid[", i, "] = ", times_[i], ": must lie in [0, 1]"));
      if (i > 0 && times_[i] <= times_[i - 1])
        throw invalid_option(detail::concat("grid[", i, "] = ", times_[i], ": must increase"));
    }
  }

  /// t_i = i / steps, i = 0 … steps (the seed samples with 300 Euler steps).
  static FlowGrid uniform(int steps = 300) {
    detail::require(steps >= 1, "steps", steps, "must be positive");
    std::vector<double> t;
    for (int i = 0; i <= steps; ++i) t.push_back(static_cast<double>(i) / steps);
    return FlowGrid(std::move(t));
  }

  [[nodiscard]] std::size_t size() const { return times_.size(); }
  [[nodiscard]] FlowTime operator[](std::size_t i) const { return {times_.at(i)}; }
  [[nodiscard]] const std::vector<double>& times() const { return times_; }

 private:
  std::vector<double> times_;
};

/// A decreasing list of VE noise levels σ₀ > σ₁ > … ≥ 0, as k-diffusion's samplers take it (the
/// last is usually 0: clean data). Builders (Karras, exponential, …) live in process/sigma_grids.hpp.
class SigmaGrid {
 public:
  explicit SigmaGrid(std::vector<double> sigmas) : sigmas_(std::move(sigmas)) {
    detail::require(sigmas_.size() >= 2, "grid.size()", sigmas_.size(), "a sigma grid needs at least two points");
    for (std::size_t i = 0; i < sigmas_.size(); ++i) {
      if (!(std::isfinite(sigmas_[i]) && sigmas_[i] >= 0.0))
        throw invalid_option(detail::concat("sigmas[", i, "] = ", sigmas_[i], ": must be finite and ≥ 0"));
      if (i > 0 && sigmas_[i] >= sigmas_[i - 1])
        throw invalid_option(detail::concat("sigmas[", i, "] = ", sigmas_[i], ": must be smaller than sigmas[",
                                            i - 1, "] = ", sigmas_[i - 1], " (a grid runs from noisy to clean)"));
    }
  }

  [[nodiscard]] std::size_t size() const { return sigmas_.size(); }
  [[nodiscard]] Sigma operator[](std::size_t i) const { return {sigmas_.at(i)}; }
  [[nodiscard]] const std::vector<double>& sigmas() const { return sigmas_; }

 private:
  std::vector<double> sigmas_;
};

}  // namespace scoreflow
