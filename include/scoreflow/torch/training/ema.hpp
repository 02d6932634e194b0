#pragma once
// An exponential moving average (EMA) of a net's weights, for sampling and evaluation: after
// every optimizer step the average θ̂ moves towards the trained weights θ,
//
//   θ̂_t = β_t θ̂_{t−1} + (1 − β_t) θ_t          (t = 1, 2, … counts the updates)
//
// with one of two rules for β_t:
//
//   constant decay  β_t = decay, or with warm-up β_t = min(decay, (1 + n)/(10 + n)), n = t − 1
//                   the updates done before this one (TensorFlow's tf.train.ExponentialMovingAverage
//                   with num_updates; the common practice of diffusion codebases). The average
//                   starts from the weights the EMA was built from (the trainer: the initial net);
//                   the warm-up lets it leave them quickly (β = 0.1, 0.18, 0.25, … at first).
//   power function  β_t = (1 − 1/t)^(γ+1) (Karras et al. 2024, "Analyzing and Improving the
//                   Training Dynamics of Diffusion Models" (EDM2), Sec. 3.1; App. Eq. 127 as their
//                   reference code phema.py numbers it). θ̂_t averages θ_1 … θ_t with weights ∝ τ^γ,
//                   a profile whose width relative to the training length is
//                   σ_rel = ((γ + 1) / ((γ + 2)² (γ + 3)))^½ (App. Eq. 123). We take σ_rel, as the
//                   paper does, and solve for γ (App. Eq. 126 and Algorithm 2: the largest real
//                   root of γ³ + 7γ² + (16 − σ_rel⁻²)γ + (12 − σ_rel⁻²) = 0; we bisect on the branch
//                   where σ_rel falls with γ, which holds exactly that root). β_1 = 0: the initial
//                   weights do not enter. EDM2: σ_rel = 0.05 ↔ γ = 16.97, σ_rel = 0.10 ↔ γ = 6.94.
//
// Buffers (BatchNorm's running mean and variance, its batch counter) are copied, not averaged,
// at every update. They are not trained weights but statistics of the activations of the *live*
// net, already running averages over batches (momentum 0.1); an average of past statistics would
// describe no net, and averaging the int64 counter is meaningless. Copying keeps the newest
// estimate, as EDM2's phema.py does (it copies buffers when the average is read) and as
// torch.optim.swa_utils.AveragedModel does by default (use_buffers = False). The exact statistics
// of the averaged weights would need a pass over data (swa_utils.update_bn); copying is the
// cheap approximation, close once the weights move slowly.
//
// The average keeps the dtype and device of each parameter. Its state (the averages, the copied
// buffers, the update count) goes into checkpoints (checkpoint.hpp), so a resumed run continues
// the average bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/ordered_dict.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "scoreflow/errors.hpp"

