#pragma once
// The forward processes and the conversions between prediction types.
#include <cmath>
#include <concepts>
#include <optional>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/process/prediction.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

namespace detail {
/// A coefficient of the forward processes: one value for the whole batch (sampling), or one per
/// batch row (a training batch, every sample at its own time; ops::axpby_rows). Each formula is
/// written once for both.
template <class A>
concept ProcessCoefficient = std::same_as<A, double> || std::same_as<A, std::vector<double>>;

template <class F>
double map_coefficient(double a, F f) { return f(a); }
template <class F>
std::vector<double> map_coefficient(const std::vector<double>& a, F f) {
  std::vector<double> out(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out[i] = f(a[i]);
  return out;
}

template <Tensor T>
T combine(double a, const T& x, double b, const T& y) { return ops::axpby(a, x, b, y); }
template <Tensor T>
T combine(const std::vector<double>& a, const T& x, const std::vector<double>& b, const T& y) {
  return ops::axpby_rows(a, x, b, y);
}

/// At ᾱ = 0 (a zero-terminal-SNR table's last entry) x_t = ε carries no signal, so ε̂ = x_t for
/// every x₀ and x̂₀ = (x_t − ε̂)/√ᾱ is 0/0; only v- and x₀-prediction determine x̂₀ there.
inline constexpr const char* noise_prediction_at_pure_noise =
    "prediction: a noise (ε) prediction at ᾱ = 0 determines no x̂₀; use a v- or x₀-predicting model "
    "(Lin et al. 2024 §3.2)";
}  // namespace detail

/// Diffusion (variance preserving): x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε.
namespace diffusion {

/// Seed §1.1: q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I). ᾱ: one value, or one per batch row.
template <Tensor T, detail::ProcessCoefficient A>
T forward(const T& x0, const A& alpha_bar, const T& noise) {
  return detail::combine(detail::map_coefficient(alpha_bar, [](double a) { return std::sqrt(a); }), x0,
                         detail::map_coefficient(alpha_bar, [](double a) { return std::sqrt(1.0 - a); }), noise);
}

/// Seed §1.3: x̂₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t. Undefined at ᾱ = 0: an invalid_option, not an inf.
template <Tensor T>
T sample_from_noise(const T& x_t, const T& noise, double alpha_bar) {
  if (alpha_bar == 0.0) throw invalid_option(detail::noise_prediction_at_pure_noise);
  const double r = 1.0 / std::sqrt(alpha_bar);
  return ops::axpby(r, x_t, -std::sqrt(1.0 - alpha_bar) * r, noise);
}

/// ε̂ = (x_t − √ᾱ_t x̂₀) / √(1 − ᾱ_t).
template <Tensor T>
T noise_from_sample(const T& x_t, const T& x0, double alpha_bar) {
  const double r = 1.0 / std::sqrt(1.0 - alpha_bar);
  return ops::axpby(r, x_t, -std::sqrt(alpha_bar) * r, x0);
}

/// v-prediction (Salimans & Ho 2022, eq. 9 rearranged): x̂₀ = √ᾱ x_t − √(1−ᾱ) v; at ᾱ = 0, x̂₀ = −v.
template <Tensor T>
T sample_from_velocity(const T& x_t, const T& v, double alpha_bar) {
  return ops::axpby(std::sqrt(alpha_bar), x_t, -std::sqrt(1.0 - alpha_bar), v);
}

/// ε̂ = √(1−ᾱ) x_t + √ᾱ v; at ᾱ = 0, ε̂ = x_t (finite for every prediction kind, also from x₀).
template <Tensor T>
T noise_from_velocity(const T& x_t, const T& v, double alpha_bar) {
  return ops::axpby(std::sqrt(1.0 - alpha_bar), x_t, std::sqrt(alpha_bar), v);
}

/// v = √ᾱ ε − √(1−ᾱ) x₀ (Salimans & Ho 2022, §4). ᾱ: one value, or one per batch row.
template <Tensor T, detail::ProcessCoefficient A>
T velocity_from(const T& noise, const T& x0, const A& alpha_bar) {
  return detail::combine(detail::map_coefficient(alpha_bar, [](double a) { return std::sqrt(a); }), noise,
                         detail::map_coefficient(alpha_bar, [](double a) { return -std::sqrt(1.0 - a); }), x0);
}

/// The clean-data estimate x̂₀ whatever the denoiser predicts.
template <Tensor T>
T to_sample(const Prediction<T>& p, const T& x_t, double alpha_bar) {
  switch (p.kind) {
    case Parameterization::noise: return sample_from_noise(x_t, p.value, alpha_bar);
    case Parameterization::sample: return p.value;
    case Parameterization::velocity: return sample_from_velocity(x_t, p.value, alpha_bar);
  }
  throw invalid_option("prediction kind: unknown");
}

/// The noise estimate ε̂ whatever the denoiser predicts.
template <Tensor T>
T to_noise(const Prediction<T>& p, const T& x_t, double alpha_bar) {
  switch (p.kind) {
    case Parameterization::noise: return p.value;
    case Parameterization::sample: return noise_from_sample(x_t, p.value, alpha_bar);
    case Parameterization::velocity: return noise_from_velocity(x_t, p.value, alpha_bar);
  }
  throw invalid_option("prediction kind: unknown");
}

/// x̂₀ at any level (α, σ) of the VP path, for the solvers of solver/ (noise_level.hpp). At pure
/// noise (ᾱ = 0, a zero-terminal-SNR table's last entry) only v- and x₀-prediction determine x̂₀
/// (Lin et al. 2024, §3.2); a noise prediction there is an error, not an infinity.
template <Tensor T>
T data_estimate(const Prediction<T>& p, const T& x_t, NoiseLevel l) {
  switch (p.kind) {
    case Parameterization::noise:
      if (l.is_pure_noise()) throw invalid_option(detail::noise_prediction_at_pure_noise);
      return ops::axpby(1.0 / l.alpha, x_t, -l.sigma / l.alpha, p.value);
    case Parameterization::sample: return p.value;
    case Parameterization::velocity: return ops::axpby(l.alpha, x_t, -l.sigma, p.value);
  }
  throw invalid_option("prediction kind: unknown");
}
/// data_estimate's coefficients (noise_level.hpp, DataMap); none for a noise prediction at ᾱ = 0.
inline std::optional<DataMap> data_map(Parameterization kind, NoiseLevel l) {
  switch (kind) {
    case Parameterization::noise:
      if (l.is_pure_noise()) return std::nullopt;
      return DataMap{1.0 / l.alpha, -l.sigma / l.alpha};
    case Parameterization::sample: return DataMap{0.0, 1.0};
    case Parameterization::velocity: return DataMap{l.alpha, -l.sigma};
  }
  return std::nullopt;
}
}  // namespace diffusion

/// Flow matching, the seed's convention (Part B §2): x_t = (1 − t) x₀ + t x₁, x₀ ~ N(0, I) noise,
/// x₁ data, velocity u = x₁ − x₀.
namespace flow {

/// x_t = (1 − t) x₀ + t x₁. t: one value, or one per batch row.
template <Tensor T, detail::ProcessCoefficient A>
T forward(const T& data, const A& t, const T& noise) {
  return detail::combine(detail::map_coefficient(t, [](double v) { return 1.0 - v; }), noise, t, data);
}

/// Velocity from any prediction kind: from x̂₁, u = (x̂₁ − x)/(1 − t); from the noise x̂₀,
/// u = (x − x̂₀)/t. Both divide by zero at their endpoint; a velocity denoiser never does.
template <Tensor T>
T to_velocity(const Prediction<T>& p, const T& x_t, double t) {
  switch (p.kind) {
    case Parameterization::velocity: return p.value;
    case Parameterization::sample: return ops::scale(1.0 / (1.0 - t), ops::sub(p.value, x_t));
    case Parameterization::noise: return ops::scale(1.0 / t, ops::sub(x_t, p.value));
  }
  throw invalid_option("prediction kind: unknown");
}

/// x̂₁ = x_t + (1 − t) u.
template <Tensor T>
T data_from_velocity(const T& x_t, const T& u, double t) {
  return ops::axpby(1.0, x_t, 1.0 - t, u);
}

/// x̂₀ (noise) = x_t − t u.
template <Tensor T>
T noise_from_velocity(const T& x_t, const T& u, double t) {
  return ops::axpby(1.0, x_t, -t, u);
}

/// x̂₁ at any level (α, σ) = (t, 1 − t): from a velocity x̂₁ = x + σ u (exact: x + (1 − t)(x₁ − x₀)
/// = x₁); from the noise end ε̂, x̂₁ = (x − σ ε̂)/α, undefined at t = 0.
template <Tensor T>
T data_estimate(const Prediction<T>& p, const T& x_t, NoiseLevel l) {
  switch (p.kind) {
    case Parameterization::velocity: return ops::axpby(1.0, x_t, l.sigma, p.value);
    case Parameterization::sample: return p.value;
    case Parameterization::noise:
      if (l.is_pure_noise())
        throw invalid_option("prediction: a noise prediction at flow time t = 0 determines no data estimate");
      return ops::axpby(1.0 / l.alpha, x_t, -l.sigma / l.alpha, p.value);
  }
  throw invalid_option("prediction kind: unknown");
}

/// data_estimate's coefficients (noise_level.hpp, DataMap); none for a noise prediction at t = 0.
inline std::optional<DataMap> data_map(Parameterization kind, NoiseLevel l) {
  switch (kind) {
    case Parameterization::velocity: return DataMap{1.0, l.sigma};
    case Parameterization::sample: return DataMap{0.0, 1.0};
    case Parameterization::noise:
      if (l.is_pure_noise()) return std::nullopt;
      return DataMap{1.0 / l.alpha, -l.sigma / l.alpha};
  }
  return std::nullopt;
}
}  // namespace flow

/// Variance exploding (Karras et al. 2022, "EDM"; k-diffusion): x = x₀ + σ ε, the model D(x, σ).
namespace ve {

/// x = x₀ + σ ε.
template <Tensor T>
T forward(const T& x0, double sigma, const T& noise) { return ops::axpby(1.0, x0, sigma, noise); }

/// x̂₀ from the denoised sample (EDM's D) or from ε̂ (x̂₀ = x − σ ε̂). A VE velocity has no single
/// convention, so it is refused by name.
template <Tensor T>
T data_estimate(const Prediction<T>& p, const T& x, NoiseLevel l) {
  switch (p.kind) {
    case Parameterization::sample: return p.value;
    case Parameterization::noise: return ops::axpby(1.0, x, -l.sigma, p.value);
    case Parameterization::velocity:
      throw invalid_option("prediction: a velocity has no convention on a σ (variance-exploding) schedule; "
                           "declare the model as Parameterization::sample (EDM's D) or noise");
  }
  throw invalid_option("prediction kind: unknown");
}

/// data_estimate's coefficients (noise_level.hpp, DataMap); none for a velocity.
inline std::optional<DataMap> data_map(Parameterization kind, NoiseLevel l) {
  switch (kind) {
    case Parameterization::sample: return DataMap{0.0, 1.0};
    case Parameterization::noise: return DataMap{1.0, -l.sigma};
    case Parameterization::velocity: return std::nullopt;
  }
  return std::nullopt;
}
}  // namespace ve

}  // namespace scoreflow
