#pragma once
// DEIS (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential Integrator",
// ICLR 2023, arXiv:2204.13902), the multistep tAB-DEIS in the variant diffusers implements
// (DEISMultistepScheduler, algorithm_type="deis", solver_type="logrho"):
//
// In x̃ = x/α and ρ = σ/α the probability-flow ODE is dx̃/dρ = ε̂ (the DDIM ODE), so
//   x_t = α_t (x_s/α_s + ∫_{ρ_s}^{ρ_t} ε̂(ρ) dρ),
// and tAB-DEIS replaces ε̂ by the Lagrange polynomial through the last p answers ε̂_j — here in
// log ρ ("logrho"): the integrals of the basis polynomials ℓ_j(log ρ) have closed forms
// (diffusers' ind_fn), C_j = F_j(ρ_t) − F_j(ρ_s).
//   p = 1: x_t = α_t x̂_s + σ_t ε̂_s (DDIM);
//   p = 2: F(τ; b, c) = τ (log τ − log c − 1)/(log b − log c)        (basis 1 at b, 0 at c);
//   p = 3: F(τ; b, c, d) = τ (L_c (L_d − L_τ + 1) − L_d L_τ + L_d + L_τ² − 2 L_τ + 2)
//                          / ((L_b − L_c)(L_b − L_d)),  L = log.
// The order rule is diffusers' (warm-up from the history; with lower_order_final on grids of
// < 15 steps order 1 on the last step and ≤ 2 on the one before).
//
// Limits (diffusers' DEIS grids never reach them: they end at the σ of timestep 0):
//   - a step to clean data has ρ_t = 0; τ log^k τ → 0, so F(0) = 0 and the step is finite at any
//     order (the integrand is a polynomial in log ρ, integrable down to ρ = 0);
//   - a step from pure noise (α = 0, ρ = ∞) is the first step, first order, written as DDIM;
//     answers at pure noise are not extrapolated from (their basis integrals vanish as ρ → ∞).
#include <cmath>
#include <cstddef>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/solver/dpm_solver.hpp"
#include "scoreflow/solver/history.hpp"
#include "scoreflow/solver/path.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

namespace detail {
/// ∫ ℓ(log τ) dτ for the linear Lagrange basis in log ρ through b (1) and c (0); 0 at τ = 0.
inline double deis_basis_integral(double tau, double log_b, double log_c) {
  if (tau == 0.0) return 0.0;
  const double l = std::log(tau);
  return tau * (l - log_c - 1.0) / (log_b - log_c);
}
/// ∫ ℓ(log τ) dτ for the quadratic Lagrange basis in log ρ through b (1), c and d (0); 0 at τ = 0.
inline double deis_basis_integral(double tau, double log_b, double log_c, double log_d) {
  if (tau == 0.0) return 0.0;
  const double l = std::log(tau);
  const double numerator = tau * (log_c * (log_d - l + 1.0) - log_d * l + log_d + l * l - 2.0 * l + 2.0);
  return numerator / ((log_b - log_c) * (log_b - log_d));
}
}  // namespace detail

/// Multistep tAB-DEIS (log-ρ), orders 1–3. One model call per step.
struct DEIS {
  int order = 2;                  ///< 1, 2 or 3
  bool lower_order_final = true;  ///< on grids of < 15 steps: order 1 on the last step, ≤ 2 on the one before

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& /*gen*/) const {
    detail::require(order >= 1 && order <= 3, "deis.order", order, "must be 1, 2 or 3");
    T m0 = detail::data_at(path, predict, x, i);  // moved into the history once the update has read it
    const auto earlier = detail::earlier_answers(history, i, path, static_cast<std::size_t>(order - 1));
    const NoiseLevel s0 = path.level(i), t = path.level(i + 1);
    const int p = detail::multistep_order(order, earlier.size(), i, path.size(), lower_order_final, false, false);
    T next = [&] {
      const T eps0 = detail::noise_estimate(x, m0, s0);
      if (p == 1) return ops::axpby(t.alpha, m0, t.sigma, eps0);
      // ρ = σ/α and its logarithm at each point (ρ_t = 0 at clean data: F(0) = 0 above).
      const double rho_t = t.sigma / t.alpha, rho_0 = s0.sigma / s0.alpha;
      const NoiseLevel s1 = path.level(earlier[0]->index);
      const T eps1 = detail::noise_estimate(detail::sample_of(*earlier[0], "deis"), earlier[0]->data, s1);
      const double log_0 = std::log(rho_0), log_1 = std::log(s1.sigma / s1.alpha);
      // x_t = α_t (x/α_s0 + Σ_j C_j ε̂_j)
      if (p == 2) {
        const auto c = [&](double b, double cc) {
          return detail::deis_basis_integral(rho_t, b, cc) - detail::deis_basis_integral(rho_0, b, cc);
        };
        const double c0 = c(log_0, log_1), c1 = c(log_1, log_0);
        return ops::axpbypcz(t.alpha / s0.alpha, x, t.alpha * c0, eps0, t.alpha * c1, eps1);
      }
      const NoiseLevel s2 = path.level(earlier[1]->index);
      const T eps2 = detail::noise_estimate(detail::sample_of(*earlier[1], "deis"), earlier[1]->data, s2);
      const double log_2 = std::log(s2.sigma / s2.alpha);
      const auto c = [&](double b, double cc, double d) {
        return detail::deis_basis_integral(rho_t, b, cc, d) - detail::deis_basis_integral(rho_0, b, cc, d);
      };
      const double c0 = c(log_0, log_1, log_2), c1 = c(log_1, log_2, log_0), c2 = c(log_2, log_0, log_1);
      const T out = ops::axpbypcz(t.alpha / s0.alpha, x, t.alpha * c0, eps0, t.alpha * c1, eps1);
      return ops::axpby(1.0, out, t.alpha * c2, eps2);
    }();
    history.record(i, x, std::move(m0), static_cast<std::size_t>(order));
    return next;
  }
};

}  // namespace scoreflow
