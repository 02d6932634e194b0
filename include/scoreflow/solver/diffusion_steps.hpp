#pragma once
// Step rules between two points t > t' of a diffusion grid. A rule receives `predict(x, time)`,
// which already includes guidance and combiners, so rules never know about either.
#include <cmath>
#include <optional>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/process.hpp"
#include "scoreflow/process/time_grid.hpp"
#include "scoreflow/solver/dynamic_threshold.hpp"
#include "scoreflow/tensor/random.hpp"

namespace scoreflow {

namespace detail {
/// x̂₀ through the step's optional dynamic threshold; a backend without the image operations
/// (tensor.hpp, ImageTensor) can sample, but not threshold.
template <Tensor T>
T thresholded(const std::optional<DynamicThreshold>& threshold, T x0) {
  if (!threshold) return x0;
  if constexpr (ImageTensor<T>)
    return (*threshold)(x0);
  else
    throw invalid_option("threshold: dynamic thresholding needs the image operations of tensor_traits<T> "
                         "(abs_quantile_per_sample, clamp_divide_per_sample)");
}
}  // namespace detail

/// The two grid points of one step; ᾱ' = 1 when t' = −1 (clean data).
///
/// A step may start at ᾱ = 0 (a zero-terminal-SNR table's last entry, reached by trailing spacing;
/// Lin et al. 2024 §3.3); only the last table entry may be 0, so ᾱ' > 0 always. There α = 0,
/// β = 1 and β̃ = 1 − ᾱ': every coefficient below is finite (1 − ᾱ = 1 in each denominator).
struct DiffusionStepContext {
  Timestep t;
  Timestep t_prev;
  double alpha_bar;
  double alpha_bar_prev;

  /// The strided step's own α and β (seed §1.4): α_t = ᾱ_t / ᾱ_t', β_t = 1 − α_t.
  [[nodiscard]] double alpha() const { return alpha_bar / alpha_bar_prev; }
  [[nodiscard]] double beta() const { return 1.0 - alpha(); }
  /// Posterior variance β̃ = (1 − ᾱ_t')/(1 − ᾱ_t) β_t (Ho et al. 2020, eq. 7), floored at 1e-20 as diffusers.
  [[nodiscard]] double posterior_variance() const {
    return std::max((1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * beta(), 1e-20);
  }
};

/// Variance of the DDPM step's noise.
enum class StepVariance {
  none,          ///< deterministic posterior mean
  fixed_small,   ///< β̃ (the seed's and diffusers' default)
  fixed_large,   ///< β
  learned_range  ///< exp(frac·log β + (1−frac)·log β̃), frac = (v+1)/2 from the model (IF; Nichol & Dhariwal 2021, eq. 15)
};

/// The seed's strided DDPM step (§1.4), i.e. the posterior q(x_t' | x_t, x̂₀) of Ho et al. eq. 7:
///   x_t' = √ᾱ_t' β_t/(1 − ᾱ_t) x̂₀ + √α_t (1 − ᾱ_t')/(1 − ᾱ_t) x_t + σ z.
/// (The seed prints the second coefficient as √(ᾱ_t(1 − ᾱ_t'))/(1 − ᾱ_t); the posterior mean has
/// √α_t (1 − ᾱ_t'), which is what diffusers and DeepFloyd IF use and what the oracle tests confirm.)
/// From ᾱ_t = 0: x_t' = √ᾱ_t' x̂₀ + σ z (the x_t coefficient is √α_t · … = 0, as x_t = ε holds no
/// signal), σ² = β̃ = 1 − ᾱ_t' (fixed_small) or β = 1 (fixed_large); x̂₀ needs a v- or x₀-prediction.
struct DDPMStep {
  StepVariance variance = StepVariance::fixed_small;
  std::optional<DynamicThreshold> threshold{};

