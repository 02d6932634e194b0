#pragma once
// The k-diffusion sampler family (Crowson's k_diffusion/sampling.py) as PathRules
// (solver/path.hpp), so they run on every SolverPath: a SigmaSchedule, a DiffusionSchedule and a
// FlowSchedule.
//
// k-diffusion integrates the probability-flow ODE of Karras et al. 2022 ("EDM", eq. 1 with the
// score of eq. 3, σ(t) = t) in the variance-exploding coordinates
//   x̃ = x/α,  σ̃ = σ/α  (NoiseLevel::ve_sigma):  dx̃/dσ̃ = (x̃ − D(x̃, σ̃))/σ̃,
// where D = x̂ is the data estimate (k-diffusion's `to_d`). In EDM's eq. 4, α is the scale s(t)
// and σ̃ the noise level σ(t): every path x = α·data + σ·ε is the VE path of x/α. The rules
// below take k-diffusion's steps in these coordinates and map back with x = α x̃. On a
// SigmaSchedule (α = 1) they are k_diffusion.sampling's samplers; on a diffusion or flow path they
// are the same methods on the equivalent VE path. tests/core/solver/test_k_diffusion.cpp checks
// every step against k-diffusion's own outputs and the equivalence on both other paths.
//
// Two forms used throughout:
//   - the derivative d = (x̃ − D)/σ̃ equals the noise estimate ε̂ = (x − αD)/σ, finite wherever
//     σ > 0 (also at α = 0);
//   - an Euler step from σ̃ to any σ̃_to is x̃ + (σ̃_to − σ̃) d = D + σ̃_to d, since x̃ − σ̃ d = D.
//     Mapped back to the path: x_to = α_to D + σ_to ε̂ — DDIM (Song et al. 2021, eq. 12 with
//     σ = 0), the first-order limit.
// At a point with α = 0 (flow t = 0, a zero-terminal-SNR table's last entry) σ̃ = ∞ and x̃ is
// undefined. Every rule then takes that first-order limit, x' = (σ'/σ) x + (α' − α σ'/σ) x̂
// (= α' x̂ + σ' ε̂), which is finite; KEulerAncestral keeps its noise term (the limit of its own
// formula: σ_up = min(1, η) σ̃'), KHeun applies no churn there. No step divides by σ = 0: a last
// step to clean data is the Euler step to σ̃ = 0, i.e. x' = α' x̂, as k-diffusion does.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/solver/history.hpp"
#include "scoreflow/solver/noise_source.hpp"
#include "scoreflow/solver/path.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

namespace detail {
/// x̃ = x/α (α > 0).
template <Tensor T>
T to_ve(const T& x, NoiseLevel l) {
  return ops::scale(1.0 / l.alpha, x);
}

/// k-diffusion's `to_d` in VE coordinates: d = (x̃ − D)/σ̃ (σ̃ > 0).
template <Tensor T>
T ve_derivative(const T& x_ve, const T& data, double sigma_ve) {
  return ops::axpby(1.0 / sigma_ve, x_ve, -1.0 / sigma_ve, data);
}

/// The Euler step of the VE ODE to σ̃_to, in the form that stays finite at σ̃ = ∞: D + σ̃_to d.
template <Tensor T>
T ve_euler(const T& data, const T& d, double sigma_to) {
  return ops::axpby(1.0, data, sigma_to, d);
}

/// The first-order step from grid point i to i + 1 on the path, x' = α' x̂ + σ' ε̂ (the Euler step
/// of the VE ODE mapped back; DDIM). Defined at α = 0 and at σ' = 0.
template <Tensor T>
T first_order_step(const T& x, const T& data, NoiseLevel from, NoiseLevel to) {
  if (to.is_clean()) return ops::scale(to.alpha, data);
  return ops::axpby(to.alpha, data, to.sigma, noise_estimate(x, data, from));
}

/// ∫ ℓ_j(τ) dτ over [a, b] for the Lagrange basis ℓ_j on `nodes` (j = 0 … n − 1), exactly: with
/// τ = a + (b − a) s the basis is a polynomial in s of degree n − 1, expanded into monomials and
/// integrated over s ∈ [0, 1] term by term (Σ c_m/(m + 1)). For k-diffusion's LMS the nodes lie
/// on the far side of a from b, so every monomial coefficient has the same sign: no cancellation.
inline std::vector<double> lagrange_integrals(const std::vector<double>& nodes, double a, double b) {
  const std::size_t n = nodes.size();
  const double h = b - a;
  std::vector<double> s(n), out(n);
  for (std::size_t k = 0; k < n; ++k) s[k] = (nodes[k] - a) / h;
  for (std::size_t j = 0; j < n; ++j) {
    std::vector<double> poly{1.0};  // coefficients of Π_{k≠j} (s − s_k), lowest degree first
    double denominator = 1.0;
    for (std::size_t k = 0; k < n; ++k) {
      if (k == j) continue;
      std::vector<double> next(poly.size() + 1, 0.0);
      for (std::size_t m = 0; m < poly.size(); ++m) {
        next[m + 1] += poly[m];
        next[m] -= s[k] * poly[m];
      }
      poly = std::move(next);
      denominator *= s[j] - s[k];
    }
    double integral = 0.0;
    for (std::size_t m = 0; m < poly.size(); ++m) integral += poly[m] / static_cast<double>(m + 1);
    out[j] = h * integral / denominator;
  }
  return out;
}
}  // namespace detail

