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
