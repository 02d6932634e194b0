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
  /// Any table the user supplies; it must lie in (0, 1] and be non-increasing. The last entry may
  /// be exactly 0: a zero-terminal-SNR table (Lin et al. 2024), whose noisiest timestep is pure
  /// noise. A 0 anywhere else would leave every later timestep without signal, so it is refused.
  explicit NoiseSchedule(std::vector<double> alphas_cumprod) : alphas_cumprod_(std::move(alphas_cumprod)) {
    detail::require(!alphas_cumprod_.empty(), "alphas_cumprod.size()", 0, "must not be empty");
    for (std::size_t t = 0; t < alphas_cumprod_.size(); ++t) {
      const double a = alphas_cumprod_[t];
      const bool last = t + 1 == alphas_cumprod_.size();
      if (a == 0.0 && !last)
        throw invalid_option(detail::concat("alphas_cumprod[", t, "] = 0: only the last entry (t = ",
                                            alphas_cumprod_.size() - 1,
                                            ") may be 0, the pure-noise end of a zero-terminal-SNR table"));
      if (!(a >= 0.0 && a <= 1.0))
        throw invalid_option(detail::concat("alphas_cumprod[", t, "] = ", a,
                                            ": must lie in (0, 1] (the last entry may also be 0)"));
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

  /// Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Alg. 1: the
  /// table with √ᾱ shifted so that the last entry is 0 (zero terminal SNR: the noisiest timestep is
  /// pure noise, as the sampler's start x_T ~ N(0, I) assumes) and scaled so that the first keeps
  /// its value:  √ᾱ'_t = (√ᾱ_t − √ᾱ_{T−1}) · √ᾱ_0 / (√ᾱ_0 − √ᾱ_{T−1}).
  ///
  /// The arithmetic is diffusers' `rescale_zero_terminal_snr(betas)` step for step in float64: it
  /// returns betas β_t = 1 − ᾱ'_t/ᾱ'_{t−1} (β_0 = 1 − ᾱ'_0), from which its schedulers rebuild the
  /// table as cumprod(1 − β); we do the same, so the table is theirs to the last bit (it differs
  /// from ᾱ'_t itself by a few ulps). diffusers' schedulers then replace the last entry 0 by 2⁻²⁴
  /// to keep ε-arithmetic finite; we keep the exact 0, and the steps handle it (a v- or
  /// x₀-predicting model is needed there, §3.2: see diffusion::to_sample).
  [[nodiscard]] NoiseSchedule rescale_zero_terminal_snr() const {
    const std::size_t n = alphas_cumprod_.size();
    detail::require(n >= 2, "alphas_cumprod.size()", n, "must be at least 2 to rescale to zero terminal SNR");
    std::vector<double> root(n);
    for (std::size_t t = 0; t < n; ++t) root[t] = std::sqrt(alphas_cumprod_[t]);
    const double first = root.front(), last = root.back();
    if (!(first > last))
      throw invalid_option(detail::concat("alphas_cumprod: first = last = ", alphas_cumprod_.front(),
                                          ": a constant table cannot be rescaled to zero terminal SNR"));
    const double scale = first / (first - last);
    double product = 1.0, previous = 1.0;
    std::vector<double> table(n);
    for (std::size_t t = 0; t < n; ++t) {
      root[t] = (root[t] - last) * scale;
      if (root[t] == 0.0 && t + 1 < n)
        throw invalid_option(detail::concat("alphas_cumprod[", t, "] = ", alphas_cumprod_[t],
                                            " equals the last entry: rescaled to zero terminal SNR it would be 0 "
                                            "before the end of the table"));
      const double bar = root[t] * root[t];
      const double beta = 1.0 - (t == 0 ? bar : bar / previous);
      previous = bar;
      product *= 1.0 - beta;
      table[t] = product;
    }
    return NoiseSchedule(std::move(table));
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
