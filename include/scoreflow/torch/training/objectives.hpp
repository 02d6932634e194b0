#pragma once
// Training objectives of seed Part B, one per model, all built from the same few pieces: the
// trainer's random stream (TrainingRng), a conditioning policy (NoClass / ClassDropout), the
// core's forward processes (process/process.hpp) and MSE.
//
//   Denoising{0.5}            seed §1.2.1: z = x + σε, loss ‖D(z) − x‖²
//   Denoising::pure_noise()   seed §1.2.3: z = ε, loss ‖D(z) − x‖²
//   FlowMatching{}            seed §2.2 (time-only): x₀ ~ N(0, I), x₁ data, t ~ U[0, 1],
//                             x_t = flow::forward(x₁, t, x₀), loss ‖u_θ(x_t, t) − (x₁ − x₀)‖²
//   FlowMatching{ClassDropout{}}  seed §2.5: the same with a one-hot class, zeroed with
//                             probability p_uncond = 0.1 per sample (classifier-free training)
//   FlowMatching{cond, TimeSampling::logit_normal(m, s)}
//                             t drawn logit-normal instead of uniform (SD3, Esser et al. 2024)
//   DiffusionObjective{schedule}  DDPM training (Ho et al. 2020, Alg. 1): t ~ U{0 … T−1},
//                             x_t = diffusion::forward(x₀, ᾱ_t, ε), model input t/T, loss ‖ε̂ − ε‖²;
//                             class dropout as above (use NoClass for a time-only net)
//   DiffusionObjective{schedule, cond, Parameterization::velocity}
//                             the same forward process, the net trained to predict
//                             v = diffusion::velocity_from(ε, x₀, ᾱ_t) (Salimans & Ho 2022, §4)
//                             or x₀ (Parameterization::sample)
//   DiffusionObjective{schedule, cond, target, LossWeighting::min_snr(5)}
//                             the per-timestep loss weighted by min-SNR-γ (Hang et al. 2023)
//
// An objective is a callable (net, batch, rng) → scalar loss; the trainer (train_loop.hpp) runs any
// of them. The images are used as they come; the seed's MNIST models see values in [0, 1].
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_schedule.hpp"
#include "scoreflow/process/prediction.hpp"
#include "scoreflow/process/process.hpp"
#include "scoreflow/torch/data/batching.hpp"
#include "scoreflow/torch/models/adapters.hpp"
#include "scoreflow/torch/tensor.hpp"
#include "scoreflow/torch/training/training_rng.hpp"

