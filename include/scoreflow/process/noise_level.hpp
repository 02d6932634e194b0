#pragma once
// One description of "how noisy" for every model family: x = α · data + σ · ε.
//
// Exponential-integrator solvers (DPM-Solver++, UniPC, DEIS) and the k-diffusion family are
// written once against (α, σ) and λ = log(α/σ) (half the log-SNR; Lu et al. 2022, §3.1), so the
// same code serves
//   - variance-preserving diffusion:  α = √ᾱ, σ = √(1 − ᾱ)            (Ho et al. 2020)
//   - the seed's flow path:           α = t,  σ = 1 − t                (x_t = (1 − t) x₀ + t x₁)
//   - variance-exploding σ grids:     α = 1,  σ = σ                    (Karras et al. 2022, "EDM")
// and every prediction kind reaches the solvers as a data estimate x̂ (see `data_estimate` on each
// schedule, policy/schedule.hpp).
#include <cmath>
#include <limits>

#include "scoreflow/errors.hpp"

namespace scoreflow {

struct NoiseLevel {
  double alpha;  ///< coefficient of the data
  double sigma;  ///< coefficient of the Gaussian noise

  /// λ = log α − log σ: −∞ at pure noise (α = 0), +∞ at clean data (σ = 0).
  [[nodiscard]] double lambda() const { return std::log(alpha) - std::log(sigma); }
  /// k-diffusion's / EDM's σ of x/α = data + (σ/α) ε; +∞ at pure noise.
  [[nodiscard]] double ve_sigma() const {
    return alpha > 0.0 ? sigma / alpha : std::numeric_limits<double>::infinity();
  }
  [[nodiscard]] bool is_pure_noise() const { return alpha == 0.0; }
  [[nodiscard]] bool is_clean() const { return sigma == 0.0; }
  friend bool operator==(NoiseLevel, NoiseLevel) = default;
};

/// The data estimate as an affine map of the model's answer at one level: x̂ = a·x + b·p, with
/// (a, b) fixed by the prediction kind and the level (the `data_estimate` formulas of
/// process/process.hpp, written as coefficients). Guidance that works on data estimates
/// (policy/guidance.hpp, GuidanceSpace::data) maps both answers to x̂ and the result back by
/// p = (x̂ − a·x)/b; at b = 0 the answer does not move x̂, so there is no way back.
struct DataMap {
  double from_input;       ///< a
  double from_prediction;  ///< b
};

namespace diffusion {
/// Variance preserving: α = √ᾱ, σ = √(1 − ᾱ).
inline NoiseLevel level(double alpha_bar) { return {std::sqrt(alpha_bar), std::sqrt(1.0 - alpha_bar)}; }
}  // namespace diffusion

namespace flow {
/// The seed's path x_t = (1 − t) ε + t x₁: α = t, σ = 1 − t.
inline NoiseLevel level(double t) { return {t, 1.0 - t}; }
/// t from a level on this path (α + σ = 1; normalised so levels built from λ round-trip).
inline double time_of(NoiseLevel l) { return l.alpha / (l.alpha + l.sigma); }
/// The level with log(t/(1 − t)) = λ: t = 1/(1 + e^{−λ}).
inline NoiseLevel level_at_lambda(double lambda) { return level(1.0 / (1.0 + std::exp(-lambda))); }
}  // namespace flow

}  // namespace scoreflow
