#pragma once
// Closed-form denoisers (README, Design, "Closed-form references"): their optimum is known, so a
// sampler driven by them must reproduce the data distribution.
#include <cmath>
#include <vector>

#include "scoreflow/core.hpp"

namespace sftest {

/// Per-sample mean from a condition tensor holding one value per sample (any shape [B, ...]);
/// NoCondition means the fixed `mu`.
template <class T>
std::vector<double> per_sample_means(const T& cond, std::size_t batch) {
  auto v = scoreflow::ops::to_vector(cond);
  std::vector<double> out(batch);
  const std::size_t per = v.size() / batch;
  for (std::size_t b = 0; b < batch; ++b) out[b] = v[b * per];
  return out;
}

/// Data N(μ, s² I) under diffusion: E[x₀ | x_t] = μ + √ā s² / (ā s² + 1 − ā) (x_t − √ā μ),
/// answered as the noise ε̂ = (x_t − √ā E[x₀|x_t]) / √(1 − ā).
struct GaussianDiffusion {
  scoreflow::NoiseSchedule table;
  double mu, s;
  int* calls = nullptr;

  template <class T>
  T answer(const T& x, scoreflow::Timestep t, const std::vector<double>& means) const {
    if (calls) ++*calls;
    const double a = table.alpha_bar(t.value);
    auto v = scoreflow::ops::to_vector(x);
    const auto shape = scoreflow::ops::shape(x);
    const std::size_t per = v.size() / static_cast<std::size_t>(shape[0]);
    const double k = std::sqrt(a) * s * s / (a * s * s + 1.0 - a);
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double m = means[i / per];
      const double x0 = m + k * (v[i] - std::sqrt(a) * m);
      v[i] = (v[i] - std::sqrt(a) * x0) / std::sqrt(1.0 - a);
    }
    return scoreflow::ops::from_vector(v, shape, x);
  }
  template <class T>
  T operator()(const T& x, scoreflow::Timestep t, scoreflow::NoCondition) const {
    return answer(x, t, std::vector<double>(static_cast<std::size_t>(scoreflow::ops::batch_size(x)), mu));
  }
  template <class T>
  T operator()(const T& x, scoreflow::Timestep t, const T& cond) const {
    return answer(x, t, per_sample_means(cond, static_cast<std::size_t>(scoreflow::ops::batch_size(x))));
  }
};

/// Data N(μ, s² I) under the seed's flow x_t = (1 − t) x₀ + t x₁: the exact velocity
/// u = (E[x₁|x] − x)/(1 − t) = (μ(1 − t) + x(t s² − 1 + t)) / ((1 − t)² + t² s²), written in the
/// form that stays finite at t = 1.
struct GaussianFlow {
  double mu, s;
  int* calls = nullptr;

  template <class T>
  T answer(const T& x, scoreflow::FlowTime time, const std::vector<double>& means) const {
    if (calls) ++*calls;
    const double t = time.value;
    auto v = scoreflow::ops::to_vector(x);
    const auto shape = scoreflow::ops::shape(x);
    const std::size_t per = v.size() / static_cast<std::size_t>(shape[0]);
    const double d = (1 - t) * (1 - t) + t * t * s * s;
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = (means[i / per] * (1 - t) + v[i] * (t * s * s - 1 + t)) / d;
    return scoreflow::ops::from_vector(v, shape, x);
  }
  template <class T>
  T operator()(const T& x, scoreflow::FlowTime t, scoreflow::NoCondition) const {
    return answer(x, t, std::vector<double>(static_cast<std::size_t>(scoreflow::ops::batch_size(x)), mu));
  }
  template <class T>
  T operator()(const T& x, scoreflow::FlowTime t, const T& cond) const {
    return answer(x, t, per_sample_means(cond, static_cast<std::size_t>(scoreflow::ops::batch_size(x))));
  }
};

/// A finite data set {x_k}: E[data | x] = Σ_k w_k x_k with softmax weights; answered as a clean-
/// data prediction (Parameterization::sample) for both diffusion and flow.
struct FiniteSet {
  std::vector<std::vector<double>> points;  // each of size C·H·W
  scoreflow::NoiseSchedule table = scoreflow::NoiseSchedule::cosine();

