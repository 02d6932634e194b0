#pragma once
// Builders of noise-level grids: the σ lists k-diffusion's samplers take (Karras, exponential,
// polyexponential, VP), Align Your Steps' optimised tables, and grids uniform in λ = log(α/σ)
// for any path. Every SigmaGrid here is decreasing VE σ (x = x₀ + σ ε) ending with σ = 0 (clean
// data, appended as k-diffusion's append_zero), so n noise levels make n steps. The σ ends are the
// values asked for, bit for bit (k-diffusion's pow/exp round trip lands an ulp or two off them);
// every other entry is k-diffusion's formula in float64. DiffusionGrid::from_sigmas moves any of
// them onto the integer timesteps of an ᾱ table.
#include <array>
#include <cmath>
#include <cstddef>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/process/time_grid.hpp"

namespace scoreflow {

namespace detail {
/// n points from `first` to `last` with both ends exact: the first half counted from `first`, the
/// second from `last`, as torch.linspace computes them; n = 1 gives {first}.
inline std::vector<double> linspace_exact_ends(double first, double last, int n) {
  std::vector<double> out(static_cast<std::size_t>(n));
  if (n == 1) {
    out[0] = first;
    return out;
  }
  const double step = (last - first) / (n - 1);
  for (int i = 0; i < n; ++i)
    out[static_cast<std::size_t>(i)] = i < n / 2 ? first + step * i : last - step * (n - 1 - i);
  return out;
}

inline void require_level_count(int n) { require(n >= 1, "n", n, "must be at least 1 (the number of noise levels)"); }

inline void require_sigma_range(double sigma_min, double sigma_max) {
  require(std::isfinite(sigma_min) && sigma_min > 0.0, "sigma_min", sigma_min, "must be finite and positive");
  require(std::isfinite(sigma_max) && sigma_max > sigma_min, "sigma_max", sigma_max,
          "must be finite and larger than sigma_min");
}

inline void require_grid_rho(double rho) { require(std::isfinite(rho) && rho > 0.0, "rho", rho, "must be positive"); }

/// σ values (decreasing) with σ_max and σ_min pinned at the ends, then σ = 0.
inline SigmaGrid pinned_sigma_grid(std::vector<double> sigmas, double sigma_min, double sigma_max) {
  sigmas.front() = sigma_max;
  if (sigmas.size() > 1) sigmas.back() = sigma_min;
  sigmas.push_back(0.0);
  return SigmaGrid(std::move(sigmas));
}
}  // namespace detail

/// Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models"),
/// eq. 5: σ_i = (σ_max^{1/ρ} + i/(n − 1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0 … n − 1, then 0;
/// k-diffusion's get_sigmas_karras. ρ = 7 is the paper's choice; ρ = 1 is linear in σ, ρ → ∞ tends
/// to exponential_sigmas.
inline SigmaGrid karras_sigmas(int n, double sigma_min, double sigma_max, double rho = 7.0) {
  detail::require_level_count(n);
  detail::require_sigma_range(sigma_min, sigma_max);
  detail::require_grid_rho(rho);
  const double max_inv_rho = std::pow(sigma_max, 1.0 / rho), min_inv_rho = std::pow(sigma_min, 1.0 / rho);
  std::vector<double> sigmas;
  for (double ramp : detail::linspace_exact_ends(0.0, 1.0, n))
    sigmas.push_back(std::pow(max_inv_rho + ramp * (min_inv_rho - max_inv_rho), rho));
  return detail::pinned_sigma_grid(std::move(sigmas), sigma_min, sigma_max);
}

/// σ uniform in log σ from σ_max to σ_min (k-diffusion's get_sigmas_exponential), then 0. For VE
/// this is the λ-uniform grid (λ = −log σ) that DPM-Solver uses (Lu et al. 2022, §3.3).
inline SigmaGrid exponential_sigmas(int n, double sigma_min, double sigma_max) {
  detail::require_level_count(n);
  detail::require_sigma_range(sigma_min, sigma_max);
  std::vector<double> sigmas;
  for (double log_sigma : detail::linspace_exact_ends(std::log(sigma_max), std::log(sigma_min), n))
    sigmas.push_back(std::exp(log_sigma));
  return detail::pinned_sigma_grid(std::move(sigmas), sigma_min, sigma_max);
}

/// log σ a polynomial of degree ρ in the ramp (k-diffusion's get_sigmas_polyexponential):
/// σ_i = exp(r_i^ρ (log σ_max − log σ_min) + log σ_min), r = linspace(1, 0, n), then 0. ρ = 1 is
/// exponential_sigmas; ρ > 1 spends more steps at low noise.
inline SigmaGrid polyexponential_sigmas(int n, double sigma_min, double sigma_max, double rho = 1.0) {
  detail::require_level_count(n);
  detail::require_sigma_range(sigma_min, sigma_max);
  detail::require_grid_rho(rho);
  const double log_min = std::log(sigma_min), span = std::log(sigma_max) - log_min;
  std::vector<double> sigmas;
  for (double ramp : detail::linspace_exact_ends(1.0, 0.0, n)) sigmas.push_back(std::exp(std::pow(ramp, rho) * span + log_min));
  return detail::pinned_sigma_grid(std::move(sigmas), sigma_min, sigma_max);
}

/// The continuous VP SDE's σ(t) = √(exp(β_d t²/2 + β_min t) − 1) at t = linspace(1, ε_s, n)
/// (Song et al. 2021, "Score-Based Generative Modeling through SDEs", VP SDE; k-diffusion's
/// get_sigmas_vp), then 0. exp − 1 is evaluated as expm1: k-diffusion's exp(x) − 1 loses
/// log10(1/x) digits at small x (about 4 at t = ε_s = 1e-3, so σ_{n−1} agrees to ~1e-12 only).
inline SigmaGrid vp_sigmas(int n, double beta_d = 19.9, double beta_min = 0.1, double eps_s = 1e-3) {
  detail::require_level_count(n);
  detail::require(std::isfinite(beta_d) && beta_d > 0.0, "beta_d", beta_d, "must be finite and positive");
  detail::require(std::isfinite(beta_min) && beta_min >= 0.0, "beta_min", beta_min, "must be finite and ≥ 0");
  detail::require(std::isfinite(eps_s) && eps_s > 0.0 && eps_s < 1.0, "eps_s", eps_s, "must lie in (0, 1)");
  std::vector<double> sigmas;
  for (double t : detail::linspace_exact_ends(1.0, eps_s, n)) sigmas.push_back(std::sqrt(std::expm1(beta_d * t * t / 2 + beta_min * t)));
  sigmas.push_back(0.0);
  return SigmaGrid(std::move(sigmas));
}

/// n values of λ = log(α/σ) uniform in [λ_min, λ_max], increasing (noise → data). λ is the time of
/// the exponential-integrator solvers (Lu et al. 2022, §3.1), so a λ-uniform grid gives each step
/// the same h = λ' − λ.
inline std::vector<double> logsnr_uniform_lambdas(int n, double lambda_min, double lambda_max) {
  detail::require_level_count(n);
  detail::require(std::isfinite(lambda_min), "lambda_min", lambda_min, "must be finite");
  detail::require(std::isfinite(lambda_max) && lambda_max > lambda_min, "lambda_max", lambda_max,
                  "must be finite and larger than lambda_min");
  return detail::linspace_exact_ends(lambda_min, lambda_max, n);
}

/// The noise levels (α, σ) of a λ-uniform grid on any path, given the path's λ → level map
/// (flow::level_at_lambda; FlowSchedule / SigmaSchedule::level_at_lambda; for VP diffusion
/// α² = sigmoid(2λ), σ² = sigmoid(−2λ)).
template <class LevelAtLambda>
std::vector<NoiseLevel> logsnr_uniform_levels(int n, double lambda_min, double lambda_max, LevelAtLambda&& level_at) {
  std::vector<NoiseLevel> levels;
  for (double lambda : logsnr_uniform_lambdas(n, lambda_min, lambda_max)) levels.push_back(level_at(lambda));
  return levels;
}

/// VE σ uniform in λ = −log σ between σ_max and σ_min, then 0: the same grid as exponential_sigmas
/// (equal to rounding), reached through λ.
inline SigmaGrid logsnr_uniform_sigmas(int n, double sigma_min, double sigma_max) {
  detail::require_sigma_range(sigma_min, sigma_max);
  std::vector<double> sigmas;
  for (double lambda : logsnr_uniform_lambdas(n, -std::log(sigma_max), -std::log(sigma_min)))
    sigmas.push_back(std::exp(-lambda));
  return detail::pinned_sigma_grid(std::move(sigmas), sigma_min, sigma_max);
}

/// A λ-uniform grid on the seed's flow path (α = t, σ = 1 − t, so λ = log(t/(1 − t)) and
/// t = sigmoid(λ)): n times t_i = sigmoid(λ_i) for λ uniform in [λ_min, λ_max], then t = 1 (clean
/// data, λ = +∞, as SigmaGrids end with σ = 0). With `from_pure_noise`, t = 0 (λ = −∞: the sampler's
/// start x ~ N(0, I) exactly) comes first, one step more; the solvers take that infinite first h by
/// its limit.
inline FlowGrid logsnr_uniform_flow_grid(int n, double lambda_min, double lambda_max, bool from_pure_noise = false) {
  const auto sigmoid = [](double lambda) { return 1.0 / (1.0 + std::exp(-lambda)); };
  const auto lambdas = logsnr_uniform_lambdas(n, lambda_min, lambda_max);
  detail::require(sigmoid(lambda_max) < 1.0, "lambda_max", lambda_max,
                  "is so large that t = sigmoid(λ) rounds to 1 (clean data) in double precision");
  detail::require(sigmoid(lambda_min) > 0.0, "lambda_min", lambda_min,
                  "is so small that t = sigmoid(λ) rounds to 0 (pure noise) in double precision");
  std::vector<double> times;
  if (from_pure_noise) times.push_back(0.0);
  for (double lambda : lambdas) times.push_back(sigmoid(lambda));
  times.push_back(1.0);
  return FlowGrid(std::move(times));
}

/// The model families Align Your Steps publishes 10-step schedules for.
enum class AysModel {
  sd15,  ///< Stable Diffusion 1.5
  sdxl,  ///< Stable Diffusion XL
  svd    ///< Stable Video Diffusion
};

/// Align Your Steps' optimised 10-step σ schedules (Sabour, Fidler & Kreis 2024, "Align Your Steps:
/// Optimizing Sampling Schedules in Diffusion Models", ICML 2024; the values NVIDIA's "how to" page
/// and ComfyUI's nodes_align_your_steps.py publish, 11 noise levels each, noisiest first).
inline const std::array<double, 11>& align_your_steps_table(AysModel model) {
  static constexpr std::array<double, 11> sd15{14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520,
                                               1.8841921177,  1.3943805092, 0.9642583904, 0.6523686016,
                                               0.3977456272,  0.1515232662, 0.0291671582};
  static constexpr std::array<double, 11> sdxl{14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769,
                                               1.3405244945,  0.8620721141, 0.5550693289, 0.3798540708,
                                               0.2332364134,  0.1114188177, 0.0291671582};
  static constexpr std::array<double, 11> svd{700.00, 54.5, 15.886, 7.977, 4.248, 1.789,
                                              0.981,  0.403, 0.173, 0.034, 0.002};
  switch (model) {
    case AysModel::sd15: return sd15;
    case AysModel::sdxl: return sdxl;
    case AysModel::svd: return svd;
  }
  throw invalid_option("model: unknown Align Your Steps model");
}

/// Align Your Steps for `steps` steps as ComfyUI's AlignYourStepsScheduler builds it: the 10-step
/// table as published, or for other counts its log-linear interpolation (log σ piecewise linear in
/// the position on [0, 1], np.interp) at steps + 1 points; with denoise < 1 only the last
/// round(steps · denoise) steps (half to even, as Python's round). The last noise level is then
/// REPLACED by σ = 0 (nothing is appended): the published σ_min is never visited, as in ComfyUI.
inline SigmaGrid align_your_steps_sigmas(AysModel model, int steps, double denoise = 1.0) {
  detail::require(steps >= 1, "steps", steps, "must be at least 1");
  detail::require(std::isfinite(denoise) && denoise > 0.0 && denoise <= 1.0, "denoise", denoise, "must lie in (0, 1]");
  const auto& table = align_your_steps_table(model);
  std::vector<double> sigmas(table.begin(), table.end());
  if (static_cast<std::size_t>(steps) + 1 != table.size()) {
    // ys = log σ ascending (the table reversed) at xs = linspace(0, 1, 11); NumPy's linspace is
    // start + i·step with the last exactly 1, np.interp is slope·(x − x_j) + y_j, y_j at a knot.
    const int knots = static_cast<int>(table.size());
    std::vector<double> xs(table.size()), ys(table.size());
    for (int j = 0; j < knots; ++j) {
      xs[static_cast<std::size_t>(j)] = j == knots - 1 ? 1.0 : j * (1.0 / (knots - 1));
      ys[static_cast<std::size_t>(j)] = std::log(table[table.size() - 1 - static_cast<std::size_t>(j)]);
    }
    const int points = steps + 1;
    sigmas.assign(static_cast<std::size_t>(points), 0.0);
    for (int i = 0; i < points; ++i) {
      const double x = i == points - 1 ? 1.0 : i * (1.0 / (points - 1));
      std::size_t j = 0;
      while (j + 1 < xs.size() && xs[j + 1] <= x) ++j;
      const double y = (j + 1 == xs.size() || xs[j] == x)
                           ? ys[j]
                           : (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]) * (x - xs[j]) + ys[j];
      sigmas[static_cast<std::size_t>(points - 1 - i)] = std::exp(y);
    }
  }
  const int total = denoise < 1.0 ? static_cast<int>(std::nearbyint(steps * denoise)) : steps;
  detail::require(total >= 1, "denoise", denoise, "leaves no step (round(steps · denoise) = 0)");
  sigmas.erase(sigmas.begin(), sigmas.end() - (total + 1));
  sigmas.back() = 0.0;
  return SigmaGrid(std::move(sigmas));
}

}  // namespace scoreflow
