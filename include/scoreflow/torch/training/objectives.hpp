#pragma once
// Training objectives of seed Part B, one per model, all built from the same few pieces: the
// trainer's random stream (TrainingRng), a conditioning policy (NoClass / ClassDropout) and MSE.
//
//   Denoising{0.5}            seed §1.2.1: z = x + σε, loss ‖D(z) − x‖²
//   Denoising::pure_noise()   seed §1.2.3: z = ε, loss ‖D(z) − x‖²
//   FlowMatching{}            seed §2.2 (time-only): x₀ ~ N(0, I), x₁ data, t ~ U[0, 1],
//                             x_t = (1 − t) x₀ + t x₁, loss ‖u_θ(x_t, t) − (x₁ − x₀)‖²
//   FlowMatching{ClassDropout{}}  seed §2.5: the same with a one-hot class, zeroed with
//                             probability p_uncond = 0.1 per sample (classifier-free training)
//   DDPMNoise{schedule}       DDPM ε-training (Ho et al. 2020, Alg. 1): t ~ U{0 … T−1},
//                             x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε, model input t/T, loss ‖ε̂ − ε‖²;
//                             class dropout as above (use NoClass for a time-only net)
//   DDPMNoise{schedule, cond, Parameterization::velocity}
//                             the same forward process, the net trained to predict
//                             v = √ᾱ ε − √(1 − ᾱ) x₀ (Salimans & Ho 2022) or x₀ (`sample`)
//
// An objective is a callable (net, batch, rng) → scalar loss; the trainer (train_loop.hpp) runs any
// of them. The images are used as they come; the seed's MNIST models see values in [0, 1].
#include <cmath>
#include <cstdint>
#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_schedule.hpp"
#include "scoreflow/torch/models/adapters.hpp"

namespace scoreflow::training {

using models::ClassTimeNet;
using models::ImageNet;
using models::TimeNet;

/// One training batch: images B×C×H×W (float) and integer labels B (may be undefined for
/// objectives that do not use classes).
struct TrainingBatch {
  torch::Tensor images;
  torch::Tensor labels;
};

/// The trainer's random stream: a CPU torch generator, so a seed gives the same noise, times and
/// class drops on every device, and its state can be checkpointed.
class TrainingRng {
 public:
  explicit TrainingRng(std::uint64_t seed = 0) : gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

  /// N(0, I) shaped, typed and placed like x.
  torch::Tensor normal_like(const torch::Tensor& x) {
    return torch::randn(x.sizes(), gen_, torch::TensorOptions().dtype(x.scalar_type())).to(x.device());
  }
  /// U[0, 1) as n×1 with the given dtype/device.
  torch::Tensor uniform(std::int64_t n, const torch::TensorOptions& options) {
    return torch::rand({n, 1}, gen_, torch::TensorOptions().dtype(options.dtype())).to(options.device());
  }
  /// Uniform integers in [0, high) as an int64 tensor of n (on the CPU).
  torch::Tensor integers(std::int64_t n, std::int64_t high) {
    return torch::randint(high, {n}, gen_, torch::TensorOptions().dtype(torch::kLong));
  }

  /// The generator state (a CPU byte tensor), for checkpoints.
  [[nodiscard]] torch::Tensor state() const {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    return gen_.get_state();
  }
  void set_state(const torch::Tensor& state) {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    gen_.set_state(state.to(torch::kCPU));
  }

