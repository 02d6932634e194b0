#pragma once
// Noise schedules as data: the table ᾱ_t ("alphas_cumprod") for t = 0 … T−1, larger t noisier.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <vector>

#include "scoreflow/errors.hpp"

namespace scoreflow {

class NoiseSchedule {
 public:
  /// Any table the user supplies; it must lie in (0, 1] and be non-increasing.
  explicit NoiseSchedule(std::vector<double> alphas_cumprod) : alphas_cumprod_(std::move(alphas_cumprod)) {
    detail::require(!alphas_cumprod_.empty(), "alphas_cumprod.size()", 0, "must not be empty");
    for (std::size_t t = 0; t < alphas_cumprod_.size(); ++t) {
      const double a = alphas_cumprod_[t];
      if (!(a > 0.0 && a <= 1.0))
        throw invalid_option(detail::concat("alphas_cumprod[", t, "] = ", a, ": must lie in (0, 1]"));
      if (t > 0 && a > alphas_cumprod_[t - 1])
        throw invalid_option(detail::concat("alphas_cumprod[", t, "] = ", a,
                                            ": must not exceed the previous entry ", alphas_cumprod_[t - 1]));
    }
  }

  /// ᾱ_t = Π_{i ≤ t} (1 − β_i) from a list of betas in (0, 1).
  static NoiseSchedule from_betas(const std::vector<double>& betas) {
    std::vector<double> table;
    double product = 1.0;
    for (std::size_t i = 0; i < betas.size(); ++i) {
      if (!(betas[i] > 0.0 && betas[i] < 1.0))
        throw invalid_option(detail::concat("betas[", i, "] = ", betas[i], ": must lie in (0, 1)"));
      product *= 1.0 - betas[i];
      table.push_back(product);
    }
    return NoiseSchedule(std::move(table));
  }

  /// DDPM's linear betas (Ho et al. 2020, §4): β from beta_start to beta_end, T entries.
  static NoiseSchedule linear(int steps = 1000, double beta_start = 1e-4, double beta_end = 0.02) {
    detail::require(steps >= 2, "steps", steps, "must be at least 2");
    std::vector<double> betas(static_cast<std::size_t>(steps));
    for (int i = 0; i < steps; ++i)
      betas[static_cast<std::size_t>(i)] = beta_start + (beta_end - beta_start) * i / (steps - 1);
    return from_betas(betas);
  }

  /// `squaredcos_cap_v2` as DeepFloyd IF and diffusers compute it (Nichol & Dhariwal 2021, eq. 17):
  /// β_i = min(1 − f((i+1)/T) / f(i/T), max_beta), f(t) = cos²((t + 0.008)/1.008 · π/2).
  static NoiseSchedule cosine(int steps = 1000, double max_beta = 0.999) {
    detail::require(steps >= 2, "steps", steps, "must be at least 2");
    auto f = [](double t) {
      const double c = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2.0);
      return c * c;
    };
    std::vector<double> betas(static_cast<std::size_t>(steps));
    for (int i = 0; i < steps; ++i) {
      const double t1 = static_cast<double>(i) / steps, t2 = static_cast<double>(i + 1) / steps;
      betas[static_cast<std::size_t>(i)] = std::min(1.0 - f(t2) / f(t1), max_beta);
    }
    return from_betas(betas);
  }

  [[nodiscard]] int size() const { return static_cast<int>(alphas_cumprod_.size()); }

  /// ᾱ_t; t = −1 denotes clean data (ᾱ = 1), the target of a final step "to x₀".
  [[nodiscard]] double alpha_bar(int t) const {
    if (t == -1) return 1.0;
    if (t < -1 || t >= size())
      throw invalid_option(detail::concat("timestep = ", t, ": must lie in [-1, ", size() - 1, "]"));
    return alphas_cumprod_[static_cast<std::size_t>(t)];
  }

  [[nodiscard]] const std::vector<double>& alphas_cumprod() const { return alphas_cumprod_; }

 private:
  std::vector<double> alphas_cumprod_;
};

}  // namespace scoreflow