/// k-diffusion's sample_euler without churn (Karras et al. 2022, Alg. 2 with γ = 0 and Euler steps):
/// x̃' = x̃ + (σ̃' − σ̃) d. One model call per step. On any path this is DDIM (module comment).
struct KEuler {
  static constexpr int calls_per_step = 1;

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& /*gen*/) const {
    const NoiseLevel from = path.level(i), to = path.level(i + 1);
    T data = detail::data_at(path, predict, x, i);
    T next = detail::first_order_step(x, data, from, to);
    history.record(i, std::move(data), 1);
    return next;
  }
};

/// k-diffusion's sample_euler_ancestral (get_ancestral_step): an Euler step down to
///   σ_down = √(σ̃'² − σ_up²),  σ_up = min(σ̃', η σ̃' √(1 − σ̃'²/σ̃²)),
/// then fresh noise of std σ_up · s_noise, so x̃' has the variance of the level σ̃' (Song et al.
/// 2021, "DDIM", eq. 16 in VE form: η = 1 is ancestral sampling, η = 0 the ODE). No noise on a
/// step to σ' = 0. Each noise draw is noise(x, i, gen), keyed by the grid index i the step
/// leaves, so RecordedNoise reproduces a k-diffusion run given its noise_sampler's tensors.
template <class Noise = DrawnNoise>
struct KEulerAncestral {
  static constexpr int calls_per_step = 1;
  double eta = 1.0;
  double s_noise = 1.0;
  Noise noise{};

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& gen) const {
    detail::require(std::isfinite(eta) && eta >= 0.0, "k_euler_ancestral.eta", eta, "must be finite and non-negative");
    detail::require(std::isfinite(s_noise) && s_noise >= 0.0, "k_euler_ancestral.s_noise", s_noise,
                    "must be finite and non-negative");
    const NoiseLevel from = path.level(i), to = path.level(i + 1);
    const double sigma = from.ve_sigma(), sigma_next = to.ve_sigma();
    // σ̃'/σ̃ = 0 at α = 0 (σ̃ = ∞): the limit of k-diffusion's √(σ̃'²(σ̃² − σ̃'²)/σ̃²) is σ̃'.
    const double ratio = sigma_next / sigma;
    const double sigma_up =
        eta == 0.0 ? 0.0 : std::min(sigma_next, eta * sigma_next * std::sqrt(std::max(1.0 - ratio * ratio, 0.0)));
    const double sigma_down = std::sqrt(std::max(sigma_next * sigma_next - sigma_up * sigma_up, 0.0));
    T data = detail::data_at(path, predict, x, i);
    const T d = detail::noise_estimate(x, data, from);  // = (x̃ − D)/σ̃
    T next = ops::scale(to.alpha, detail::ve_euler(data, d, sigma_down));
    history.record(i, std::move(data), 1);
    if (sigma_next > 0.0 && sigma_up > 0.0)
      next = ops::axpby(1.0, next, to.alpha * s_noise * sigma_up, noise(x, i, gen));
    return next;
  }
};