 private:
  mutable at::Generator gen_;
};

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

inline void require_images(const char* objective, const TrainingBatch& b) {
  if (!b.images.defined() || b.images.dim() != 4 || b.images.size(0) == 0)
    throw shape_error(scoreflow::detail::concat(objective, ": batch images must be a non-empty B×C×H×W tensor, got ",
                                                b.images.defined() ? b.images.sizes() : c10::IntArrayRef{}));
}

/// net(x, t) for a time-only net.
template <class Net>
torch::Tensor call(Net& net, const torch::Tensor& x, const torch::Tensor& t, const TrainingBatch&, NoClass,
                   TrainingRng&) {
  static_assert(TimeNet<Net>, "NoClass conditioning needs a net with forward(x, t), e.g. TimeConditionalUNet");
  return net->forward(x, t);
}

/// net(x, t, c) with c = one-hot(labels), each row zeroed with probability p_uncond.
template <class Net>
torch::Tensor call(Net& net, const torch::Tensor& x, const torch::Tensor& t, const TrainingBatch& b,
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

/// Broadcast an N×1 per-sample value over N×C×H×W.
inline torch::Tensor per_sample(const torch::Tensor& v) { return v.view({v.size(0), 1, 1, 1}); }
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
  torch::Tensor operator()(Net& net, const TrainingBatch& b, TrainingRng& rng) const {
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
  torch::Tensor operator()(Net& net, const TrainingBatch& b, TrainingRng& rng) const {
    detail::require_images("FlowMatching", b);
    const auto& x1 = b.images;
    const auto x0 = rng.normal_like(x1);
    const auto t = rng.uniform(x1.size(0), x1.options());  // N×1
    const auto tt = detail::per_sample(t);
    const auto xt = (1.0 - tt) * x0 + tt * x1;
    const auto u = detail::call(net, xt, t, b, condition_, rng);
    return torch::mse_loss(u, x1 - x0);
  }

 private:
  Cond condition_;
};

/// DDPM training on a NoiseSchedule (Ho et al. 2020, Algorithm 1): the net sees t/T and predicts
/// ε (the default, as DDPM and DeepFloyd IF), v or x₀. Sample with models::ddpm_predictor(net, target).
///
/// Why a target other than ε: ε-loss weights timestep t by SNR(t) relative to an x₀-loss, so the
/// high-noise steps, where the class and the digit's shape are decided, get almost no weight; at
/// ᾱ → 0 the ε̂ → x̂₀ conversion also divides the net's error by √ᾱ. v-loss is (1 + 1/SNR) × ε-loss:
/// the same optimum, better balanced, and stable at ᾱ → 0. A small model trained briefly needs it.
template <class Cond = ClassDropout>
class DDPMNoise {
 public:
  explicit DDPMNoise(NoiseSchedule schedule = NoiseSchedule::cosine(), Cond condition = {},
                     Parameterization target = Parameterization::noise)
      : schedule_(std::move(schedule)), condition_(std::move(condition)), target_(target) {
    detail::check(condition_);
    const auto& a = schedule_.alphas_cumprod();
    auto table = torch::tensor(a, torch::TensorOptions().dtype(torch::kFloat64));
    sqrt_ab_ = table.sqrt();
    sqrt_one_minus_ab_ = (1.0 - table).sqrt();
  }
  [[nodiscard]] const NoiseSchedule& schedule() const { return schedule_; }
  [[nodiscard]] const Cond& condition() const { return condition_; }
  [[nodiscard]] Parameterization target() const { return target_; }

  template <class Net>
  torch::Tensor operator()(Net& net, const TrainingBatch& b, TrainingRng& rng) const {
    detail::require_images("DDPMNoise", b);
    const auto& x0 = b.images;
    const auto n = x0.size(0);
    const auto steps = static_cast<std::int64_t>(schedule_.size());
    const auto t = rng.integers(n, steps);  // CPU int64
    const auto eps = rng.normal_like(x0);
    const auto a = detail::per_sample(sqrt_ab_.index_select(0, t).to(x0.options()));
    const auto s = detail::per_sample(sqrt_one_minus_ab_.index_select(0, t).to(x0.options()));
    const auto xt = a * x0 + s * eps;
    const auto time = (t.to(torch::kFloat64) / static_cast<double>(steps)).view({n, 1}).to(x0.options());
    const auto prediction = detail::call(net, xt, time, b, condition_, rng);
    switch (target_) {
      case Parameterization::noise: return torch::mse_loss(prediction, eps);
      case Parameterization::sample: return torch::mse_loss(prediction, x0);
      case Parameterization::velocity: return torch::mse_loss(prediction, a * eps - s * x0);
    }
    throw invalid_option("DDPMNoise: unknown target parameterization");
  }

 private:
  NoiseSchedule schedule_;
  Cond condition_;
  Parameterization target_;
  torch::Tensor sqrt_ab_, sqrt_one_minus_ab_;
};

}  // namespace scoreflow::training