  template <class T>
  T posterior_mean(const T& x, double scale, double variance) const {
    auto v = scoreflow::ops::to_vector(x);
    const auto shape = scoreflow::ops::shape(x);
    const std::size_t d = points.at(0).size();
    std::vector<double> out(v.size());
    for (std::size_t b = 0; b * d < v.size(); ++b) {
      std::vector<double> logw(points.size());
      double best = -1e300;
      for (std::size_t k = 0; k < points.size(); ++k) {
        double dist = 0;
        for (std::size_t j = 0; j < d; ++j) {
          const double diff = v[b * d + j] - scale * points[k][j];
          dist += diff * diff;
        }
        logw[k] = -dist / (2 * variance);
        best = std::max(best, logw[k]);
      }
      double z = 0;
      for (auto& w : logw) z += (w = std::exp(w - best));
      for (std::size_t j = 0; j < d; ++j) {
        double m = 0;
        for (std::size_t k = 0; k < points.size(); ++k) m += logw[k] / z * points[k][j];
        out[b * d + j] = m;
      }
    }
    return scoreflow::ops::from_vector(out, shape, x);
  }
  template <class T>
  T operator()(const T& x, scoreflow::Timestep t, scoreflow::NoCondition) const {
    const double a = table.alpha_bar(t.value);
    return posterior_mean(x, std::sqrt(a), 1 - a);
  }
  template <class T>
  T operator()(const T& x, scoreflow::FlowTime t, scoreflow::NoCondition) const {
    return posterior_mean(x, t.value, (1 - t.value) * (1 - t.value));
  }

  /// Distance from each sample to its nearest data point.
  template <class T>
  std::vector<double> nearest_distances(const T& x) const {
    auto v = scoreflow::ops::to_vector(x);
    const std::size_t d = points.at(0).size();
    std::vector<double> out;
    for (std::size_t b = 0; b * d < v.size(); ++b) {
      double best = 1e300;
      for (const auto& p : points) {
        double dist = 0;
        for (std::size_t j = 0; j < d; ++j) dist += (v[b * d + j] - p[j]) * (v[b * d + j] - p[j]);
        best = std::min(best, std::sqrt(dist));
      }
      out.push_back(best);
    }
    return out;
  }
};

struct Moments {
  double mean, variance;
};
template <class T>
Moments moments(const T& x) {
  auto v = scoreflow::ops::to_vector(x);
  double m = 0, q = 0;
  for (double e : v) m += e;
  m /= static_cast<double>(v.size());
  for (double e : v) q += (e - m) * (e - m);
  return {m, q / static_cast<double>(v.size() - 1)};
}

}  // namespace sftest

namespace sftest {

/// Data N(μ, s² I) with a per-element mean image μ, given as the condition (a tensor of x's shape,
/// batch included: one mean image per sample). Pixelwise it is GaussianDiffusion / GaussianFlow
/// with μ[i] at element i, so it is the exact denoiser of N(μ, s² I) for any mean image; combiners
/// that mix several of these (anagram views, factorized filters) therefore have closed forms too.
///   diffusion: x̂₀ = μ + k (x_t − √ā μ), k = √ā s² / (ā s² + 1 − ā), answered as ε̂ (noise);
///   flow:      u = (μ(1 − t) + x(t s² − 1 + t)) / ((1 − t)² + t² s²)             (velocity).
struct GaussianField {
  scoreflow::NoiseSchedule table;
  double s;
  int* calls = nullptr;

  template <class T>
  T operator()(const T& x, scoreflow::Timestep t, const T& mean) const {
    if (calls) ++*calls;
    const double a = table.alpha_bar(t.value);
    const double k = std::sqrt(a) * s * s / (a * s * s + 1.0 - a);
    auto v = scoreflow::ops::to_vector(x);
    const auto m = scoreflow::ops::to_vector(mean);
    if (m.size() != v.size()) throw scoreflow::shape_error("GaussianField: the mean image must have x's shape");
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double x0 = m[i] + k * (v[i] - std::sqrt(a) * m[i]);
      v[i] = (v[i] - std::sqrt(a) * x0) / std::sqrt(1.0 - a);
    }
    return scoreflow::ops::from_vector(v, scoreflow::ops::shape(x), x);
  }
  template <class T>
  T operator()(const T& x, scoreflow::FlowTime time, const T& mean) const {
    if (calls) ++*calls;
    const double t = time.value;
    const double d = (1 - t) * (1 - t) + t * t * s * s;
    auto v = scoreflow::ops::to_vector(x);
    const auto m = scoreflow::ops::to_vector(mean);
    if (m.size() != v.size()) throw scoreflow::shape_error("GaussianField: the mean image must have x's shape");
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = (m[i] * (1 - t) + v[i] * (t * s * s - 1 + t)) / d;
    return scoreflow::ops::from_vector(v, scoreflow::ops::shape(x), x);
  }
};

