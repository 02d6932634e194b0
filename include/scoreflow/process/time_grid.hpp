#pragma once
// Time grids: the points a sampler visits, in visiting order.
//
// Diffusion grids hold integer timesteps, decreasing (noisiest first); −1 may end a grid and means
// "clean data" (ᾱ = 1). Flow grids hold t ∈ [0, 1], increasing from noise (t = 0) to data (t = 1),
// the seed's convention x_t = (1 − t) x₀ + t x₁. The two are different types on purpose.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_schedule.hpp"

namespace scoreflow {

class SigmaGrid;

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

  /// A VE σ grid (Karras, exponential, Align Your Steps …: process/sigma_grids.hpp) on the integer
  /// timesteps of an ᾱ table, so those grids drive our integer-time DDPM models: each σ goes to the
  /// timestep whose σ_t = √((1 − ᾱ_t)/ᾱ_t) is nearest in log σ (a tie goes to the smaller t; a σ
  /// beyond the table's ends goes to that end), and a final σ = 0 to −1 (clean data). Two σ on one
  /// timestep are an invalid_option naming both: the grid has more steps than the table resolves.
  ///
  /// diffusers differs here: EulerDiscreteScheduler(use_karras_sigmas=True) keeps the σ exactly and
  /// hands the model fractional timesteps, t = lo + w with w the linear fraction of log σ between
  /// log σ_lo and log σ_{lo+1} (`_sigma_to_t`). Rounding that t gives our timestep (w ≤ ½ ⇔ lo
  /// is nearer in log σ); our steps then run between levels the model was trained at, exact ᾱ_t.
  static DiffusionGrid from_sigmas(const NoiseSchedule& table, const SigmaGrid& sigmas);

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

  /// SD3's timestep shift (Esser et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution
  /// Image Synthesis", §5.3.2: t_m = √(m/n) t_n / (1 + (√(m/n) − 1) t_n), in their time where 1 is
  /// noise), as diffusers' FlowMatchEulerDiscreteScheduler applies it to σ = 1 − t:
  ///   σ' = s σ / (1 + (s − 1) σ),  i.e. here  t' = t / (t + s (1 − t)).
  /// s > 1 spends more steps at high noise (SD3 uses s = 3); s = 1 is the identity; t = 0 and 1 stay.
  /// diffusers shifts its default set_timesteps grid twice at the low-noise end (its σ_min is
  /// already shifted in __init__); applied to a grid, this shifts each point once.
  static FlowGrid shifted(const FlowGrid& grid, double shift) {
    detail::require(std::isfinite(shift) && shift > 0.0, "shift", shift, "must be finite and positive");
    std::vector<double> t = grid.times();
    for (double& v : t) v = v / (v + shift * (1.0 - v));
    return FlowGrid(std::move(t));
  }

  /// The resolution-dependent ("dynamic") shift of diffusers' FlowMatchEulerDiscreteScheduler with
  /// use_dynamic_shifting and time_shift_type = "exponential" (Flux; SD3.5), on σ = 1 − t:
  ///   σ' = e^μ / (e^μ + (1/σ − 1)^e),  i.e. here  t' = r^e / (e^μ + r^e),  r = t / (1 − t),
  /// with μ from the image's token count (ResolutionShift::mu) and e = `exponent` (diffusers' 1.0).
  /// For e = 1 it is shifted(grid, e^μ). Flux's pipeline samples time_shifted(uniform(n), μ): its
  /// σ = linspace(1, 1/n, n) then 0 is t = i/n.
  static FlowGrid time_shifted(const FlowGrid& grid, double mu, double exponent = 1.0) {
    detail::require(std::isfinite(mu), "mu", mu, "must be finite");
    detail::require(std::isfinite(exponent) && exponent > 0.0, "exponent", exponent, "must be finite and positive");
    const double scale = std::exp(mu);
    std::vector<double> t = grid.times();
    for (double& v : t) {
      if (v == 1.0) continue;  // r = ∞: t' = 1
      const double q = std::pow(v / (1.0 - v), exponent);
      v = q / (scale + q);
    }
    return FlowGrid(std::move(t));
  }

  [[nodiscard]] std::size_t size() const { return times_.size(); }
  [[nodiscard]] FlowTime operator[](std::size_t i) const { return {times_.at(i)}; }
  [[nodiscard]] const std::vector<double>& times() const { return times_; }

 private:
  std::vector<double> times_;
};

/// μ of FlowGrid::time_shifted from the image's sequence length (the transformer's token count, e.g.
/// (H/16)·(W/16) for Flux's packed latents): linear through (base_seq_len, base_shift) and
/// (max_seq_len, max_shift), as diffusers' `calculate_shift` in the Flux and SD3 pipelines
/// (pipeline_flux.py), with the defaults of Flux's scheduler config.
struct ResolutionShift {
  double base_seq_len = 256;
  double max_seq_len = 4096;
  double base_shift = 0.5;
  double max_shift = 1.15;

  [[nodiscard]] double mu(double image_seq_len) const {
    detail::require(std::isfinite(image_seq_len) && image_seq_len > 0, "image_seq_len", image_seq_len,
                    "must be finite and positive");
    detail::require(std::isfinite(base_seq_len), "base_seq_len", base_seq_len, "must be finite");
    detail::require(std::isfinite(max_seq_len) && max_seq_len > base_seq_len, "max_seq_len", max_seq_len,
                    "must be finite and larger than base_seq_len");
    detail::require(std::isfinite(base_shift), "base_shift", base_shift, "must be finite");
    detail::require(std::isfinite(max_shift), "max_shift", max_shift, "must be finite");
    const double m = (max_shift - base_shift) / (max_seq_len - base_seq_len);
    const double b = base_shift - m * base_seq_len;
    return image_seq_len * m + b;
  }
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

inline DiffusionGrid DiffusionGrid::from_sigmas(const NoiseSchedule& table, const SigmaGrid& sigmas) {
  // log σ_t, non-decreasing in t: −∞ where ᾱ = 1, +∞ at a zero-terminal-SNR end (never nearest).
  const auto& bars = table.alphas_cumprod();
  std::vector<double> log_sigma(bars.size());
  for (std::size_t t = 0; t < bars.size(); ++t) log_sigma[t] = 0.5 * std::log((1.0 - bars[t]) / bars[t]);
  std::vector<int> timesteps;
  for (std::size_t i = 0; i < sigmas.size(); ++i) {
    const double sigma = sigmas[i].value;
    int t = -1;
    if (sigma > 0.0) {
      const double target = std::log(sigma);
      const auto above = std::lower_bound(log_sigma.begin(), log_sigma.end(), target);
      auto hi = static_cast<std::size_t>(above - log_sigma.begin());
      if (hi == log_sigma.size()) hi = log_sigma.size() - 1;
      std::size_t best = hi;
      if (hi > 0 && target - log_sigma[hi - 1] <= std::abs(log_sigma[hi] - target)) best = hi - 1;
      t = static_cast<int>(best);
    }
    if (!timesteps.empty() && t == timesteps.back())
      throw invalid_option(detail::concat("sigmas[", i, "] = ", sigma, " maps to timestep ", t, " as sigmas[", i - 1,
                                          "] = ", sigmas[i - 1].value, " does (nearest in log σ): too many steps for ",
                                          "the ", table.size(), "-entry table"));
    timesteps.push_back(t);
  }
  return DiffusionGrid(std::move(timesteps));
}

}  // namespace scoreflow