/// Karras et al. 2022, Alg. 2 (k-diffusion's sample_heun): optional churn, then Heun's method in
/// σ̃; the step to σ' = 0 is an Euler step (Alg. 2, line 8). Churn: where s_tmin ≤ σ̃_i ≤ s_tmax,
///   γ = min(s_churn/N, √2 − 1)  (N = grid points − 1, the run's step count, as k-diffusion),
///   σ̂ = σ̃_i (1 + γ),  x̃̂ = x̃ + s_noise √(σ̂² − σ̃_i²) z,  z = noise(x, i, gen),
/// and the model is asked at σ̂, between grid points: s_churn > 0 needs a ContinuousPath
/// (SigmaSchedule, FlowSchedule). Two model calls per step (one on the last).
template <class Noise = DrawnNoise>
struct KHeun {
  static constexpr int calls_per_step = 2;
  double s_churn = 0.0;
  double s_tmin = 0.0;
  double s_tmax = std::numeric_limits<double>::infinity();
  double s_noise = 1.0;
  Noise noise{};

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& gen) const {
    detail::require(std::isfinite(s_churn) && s_churn >= 0.0, "k_heun.s_churn", s_churn,
                    "must be finite and non-negative");
    detail::require(std::isfinite(s_tmin) && s_tmin >= 0.0, "k_heun.s_tmin", s_tmin, "must be finite and non-negative");
    detail::require(!std::isnan(s_tmax) && s_tmax >= s_tmin, "k_heun.s_tmax", s_tmax, "must be at least s_tmin");
    detail::require(std::isfinite(s_noise) && s_noise >= 0.0, "k_heun.s_noise", s_noise,
                    "must be finite and non-negative");
    if constexpr (!ContinuousPath<Path, T>) {
      detail::require(s_churn == 0.0, "k_heun.s_churn", s_churn,
                      "churn asks the model at σ̂ between grid points; a DiffusionSchedule's model takes integer "
                      "timesteps (use s_churn = 0, or a SigmaSchedule / FlowSchedule)");
    }
    const NoiseLevel from = path.level(i), to = path.level(i + 1);
    if (from.is_pure_noise()) {  // σ̃ = ∞: the first-order limit, no churn (module comment)
      T data = detail::data_at(path, predict, x, i);
      T next = detail::first_order_step(x, data, from, to);
      history.record(i, std::move(data), 1);
      return next;
    }
    const double sigma = from.ve_sigma();
    const double steps = static_cast<double>(path.size() - 1);
    const double gamma =
        s_churn > 0.0 && s_tmin <= sigma && sigma <= s_tmax ? std::min(s_churn / steps, std::sqrt(2.0) - 1.0) : 0.0;
    if constexpr (ContinuousPath<Path, T>) {
      if (gamma > 0.0) {
        const double sigma_hat = sigma * (gamma + 1.0);
        const T x_hat = ops::axpby(1.0 / from.alpha, x, s_noise * std::sqrt(sigma_hat * sigma_hat - sigma * sigma),
                                   noise(x, i, gen));
        const NoiseLevel hat = path.level_at_lambda(-std::log(sigma_hat));  // λ = −log σ̃
        T data = detail::data_at_level(path, predict, ops::scale(hat.alpha, x_hat), hat);
        // The history keeps the step's first answer (at σ̂, as k-diffusion's callback reports
        // 'denoised').
        history.record(i, data, 1);
        return heun(x_hat, sigma_hat, data, i, path, predict);
      }
    }
    T data = detail::data_at(path, predict, x, i);
    history.record(i, data, 1);
    return heun(detail::to_ve(x, from), sigma, data, i, path, predict);
  }

 private:
  /// Alg. 2 lines 6–10 from (x̃̂, σ̂) with D = D(x̃̂, σ̂): Euler to σ̃', then the trapezoidal correction.
  template <Tensor T, class Path, class Predict>
  static T heun(const T& x_ve, double sigma_hat, const T& data, std::size_t i, const Path& path, Predict& predict) {
    const NoiseLevel to = path.level(i + 1);
    const double sigma_next = to.ve_sigma();
    const T d = detail::ve_derivative(x_ve, data, sigma_hat);
    const T euler = detail::ve_euler(data, d, sigma_next);  // x̃̂ + (σ̃' − σ̂) d
    if (to.is_clean()) return ops::scale(to.alpha, euler);
    const T data_next = detail::data_at(path, predict, ops::scale(to.alpha, euler), i + 1);
    const T d_next = detail::ve_derivative(euler, data_next, sigma_next);
    const double dt = sigma_next - sigma_hat;
    return ops::axpby(to.alpha, x_ve, to.alpha * 0.5 * dt, ops::add(d, d_next));
  }
};