/// Exact moments of one coordinate of x under the step rules, for data N(μ, s²) and the exact
/// denoiser. Every rule below is affine in x plus independent Gaussian noise,
///   x' = A x + B + σ z,  so  mean' = A mean + B,  variance' = A² variance + σ²,
/// and a Gaussian start stays Gaussian: the moments after any number of steps are exact (no
/// sampling, no discretisation assumption). Written from the papers, not from the library's code;
/// only the ᾱ values come from the library's NoiseSchedule.
namespace exact {

/// The slope of E[x₀ | x_t] = μ + k (x_t − √ā μ) for data N(μ, s²).
inline double posterior_slope(double a, double s) { return std::sqrt(a) * s * s / (a * s * s + 1.0 - a); }

/// A DDPM step t → t' (ᾱ = a, ᾱ' = a_prev), Ho et al. 2020, eq. 7 (the posterior q(x_t' | x_t, x₀)
/// evaluated at x̂₀), with the step's own α = ā/ā', β = 1 − α (strided grids, seed §1.4):
///   x_t' = √ā' β/(1 − ā) x̂₀ + √α (1 − ā')/(1 − ā) x_t + σ z,  σ² = `noise_variance`.
inline Moments ddpm_step(Moments in, double a, double a_prev, double noise_variance, double mu, double s) {
  const double alpha = a / a_prev, beta = 1.0 - alpha, k = posterior_slope(a, s);
  const double c_x0 = std::sqrt(a_prev) * beta / (1.0 - a), c_xt = std::sqrt(alpha) * (1.0 - a_prev) / (1.0 - a);
  // x̂₀ = μ(1 − k√ā) + k x_t
  const double A = c_x0 * k + c_xt, B = c_x0 * mu * (1.0 - k * std::sqrt(a));
  return {A * in.mean + B, A * A * in.variance + noise_variance};
}
/// β̃ = (1 − ā')/(1 − ā) β (Ho et al. eq. 7): the "fixed small" variance; β is "fixed large" (§3.2).
inline double beta_tilde(double a, double a_prev) { return (1.0 - a_prev) / (1.0 - a) * (1.0 - a / a_prev); }
inline double beta(double a, double a_prev) { return 1.0 - a / a_prev; }

/// A DDIM step (Song et al. 2021, eq. 12, σ from eq. 16 scaled by η):
///   x_t' = √ā' x̂₀ + √(1 − ā' − σ²) ε̂ + σ z,  ε̂ = (x_t − √ā x̂₀)/√(1 − ā),
///   σ = η √((1 − ā')/(1 − ā)) √(1 − ā/ā').
inline Moments ddim_step(Moments in, double a, double a_prev, double eta, double mu, double s) {
  const double k = posterior_slope(a, s), p = mu * (1.0 - k * std::sqrt(a));  // x̂₀ = p + k x_t
  const double sigma2 = eta * eta * beta_tilde(a, a_prev);
  const double dir = std::sqrt(std::max(1.0 - a_prev - sigma2, 0.0));
  // ε̂ = ((1 − √ā k) x_t − √ā p)/√(1 − ā)
  const double A = std::sqrt(a_prev) * k + dir * (1.0 - std::sqrt(a) * k) / std::sqrt(1.0 - a);
  const double B = std::sqrt(a_prev) * p - dir * std::sqrt(a) * p / std::sqrt(1.0 - a);
  return {A * in.mean + B, A * A * in.variance + sigma2};
}

/// Re-noising to a noisier point (RePaint, Lugmayr et al. 2022, eq. 8 between grid points):
///   x_to = √(ā_to/ā_from) x_from + √(1 − ā_to/ā_from) z.
inline Moments renoise(Moments in, double a_from, double a_to) {
  const double r = a_to / a_from;
  return {std::sqrt(r) * in.mean, r * in.variance + 1.0 - r};
}

/// One Heun step t → t + h of the flow ODE dx/dt = u (seed Part B; the exact Gaussian velocity
/// u = α(t) x + β(t) μ, α = (t s² − 1 + t)/d, β = (1 − t)/d, d = (1 − t)² + t² s²):
///   x_e = x + h u(x, t),  x' = x + h/2 (u(x, t) + u(x_e, t + h)),  or x' = x_e when `euler`.
inline Moments heun_step(Moments in, double t, double t_next, bool euler, double mu, double s) {
  const auto slope = [s](double u) { return (u * s * s - 1 + u) / ((1 - u) * (1 - u) + u * u * s * s); };
  const auto drift = [s](double u) { return (1 - u) / ((1 - u) * (1 - u) + u * u * s * s); };
  const double h = t_next - t, a0 = slope(t), b0 = drift(t);
  double A = 1 + h * a0, B = h * b0 * mu;  // the Euler predictor x_e = A x + B
  if (!euler) {
    const double a1 = slope(t_next), b1 = drift(t_next);
    B = 0.5 * h * (b0 * mu + a1 * B + b1 * mu);
    A = 1 + 0.5 * h * (a0 + a1 * A);
  }
  return {A * in.mean + B, A * A * in.variance};
}

/// The probability-flow ODE's exact solution for data N(μ, s²) on any path x = α·data + σ·ε
/// (VP diffusion, the seed's flow, VE σ): the marginal at level l is N(α μ, α² s² + σ²) and the ODE
/// transports quantiles, so x(l₁) = α₁ μ + r₁ (x(l₀) − α₀ μ)/r₀ with r = √(α² s² + σ²). Every
/// solver's global error is measured against this.
inline double gaussian_ode_map(double x, scoreflow::NoiseLevel from, scoreflow::NoiseLevel to, double mu, double s) {
  const double r0 = std::sqrt(from.alpha * from.alpha * s * s + from.sigma * from.sigma);
  const double r1 = std::sqrt(to.alpha * to.alpha * s * s + to.sigma * to.sigma);
  return to.alpha * mu + r1 * (x - from.alpha * mu) / r0;
}
}  // namespace exact