namespace scoreflow::training {

using models::ClassTimeNet;
using models::ImageNet;
using models::TimeNet;

/// The batch an objective trains on (data/batching.hpp): one batch type for the data layer and
/// the trainer.
using TrainingBatch [[deprecated("use scoreflow::Batch")]] = Batch;

/// Conditioning policy of a time-only net: forward(x, t).
struct NoClass {};

/// Conditioning policy of a class-conditioned net: forward(x, t, c) with c the one-hot label,
/// replaced by zeros with probability p_uncond per sample (seed Part B §2.4).
struct ClassDropout {
  double p_uncond = 0.1;
  std::int64_t num_classes = 10;
};

namespace detail {
inline void check(NoClass) {}
inline void check(const ClassDropout& c) {
  scoreflow::detail::require(c.p_uncond >= 0.0 && c.p_uncond <= 1.0, "p_uncond", c.p_uncond, "must lie in [0, 1]");
  scoreflow::detail::require(c.num_classes > 0, "num_classes", c.num_classes, "must be positive");
}

inline void require_images(const char* objective, const Batch& b) {
  if (!b.images.defined() || b.images.dim() != 4 || b.images.size(0) == 0)
    throw shape_error(scoreflow::detail::concat(objective, ": batch images must be a non-empty B×C×H×W tensor, got ",
                                                b.images.defined() ? b.images.sizes() : c10::IntArrayRef{}));
}

/// net(x, t) for a time-only net.
template <class Net>
torch::Tensor call(Net& net, const torch::Tensor& x, const torch::Tensor& t, const Batch&, NoClass,
                   TrainingRng&) {
  static_assert(TimeNet<Net>, "NoClass conditioning needs a net with forward(x, t), e.g. TimeConditionalUNet");
  return net->forward(x, t);
}

/// net(x, t, c) with c = one-hot(labels), each row zeroed with probability p_uncond.
template <class Net>
torch::Tensor call(Net& net, const torch::Tensor& x, const torch::Tensor& t, const Batch& b,
                   const ClassDropout& cd, TrainingRng& rng) {
  static_assert(ClassTimeNet<Net>,
                "ClassDropout conditioning needs a net with forward(x, t, c), e.g. ClassConditionalUNet");
  if (!b.labels.defined() || b.labels.dim() != 1 || b.labels.size(0) != x.size(0))
    throw shape_error(scoreflow::detail::concat("class-conditioned objective: batch labels must be a 1-D tensor of ",
                                                x.size(0), " labels"));
  const auto c = models::one_hot(b.labels, cd.num_classes).to(x.options());
  const auto keep = (rng.uniform(x.size(0), x.options()) >= cd.p_uncond).to(x.scalar_type());
  return net->forward(x, t, c * keep);
}

/// The mean over the batch of w_i · mean_j (pred_ij − target_ij)², w an N-vector (CPU, float64).
inline torch::Tensor weighted_mse(const torch::Tensor& pred, const torch::Tensor& target,
                                  const std::vector<double>& weights) {
  const auto per_sample = (pred - target).pow(2).flatten(1).mean(1);
  const auto w = torch::tensor(weights, torch::kFloat64).to(pred.device(), pred.scalar_type());
  return (per_sample * w).mean();
}

/// A per-sample value (an N×1 or N tensor) as one coefficient per batch row, for the core's
/// process formulas (process.hpp), which take one value per row (ops::axpby_rows).
inline std::vector<double> per_row(const torch::Tensor& v) {
  const auto d = v.to(torch::kCPU, torch::kFloat64).contiguous().view({-1});  // exact: every float is a double
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}
}  // namespace detail

/// One-step denoiser training (seed Part B §1.2.1; pure noise: §1.2.3).
class Denoising {
 public:
  explicit Denoising(double sigma = 0.5) : sigma_(sigma) {
    scoreflow::detail::require(std::isfinite(sigma) && sigma >= 0.0, "sigma", sigma, "must be finite and ≥ 0");
  }
  /// The §1.2.3 variant: the input is pure noise z = ε.
  static Denoising pure_noise() {
    Denoising d;
    d.pure_noise_ = true;
    return d;
  }
  [[nodiscard]] double sigma() const { return sigma_; }
  [[nodiscard]] bool is_pure_noise() const { return pure_noise_; }

  template <class Net>
  torch::Tensor operator()(Net& net, const Batch& b, TrainingRng& rng) const {
    static_assert(ImageNet<Net>, "Denoising needs a net with forward(x), e.g. UnconditionalUNet");
    detail::require_images("Denoising", b);
    const auto& x = b.images;
    const auto eps = rng.normal_like(x);
    const auto z = pure_noise_ ? eps : x + sigma_ * eps;
    return torch::mse_loss(net->forward(z), x);
  }

 private:
  double sigma_;
  bool pure_noise_ = false;
};

/// How the flow objective draws the time t of each sample (t = 0 noise, t = 1 data).
///
/// uniform: t ~ U[0, 1), the seed's Algorithm 1. logit_normal(m, s): the noise level 1 − t is
/// sigmoid(u), u ~ N(m, s²) — SD3's π_ln (Esser et al. 2024, §3.1 Eq. 19), with SD3's sign
/// convention (their t is our 1 − t): m > 0 spends more of the batch on noisy inputs, m = 0, s = 1
/// concentrates it on the middle of the path, where the velocity is hardest to predict. Drawing
/// t from π is the same objective as uniform t with the loss weighted by π(t) (§3.1), so this is
/// also the flow objective's loss weighting.
struct TimeSampling {
  enum class Kind { uniform, logit_normal };
  Kind kind = Kind::uniform;
  double location = 0.0;  ///< m (logit_normal)
  double scale = 1.0;     ///< s > 0 (logit_normal)