  template <Tensor T, class Predict>
  T operator()(const T& x, const DiffusionStepContext& c, Predict&& predict, Generator& gen) const {
    const Prediction<T> p = predict(x, c.t);
    const T x0 = detail::thresholded(threshold, diffusion::to_sample(p, x, c.alpha_bar));
    const double beta = c.beta();
    const double coef_x0 = std::sqrt(c.alpha_bar_prev) * beta / (1.0 - c.alpha_bar);
    const double coef_xt = std::sqrt(c.alpha()) * (1.0 - c.alpha_bar_prev) / (1.0 - c.alpha_bar);
    if (variance == StepVariance::none || c.t.value <= 0)  // diffusers: no noise at t = 0
      return ops::axpby(coef_x0, x0, coef_xt, x);
    // mean + σ z in one pass (ops::axpby_randn)
    switch (variance) {
      case StepVariance::fixed_small:
        return ops::axpby_randn(coef_x0, x0, coef_xt, x, std::sqrt(c.posterior_variance()), gen);
      case StepVariance::fixed_large: return ops::axpby_randn(coef_x0, x0, coef_xt, x, std::sqrt(beta), gen);
      case StepVariance::learned_range: {
        const T mean = ops::axpby(coef_x0, x0, coef_xt, x);
        const T z = ops::randn_like(x, gen);
        if (!p.variance)
          throw invalid_option("variance = learned_range: the denoiser declares no variance output "
                               "(construct it with VarianceOutput::learned_range)");
        const double log_min = std::log(c.posterior_variance()), log_max = std::log(beta);
        // std = exp(½ log σ²), log σ² = log_min + (v + 1)/2 · (log_max − log_min)
        const double slope = 0.25 * (log_max - log_min);
        const T std_dev = ops::exp(ops::add_scalar(ops::scale(slope, *p.variance), 0.5 * log_min + slope));
        return ops::add(mean, ops::multiply(std_dev, z));
      }
      case StepVariance::none: break;
    }
    return ops::axpby(coef_x0, x0, coef_xt, x);
  }
};

/// DDIM (Song et al. 2021, eq. 12) with stochasticity η (η = 0 deterministic, η = 1 ≈ DDPM):
///   x_t' = √ᾱ_t' x̂₀ + √(1 − ᾱ_t' − σ²) ε̂ + σ z,  σ = η √((1 − ᾱ_t')/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_t').
/// From ᾱ_t = 0: ε̂ = x_t exactly (diffusion::to_noise), σ = η √(1 − ᾱ_t'), x̂₀ from a v- or
/// x₀-prediction (an ε-prediction there is an invalid_option: it determines no x̂₀).
struct DDIMStep {
  double eta = 0.0;
  std::optional<DynamicThreshold> threshold{};

  template <Tensor T, class Predict>
  T operator()(const T& x, const DiffusionStepContext& c, Predict&& predict, Generator& gen) const {
    detail::require(std::isfinite(eta) && eta >= 0.0, "ddim.eta", eta, "must be finite and non-negative");
    const Prediction<T> p = predict(x, c.t);
    T x0 = diffusion::to_sample(p, x, c.alpha_bar);
    T eps = diffusion::to_noise(p, x, c.alpha_bar);
    // With thresholding, ε̂ is re-derived from the thresholded x̂₀ so that the step stays on the
    // line through x_t and x̂₀. diffusers' DDIMScheduler does this only with
    // use_clipped_model_output=True; its default keeps the model's raw ε̂ for the direction term.
    if (threshold) {
      x0 = detail::thresholded(threshold, std::move(x0));
      eps = diffusion::noise_from_sample(x, x0, c.alpha_bar);
    }
    const double sigma = eta * std::sqrt((1.0 - c.alpha_bar_prev) / (1.0 - c.alpha_bar) * c.beta());
    const double dir = std::sqrt(std::max(1.0 - c.alpha_bar_prev - sigma * sigma, 0.0));
    if (sigma > 0.0) return ops::axpby_randn(std::sqrt(c.alpha_bar_prev), x0, dir, eps, sigma, gen);
    return ops::axpby(std::sqrt(c.alpha_bar_prev), x0, dir, eps);
  }
};

}  // namespace scoreflow