/// A measured convergence order: the least-squares slope of −log(error) against log(steps).
inline double fitted_order(const std::vector<int>& steps, const std::vector<double>& errors) {
  double mx = 0, my = 0;
  const double n = static_cast<double>(steps.size());
  for (std::size_t k = 0; k < steps.size(); ++k) mx += std::log(steps[k]) / n, my += std::log(errors[k]) / n;
  double sxy = 0, sxx = 0;
  for (std::size_t k = 0; k < steps.size(); ++k) {
    sxy += (std::log(steps[k]) - mx) * (std::log(errors[k]) - my);
    sxx += (std::log(steps[k]) - mx) * (std::log(steps[k]) - mx);
  }
  return -sxy / sxx;
}

/// Data N(μ, s² I) answered as the exact data estimate E[data | x] = μ + α s²/(α² s² + σ²)(x − α μ)
/// (Parameterization::sample) at the level each family's time denotes: Timestep through `table`,
/// FlowTime t as (t, 1 − t), Sigma σ as (1, σ). One oracle for every SolverPath.
struct GaussianData {
  scoreflow::NoiseSchedule table = scoreflow::NoiseSchedule::linear();
  double mu = 0.3, s = 0.5;
  int* calls = nullptr;

  template <class T>
  T answer(const T& x, scoreflow::NoiseLevel l) const {
    if (calls) ++*calls;
    auto v = scoreflow::ops::to_vector(x);
    const double k = l.alpha * s * s / (l.alpha * l.alpha * s * s + l.sigma * l.sigma);
    for (auto& e : v) e = mu + k * (e - l.alpha * mu);
    return scoreflow::ops::from_vector(v, scoreflow::ops::shape(x), x);
  }
  template <class T>
  T operator()(const T& x, scoreflow::Timestep t, scoreflow::NoCondition) const {
    return answer(x, scoreflow::diffusion::level(table.alpha_bar(t.value)));
  }
  template <class T>
  T operator()(const T& x, scoreflow::FlowTime t, scoreflow::NoCondition) const {
    return answer(x, scoreflow::flow::level(t.value));
  }
  template <class T>
  T operator()(const T& x, scoreflow::Sigma sigma, scoreflow::NoCondition) const {
    return answer(x, scoreflow::NoiseLevel{1.0, sigma.value});
  }
};
}  // namespace sftest
