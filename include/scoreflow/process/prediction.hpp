#pragma once
// What a denoiser predicts, declared by its owner and never guessed.
#include <optional>

#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

/// The quantity a denoiser outputs.
///  - noise:    ε̂, the Gaussian noise in x_t (DDPM, DeepFloyd IF; in a flow: the noise end x₀).
///  - sample:   the clean data estimate (x̂₀ in diffusion, x̂₁ in the seed's flow convention).
///  - velocity: v = √ᾱ ε − √(1−ᾱ) x₀ in diffusion (Salimans & Ho 2022, §4);
///              u = x₁ − x₀ = dx_t/dt in flow matching (seed Part B §2).
enum class Parameterization { noise, sample, velocity };

/// "noise", "sample" or "velocity" (for logs, captions and cache keys).
constexpr const char* to_string(Parameterization p) {
  switch (p) {
    case Parameterization::noise: return "noise";
    case Parameterization::sample: return "sample";
    case Parameterization::velocity: return "velocity";
  }
  return "unknown";
}

/// How a denoiser reports the variance of its step (DeepFloyd IF's "learned_range").
enum class VarianceOutput {
  none,          ///< output has the input's channels
  learned_range  ///< output has twice the channels: prediction, then v ∈ [−1, 1] per pixel
};

/// One (possibly guided and combined) model answer. `variance` is set only for learned-range
/// denoisers; guidance and combiners treat it as IF does (see guidance.hpp, combiners.hpp).
template <Tensor T>
struct Prediction {
  T value;
  Parameterization kind;
  std::optional<T> variance{};
};

/// Linear combination of predictions of one kind: Σ w_i p_i (variance combined alike).
template <Tensor T>
Prediction<T> weighted_sum(const std::vector<Prediction<T>>& parts, const std::vector<double>& weights) {
  Prediction<T> out{ops::scale(weights.at(0), parts.at(0).value), parts[0].kind, std::nullopt};
  const bool with_variance = parts[0].variance.has_value();
  if (with_variance) out.variance = ops::scale(weights[0], *parts[0].variance);
  for (std::size_t i = 1; i < parts.size(); ++i) {
    out.value = ops::axpby(1.0, out.value, weights.at(i), parts[i].value);
    if (with_variance) out.variance = ops::axpby(1.0, *out.variance, weights[i], parts[i].variance.value());
  }
  return out;
}

}  // namespace scoreflow