namespace scoreflow::training {

/// TrainOptions::ema. The default is the constant-decay EMA with warm-up.
struct EmaOptions {
  double decay = 0.9999;                ///< β of the constant-decay EMA, in [0, 1)
  bool warmup = true;                   ///< β_t = min(decay, (1 + n)/(10 + n)), n = updates before
  std::optional<double> sigma_rel{};    ///< set: the power-function EMA of EDM2 (decay, warmup unused)
};

/// σ_rel of the power-function profile with exponent γ (EDM2 App. Eq. 123).
inline double power_ema_sigma_rel(double gamma) {
  return std::sqrt((gamma + 1.0) / ((gamma + 2.0) * (gamma + 2.0) * (gamma + 3.0)));
}

/// The exponent where σ_rel(γ) peaks: d/dγ log σ_rel² = 1/(γ+1) − 2/(γ+2) − 1/(γ+3) = 0 gives
/// γ² + 3γ + 1 = 0, so γ* = (√5 − 3)/2 ≈ −0.382 and σ_rel ≤ σ_rel(γ*) ≈ 0.3003 for every γ > −1.
inline double power_ema_peak_gamma() { return (std::sqrt(5.0) - 3.0) / 2.0; }
inline double power_ema_max_sigma_rel() { return power_ema_sigma_rel(power_ema_peak_gamma()); }

/// γ for a given σ_rel ∈ (0, power_ema_max_sigma_rel()] (EDM2 App. Eq. 126, Algorithm 2): the
/// largest root of the cubic, i.e. the γ ≥ γ* with σ_rel(γ) = sigma_rel. σ_rel falls
/// monotonically from its peak at γ* towards 0 as γ → ∞, so bisection finds it to the last bit.
inline double power_ema_gamma(double sigma_rel) {
  const double peak = power_ema_max_sigma_rel();
  scoreflow::detail::require(std::isfinite(sigma_rel) && sigma_rel > 0.0 && sigma_rel <= peak, "ema.sigma_rel",
                             sigma_rel,
                             "must lie in (0, 0.3003]: the power-function profile is at most that wide "
                             "(EDM2 uses 0.05 to 0.2)");
  double lo = power_ema_peak_gamma(), hi = 1.0;
  while (power_ema_sigma_rel(hi) > sigma_rel) hi *= 2.0;  // σ_rel(γ) ≈ 1/γ for large γ: ends
  for (int i = 0; i < 200 && lo < hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;  // adjacent doubles
    (power_ema_sigma_rel(mid) > sigma_rel ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

namespace detail {
inline EmaOptions checked(EmaOptions o) {
  using scoreflow::detail::require;
  require(std::isfinite(o.decay) && o.decay >= 0.0 && o.decay < 1.0, "ema.decay", o.decay,
          "must lie in [0, 1) (0.999 to 0.9999 are usual)");
  if (o.sigma_rel) (void)power_ema_gamma(*o.sigma_rel);  // validates
  return o;
}

inline std::string shape_of(const torch::Tensor& t) { return scoreflow::detail::shape_text(t.sizes()); }
}  // namespace detail

/// The EMA of one net's parameters (and a copy of its buffers); see the top of this header.
class ExponentialMovingAverage {
 public:
  using Tensors = torch::OrderedDict<std::string, torch::Tensor>;

  /// Starts the average at `net`'s current weights (detached copies on the same devices).
  ExponentialMovingAverage(const torch::nn::Module& net, EmaOptions options)
      : options_(detail::checked(options)),
        gamma_(options_.sigma_rel ? std::optional<double>(power_ema_gamma(*options_.sigma_rel)) : std::nullopt),
        parameters_(copies(net.named_parameters())),
        buffers_(copies(net.named_buffers())) {}

  /// β of the update that follows `updates_before` earlier ones (the (updates_before + 1)-th).
  [[nodiscard]] double beta(std::int64_t updates_before) const {
    const auto n = static_cast<double>(updates_before);
    if (gamma_) return std::pow(1.0 - 1.0 / (n + 1.0), *gamma_ + 1.0);  // t = n + 1; β_1 = 0
    if (options_.warmup) return std::min(options_.decay, (1.0 + n) / (10.0 + n));
    return options_.decay;
  }

  /// One update from `net`, the net the average was built from, after an optimizer step.
  void update(const torch::nn::Module& net) {
    torch::NoGradGuard no_grad;
    const double b = beta(updates_);
    const auto params = net.named_parameters();
    check_layout(params, parameters_, "parameter");
    for (std::size_t i = 0; i < params.size(); ++i) parameters_[i].value().mul_(b).add_(params[i].value(), 1.0 - b);
    const auto bufs = net.named_buffers();
    check_layout(bufs, buffers_, "buffer");
    for (std::size_t i = 0; i < bufs.size(); ++i) buffers_[i].value().copy_(bufs[i].value());
    ++updates_;
  }

  /// Writes the averaged parameters and the buffers into `net`, a net of the same configuration
  /// (the trainer's own, or a fresh one for sampling); a different layout is a shape_error naming
  /// the entry, and leaves `net` untouched.
  void copy_to(torch::nn::Module& net) const {
    const auto params = net.named_parameters();
    const auto bufs = net.named_buffers();
    check_layout(params, parameters_, "parameter");
    check_layout(bufs, buffers_, "buffer");
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) params[i].value().copy_(parameters_[i].value());
    for (std::size_t i = 0; i < bufs.size(); ++i) bufs[i].value().copy_(buffers_[i].value());
  }

  [[nodiscard]] std::int64_t updates() const { return updates_; }
  [[nodiscard]] const EmaOptions& options() const { return options_; }
  /// γ of the power-function EMA; nothing for the constant-decay one.
  [[nodiscard]] std::optional<double> gamma() const { return gamma_; }
  /// The averages, named as net.named_parameters() names them.
  [[nodiscard]] const Tensors& parameters() const { return parameters_; }
  /// The copied buffers, named as net.named_buffers() names them.
  [[nodiscard]] const Tensors& buffers() const { return buffers_; }

  /// Replaces the state (checkpoint.hpp, after it has checked every entry against the net):
  /// `parameters` and `buffers` in this EMA's order and shapes.
  void restore(const std::vector<torch::Tensor>& parameters, const std::vector<torch::Tensor>& buffers,
               std::int64_t updates) {
    if (parameters.size() != parameters_.size() || buffers.size() != buffers_.size() || updates < 0)
      throw invalid_option(scoreflow::detail::concat("ExponentialMovingAverage::restore: ", parameters.size(),
                                                     " parameters, ", buffers.size(), " buffers, ", updates,
                                                     " updates do not fit an EMA of ", parameters_.size(),
                                                     " parameters and ", buffers_.size(), " buffers"));
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < parameters.size(); ++i) parameters_[i].value().copy_(parameters[i]);
    for (std::size_t i = 0; i < buffers.size(); ++i) buffers_[i].value().copy_(buffers[i]);
    updates_ = updates;
  }

 private:
  static Tensors copies(const Tensors& from) {
    Tensors out;
    out.reserve(from.size());
    for (const auto& item : from) out.insert(item.key(), item.value().detach().clone());
    return out;
  }

  static void check_layout(const Tensors& net, const Tensors& own, const char* what) {
    if (net.size() != own.size())
      throw shape_error(scoreflow::detail::concat("EMA: the net has ", net.size(), " ", what, "s, the average ",
                                                  own.size(), " (a net of another configuration?)"));
    for (std::size_t i = 0; i < net.size(); ++i)
      if (net[i].key() != own[i].key() || !net[i].value().sizes().equals(own[i].value().sizes()))
        throw shape_error(scoreflow::detail::concat("EMA: ", what, " ", i, " is '", net[i].key(), "' ",
                                                    detail::shape_of(net[i].value()), " in the net but '",
                                                    own[i].key(), "' ", detail::shape_of(own[i].value()),
                                                    " in the average (a net of another configuration?)"));
  }

  EmaOptions options_;
  std::optional<double> gamma_;
  Tensors parameters_, buffers_;
  std::int64_t updates_ = 0;
};

}  // namespace scoreflow::training