  static TimeSampling uniform() { return {}; }
  static TimeSampling logit_normal(double location = 0.0, double scale = 1.0) {
    scoreflow::detail::require(std::isfinite(location), "logit_normal location", location, "must be finite");
    scoreflow::detail::require(std::isfinite(scale) && scale > 0.0, "logit_normal scale", scale,
                               "must be finite and positive");
    return {Kind::logit_normal, location, scale};
  }
  /// N×1 times on the CPU, from the trainer's stream.
  torch::Tensor draw(std::int64_t n, TrainingRng& rng, const torch::TensorOptions& options) const {
    const auto cpu = options.device(torch::kCPU);
    if (kind == Kind::uniform) return rng.uniform(n, cpu);
    return torch::sigmoid(-(location + scale * rng.normal(n, cpu)));  // t = 1 − sigmoid(u)
  }
};

/// Flow matching (seed Part B §2.2 Algorithm 1; with ClassDropout, §2.5 Algorithm 3).
template <class Cond = NoClass>
class FlowMatching {
 public:
  explicit FlowMatching(Cond condition = {}, TimeSampling time = {})
      : condition_(std::move(condition)), time_(time) {
    detail::check(condition_);
    if (time_.kind == TimeSampling::Kind::logit_normal)
      time_ = TimeSampling::logit_normal(time_.location, time_.scale);  // validates an aggregate-built one
  }
  [[nodiscard]] const Cond& condition() const { return condition_; }
  [[nodiscard]] const TimeSampling& time_sampling() const { return time_; }

  template <class Net>
  torch::Tensor operator()(Net& net, const Batch& b, TrainingRng& rng) const {
    detail::require_images("FlowMatching", b);
    const auto& x1 = b.images;
    const auto x0 = rng.normal_like(x1);
    // t is drawn on the CPU (TrainingRng always draws there), where each sample's value is read.
    const auto t_host = time_.draw(x1.size(0), rng, x1.options());  // N×1
    const auto xt = flow::forward(x1, detail::per_row(t_host), x0);
    const auto u = detail::call(net, xt, t_host.to(x1.device()), b, condition_, rng);
    return torch::mse_loss(u, x1 - x0);  // the velocity u = x₁ − x₀ of the path (process.hpp's flow)
  }