/// k-diffusion's sample_dpm_2 ("inspired by DPM-Solver-2", Lu et al. 2022, Alg. 1 with r = ½, and
/// Karras et al. 2022, Alg. 2): an Euler half-step to σ_mid = exp(mean(log σ̃, log σ̃')), the
/// derivative there, and the full step with it: x̃' = x̃ + (σ̃' − σ̃) d(x̃_mid, σ_mid). The step to
/// σ' = 0 is an Euler step. Two model calls per step (one on the last). σ_mid lies between grid
/// points, so KDPM2 needs a ContinuousPath.
struct KDPM2 {
  static constexpr int calls_per_step = 2;

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& /*gen*/) const {
    static_assert(ContinuousPath<Path, T>,
                  "KDPM2 evaluates the model at sigma_mid = exp(mean(log sigma_i, log sigma_i+1)), between grid "
                  "points: it needs a ContinuousPath (SigmaSchedule, FlowSchedule); a DiffusionSchedule's model "
                  "takes integer timesteps");
    if constexpr (ContinuousPath<Path, T>)
      return step(x, i, path, predict, history);
    else
      return x;  // not reached: the static_assert above stops the compilation
  }

 private:
  template <Tensor T, class Path, class Predict>
  static T step(const T& x, std::size_t i, const Path& path, Predict& predict, SolverHistory<T>& history) {
    const NoiseLevel from = path.level(i), to = path.level(i + 1);
    T data = detail::data_at(path, predict, x, i);
    if (from.is_pure_noise() || to.is_clean()) {
      T next = detail::first_order_step(x, data, from, to);
      history.record(i, std::move(data), 1);
      return next;
    }
    const double sigma = from.ve_sigma(), sigma_next = to.ve_sigma();
    const NoiseLevel mid = path.level_at_lambda(0.5 * (-std::log(sigma) - std::log(sigma_next)));
    const double sigma_mid = mid.ve_sigma();
    const T x_ve = detail::to_ve(x, from);
    const T d = detail::ve_derivative(x_ve, data, sigma);
    const T x_mid = detail::ve_euler(data, d, sigma_mid);  // x̃ + (σ_mid − σ̃) d
    history.record(i, std::move(data), 1);
    const T data_mid = detail::data_at_level(path, predict, ops::scale(mid.alpha, x_mid), mid);
    const T d_mid = detail::ve_derivative(x_mid, data_mid, sigma_mid);
    return ops::axpby(to.alpha, x_ve, to.alpha * (sigma_next - sigma), d_mid);
  }
};

