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
//   DiffusionObjective{schedule}  DDPM training (Ho et al. 2020, Alg. 1): t ~ U{0 … T−1},
//                             x_t = diffusion::forward(x₀, ᾱ_t, ε), model input t/T, loss ‖ε̂ − ε‖²;
//                             class dropout as above (use NoClass for a time-only net)
//   DiffusionObjective{schedule, cond, Parameterization::velocity}
//                             the same forward process, the net trained to predict
//                             v = diffusion::velocity_from(ε, x₀, ᾱ_t) (Salimans & Ho 2022, §4)
//                             or x₀ (Parameterization::sample)
//
// An objective is a callable (net, batch, rng) → scalar loss; the trainer (train_loop.hpp) runs any
// of them. The images are used as they come; the seed's MNIST models see values in [0, 1].
#include <cmath>
#include <cstdint>
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

/// Flow matching (seed Part B §2.2 Algorithm 1; with ClassDropout, §2.5 Algorithm 3).
template <class Cond = NoClass>
class FlowMatching {
 public:
  explicit FlowMatching(Cond condition = {}) : condition_(std::move(condition)) { detail::check(condition_); }
  [[nodiscard]] const Cond& condition() const { return condition_; }

  template <class Net>
  torch::Tensor operator()(Net& net, const Batch& b, TrainingRng& rng) const {
    detail::require_images("FlowMatching", b);
    const auto& x1 = b.images;
    const auto x0 = rng.normal_like(x1);
    // t is drawn on the CPU (TrainingRng always draws there), where each sample's value is read.
    const auto t_host = rng.uniform(x1.size(0), x1.options().device(torch::kCPU));  // N×1
    const auto xt = flow::forward(x1, detail::per_row(t_host), x0);
    const auto u = detail::call(net, xt, t_host.to(x1.device()), b, condition_, rng);
    return torch::mse_loss(u, x1 - x0);  // the velocity u = x₁ − x₀ of the path (process.hpp's flow)
  }

 private:
  Cond condition_;
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
                              Parameterization target = Parameterization::noise)
      : schedule_(std::move(schedule)), condition_(std::move(condition)), target_(target) {
    detail::check(condition_);
  }
  [[nodiscard]] const NoiseSchedule& schedule() const { return schedule_; }
  [[nodiscard]] const Cond& condition() const { return condition_; }
  [[nodiscard]] Parameterization target() const { return target_; }

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
    switch (target_) {
      case Parameterization::noise: return torch::mse_loss(prediction, eps);
      case Parameterization::sample: return torch::mse_loss(prediction, x0);
      case Parameterization::velocity:
        return torch::mse_loss(prediction, diffusion::velocity_from(eps, x0, alpha_bar));
    }
    throw invalid_option("DiffusionObjective: unknown target parameterization");
  }

 private:
  NoiseSchedule schedule_;
  Cond condition_;
  Parameterization target_;
};

/// The former name: it trains every target, not only the noise.
template <class Cond = ClassDropout>
using DDPMNoise [[deprecated("use DiffusionObjective")]] = DiffusionObjective<Cond>;

}  // namespace scoreflow::training