 private:
  Cond condition_;
  TimeSampling time_;
};

/// The weight of each timestep in the diffusion loss. uniform: the plain mean (Ho et al. 2020).
/// min_snr(γ): Min-SNR-γ (Hang et al. 2023, §3.4 Eq. 8 and its forms for each target): the
/// x₀-loss weight is min(SNR, γ), so ε-loss is weighted min(SNR, γ)/SNR and v-loss
/// min(SNR, γ)/(SNR + 1), SNR = ᾱ/(1 − ᾱ) — the low-noise steps stop dominating the gradient.
/// γ = 5 in the paper.
struct LossWeighting {
  std::optional<double> min_snr_gamma{};
  static LossWeighting uniform() { return {}; }
  static LossWeighting min_snr(double gamma = 5.0) {
    scoreflow::detail::require(std::isfinite(gamma) && gamma > 0.0, "min_snr gamma", gamma,
                               "must be finite and positive");
    return {gamma};
  }
  /// The weight of one sample at ᾱ for a net trained on `target`.
  [[nodiscard]] double weight(double alpha_bar, Parameterization target) const {
    if (!min_snr_gamma) return 1.0;
    if (alpha_bar >= 1.0) return target == Parameterization::sample ? *min_snr_gamma : 0.0;  // SNR = ∞: the limits
    const double snr = alpha_bar / (1.0 - alpha_bar), clipped = std::min(snr, *min_snr_gamma);
    switch (target) {
      case Parameterization::noise: return snr > 0.0 ? clipped / snr : 1.0;
      case Parameterization::velocity: return clipped / (snr + 1.0);
      case Parameterization::sample: return clipped;
    }
    return 1.0;
  }
};

/// Diffusion training on a NoiseSchedule (Ho et al. 2020, Algorithm 1): the net sees t/T and
/// predicts ε (the default, as DDPM and DeepFloyd IF), v or x₀ — the target parameterisation.
/// Sample with models::ddpm_predictor(net, target).
///
/// Why a target other than ε: ε-loss weights timestep t by SNR(t) relative to an x₀-loss, so the
/// high-noise steps, where the class and the digit's shape are decided, get almost no weight; at
/// ᾱ → 0 the ε̂ → x̂₀ conversion also divides the net's error by √ᾱ. v-loss is (1 + 1/SNR) × ε-loss:
/// the same optimum, better balanced, and stable at ᾱ → 0 (Salimans & Ho 2022, §4).
/// A small model trained briefly needs it.
template <class Cond = ClassDropout>
class DiffusionObjective {
 public:
  explicit DiffusionObjective(NoiseSchedule schedule = NoiseSchedule::cosine(), Cond condition = {},
                              Parameterization target = Parameterization::noise, LossWeighting weighting = {})
      : schedule_(std::move(schedule)), condition_(std::move(condition)), target_(target), weighting_(weighting) {
    detail::check(condition_);
    if (weighting_.min_snr_gamma) weighting_ = LossWeighting::min_snr(*weighting_.min_snr_gamma);  // validates
  }
  [[nodiscard]] const NoiseSchedule& schedule() const { return schedule_; }
  [[nodiscard]] const Cond& condition() const { return condition_; }
  [[nodiscard]] Parameterization target() const { return target_; }
  [[nodiscard]] const LossWeighting& weighting() const { return weighting_; }

  template <class Net>
  torch::Tensor operator()(Net& net, const Batch& b, TrainingRng& rng) const {
    detail::require_images("DiffusionObjective", b);
    const auto& x0 = b.images;
    const auto n = x0.size(0);
    const auto steps = static_cast<std::int64_t>(schedule_.size());
    const auto t = rng.integers(n, steps);  // CPU int64
    const auto eps = rng.normal_like(x0);
    const auto t_at = t.accessor<std::int64_t, 1>();
    std::vector<double> alpha_bar(static_cast<std::size_t>(n));  // each sample's ᾱ_t
    for (std::int64_t i = 0; i < n; ++i) alpha_bar[static_cast<std::size_t>(i)] = schedule_.alpha_bar(static_cast<int>(t_at[i]));
    const auto xt = diffusion::forward(x0, alpha_bar, eps);
    // The input convention of models::ddpm_predictor: the integer timestep as t/T.
    const auto time = (t.to(torch::kFloat64) / static_cast<double>(steps)).view({n, 1}).to(x0.options());
    const auto prediction = detail::call(net, xt, time, b, condition_, rng);
    const auto goal = target_ == Parameterization::noise    ? eps
                      : target_ == Parameterization::sample ? x0
                                                            : diffusion::velocity_from(eps, x0, alpha_bar);
    if (!weighting_.min_snr_gamma) return torch::mse_loss(prediction, goal);
    std::vector<double> w(alpha_bar.size());
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = weighting_.weight(alpha_bar[i], target_);
    return detail::weighted_mse(prediction, goal, w);
  }

 private:
  NoiseSchedule schedule_;
  Cond condition_;
  Parameterization target_;
  LossWeighting weighting_;
};

/// The former name: it trains every target, not only the noise.
template <class Cond = ClassDropout>
using DDPMNoise [[deprecated("use DiffusionObjective")]] = DiffusionObjective<Cond>;

}  // namespace scoreflow::training