/// k-diffusion's sample_lms: the linear multistep method on dx̃/dσ̃ = d, Adams–Bashforth on the
/// non-uniform σ̃ grid (Hairer, Nørsett & Wanner I, §III.5, variable step sizes):
///   x̃' = x̃ + Σ_j c_j d_{i−j},  c_j = ∫_{σ̃_i}^{σ̃_{i+1}} ℓ_j(σ) dσ,
/// ℓ_j the Lagrange basis on the σ̃ of the current and `order − 1` earlier points. The integrals
/// are exact (detail::lagrange_integrals), where k-diffusion calls scipy's quad (epsrel 1e-4; exact
/// to rounding for these polynomials). The earlier points' x and x̂ come from the loop's
/// SolverHistory, so the warm-up (lower order while fewer are known) needs no counter; a history
/// point at α = 0 (σ̃ = ∞) is not used, and a step from α = 0 is the first-order limit.
struct KLMS {
  static constexpr int calls_per_step = 1;
  int order = 4;

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& /*gen*/) const {
    detail::require(order >= 1, "k_lms.order", order, "must be at least 1");
    const NoiseLevel from = path.level(i), to = path.level(i + 1);
    T data = detail::data_at(path, predict, x, i);
    if (from.is_pure_noise()) {
      T next = detail::first_order_step(x, data, from, to);
      history.record(i, x, std::move(data), static_cast<std::size_t>(order));
      return next;
    }
    history.record(i, x, std::move(data), static_cast<std::size_t>(order));
    // Nodes: the current point, then earlier points (newest first) while they lie behind i on the
    // path at a finite σ̃.
    std::vector<double> nodes{from.ve_sigma()};
    std::vector<T> derivatives{detail::noise_estimate(x, history.back().data, from)};
    for (std::size_t k = 1; k < history.size() && nodes.size() < static_cast<std::size_t>(order); ++k) {
      const auto& e = history.back(k);
      const NoiseLevel l = path.level(e.index);
      if (e.index >= history.back(k - 1).index || !e.x || l.is_pure_noise() || l.is_clean()) break;
      nodes.push_back(l.ve_sigma());
      derivatives.push_back(detail::noise_estimate(history.x_at(k), e.data, l));
    }
    const std::vector<double> c = detail::lagrange_integrals(nodes, from.ve_sigma(), to.ve_sigma());
    T next = ops::scale(to.alpha, detail::to_ve(x, from));
    for (std::size_t j = 0; j < c.size(); ++j) next = ops::axpby(1.0, next, to.alpha * c[j], derivatives[j]);
    return next;
  }
};

/// k-diffusion's sample_dpmpp_2m: DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2) in
/// its t = −log σ̃ form, t = λ of the path:
///   h = λ' − λ,  x̃' = (σ̃'/σ̃) x̃ − (e^{−h} − 1) D_d,
///   D_d = (1 + 1/(2r)) D − 1/(2r) D_prev,  r = (λ − λ_prev)/h,
/// first order (D_d = D) at the first step (no earlier point in the history) and on the step to
/// σ' = 0. Mapped back, x' = (σ'/σ) x − α' (e^{−h} − 1) D_d, finite at α = 0 (h = ∞) and σ' = 0.
struct KDPMPP2M {
  static constexpr int calls_per_step = 1;

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& /*gen*/) const {
    const NoiseLevel from = path.level(i), to = path.level(i + 1);
    history.record(i, detail::data_at(path, predict, x, i), 2);
    const T& data = history.back().data;
    if (to.is_clean()) return ops::scale(to.alpha, data);
    const double lambda = from.lambda(), lambda_next = to.lambda();
    const double h = lambda_next - lambda;
    const double coef_data = -to.alpha * std::expm1(-h);
    const double coef_x = to.sigma / from.sigma;
    if (history.size() >= 2 && !from.is_pure_noise()) {
      const auto& prev = history.back(1);
      const NoiseLevel lp = path.level(prev.index);
      if (prev.index < i && !lp.is_pure_noise()) {
        const double r = (lambda - lp.lambda()) / h;
        const T corrected = ops::axpby(1.0 + 1.0 / (2.0 * r), data, -1.0 / (2.0 * r), prev.data);
        return ops::axpby(coef_x, x, coef_data, corrected);
      }
    }
    return ops::axpby(coef_x, x, coef_data, data);
  }
};

}  // namespace scoreflow
