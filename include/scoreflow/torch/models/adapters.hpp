#pragma once
// Trained LibTorch models as scoreflow denoisers (denoiser.hpp), ready for `scoreflow::Sampler`.
//
//   auto v = scoreflow::models::flow_velocity(class_unet);          // fn(x, FlowTime, c)
//   const auto k = scoreflow::models::num_classes(class_unet);       // from its UNetOptions
//   scoreflow::Sampler s{scoreflow::FlowSchedule<scoreflow::Euler>{scoreflow::FlowGrid::uniform(300)},
//                        scoreflow::ClassifierFree<torch::Tensor>{5.0, null_condition(40, k)},
//                        scoreflow::SinglePrompt<torch::Tensor>{one_hot(labels, k)}};
//   torch::Tensor images = s.sample(v, scoreflow::PureNoise<torch::Tensor>{torch::zeros({40, 1, 28, 28})}, gen);
//
//   flow_velocity(net)               velocity u_θ(x_t, t) of flow matching (seed Part B §2.3, §2.6):
//                                    FlowTime t → t as N×1; condition NoCondition (time-only
//                                    model, or a class model with all-zero c) or a one-hot N×K
//   ddpm_noise_predictor(net, T)     ε̂(x_t, t) of a DDPM-trained UNet: Timestep t → t/T as N×1
//   ddpm_predictor(net, kind, T)     the same for a UNet trained to predict v or x₀ instead
//   one_step_denoiser(net)           the seed's §1.2 denoiser D(z) ≈ x as a `sample` prediction
//
// The first three are one template, TimeConditionedFn<Net, TimeInput>: the model kinds differ
// only in the time input (FlowTimeInput, DiffusionTimeInput), the net kinds only in the forward
// called. K, the class count, is the net's own (num_classes(net), from UNetOptions).
//
// Every call runs under torch::NoGradGuard with the module in eval() (BatchNorm uses its running
// statistics); the module's train/eval mode is restored afterwards, so sampling between training
// epochs does not disturb training. Inputs are moved to the model's device and dtype, outputs
// back to the input's, so a float64 or CPU-side sampler can drive a float32 CUDA model.
#include <concepts>
#include <cstdint>
#include <utility>

#include <torch/nn/module.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "scoreflow/denoiser.hpp"
#include "scoreflow/errors.hpp"
#include "scoreflow/process/prediction.hpp"
#include "scoreflow/process/time_grid.hpp"
#include "scoreflow/torch/tensor.hpp"

namespace scoreflow::models {

/// A module holder (or shared_ptr) whose forward takes x only.
template <class Net>
concept ImageNet = requires(Net& net, const torch::Tensor& x) {
  { net->forward(x) } -> std::convertible_to<torch::Tensor>;
  { net->is_training() } -> std::convertible_to<bool>;
};
/// ... whose forward takes (x, t).
template <class Net>
concept TimeNet = requires(Net& net, const torch::Tensor& x) {
  { net->forward(x, x) } -> std::convertible_to<torch::Tensor>;
  { net->is_training() } -> std::convertible_to<bool>;
};
/// ... whose forward takes (x, t, c).
template <class Net>
concept ClassTimeNet = requires(Net& net, const torch::Tensor& x) {
  { net->forward(x, x, x) } -> std::convertible_to<torch::Tensor>;
  { net->is_training() } -> std::convertible_to<bool>;
};

/// ... a class-conditioned net that evaluates each image under several conditions in one call
/// (ClassConditionalUNet::forward_under_conditions); its adapters then offer under_conditions
/// (scoreflow::SharesInputAcrossConditions), which classifier-free guidance uses.
template <class Net>
concept SharedInputNet = ClassTimeNet<Net> && requires(Net& net, const torch::Tensor& x) {
  { net->forward_under_conditions(x, x, x) } -> std::convertible_to<torch::Tensor>;
};

/// ... a class-conditioned net that says how long its class vector is (options().num_classes,
/// as the seed's UNets do): its adapters then accept NoCondition, the all-zero vector.
template <class Net>
concept DeclaresClasses = requires(Net& net) {
  { net->options().num_classes } -> std::convertible_to<std::int64_t>;
};

/// Length of the class vector of a class-conditioned net, from its own options (UNetOptions).
template <DeclaresClasses Net>
std::int64_t num_classes(Net& net) {
  return net->options().num_classes;
}

/// One-hot float32 rows for integer labels in [0, num_classes): N → N×num_classes, on the
/// labels' device (the class input c of seed Part B §2.4; num_classes(net) for a model's own
/// count). A function object, so that an unqualified `one_hot(t, k)` under
/// `using namespace scoreflow::models` does not collide with at::one_hot found by ADL.
struct OneHotFn {
  torch::Tensor operator()(const torch::Tensor& labels, std::int64_t num_classes) const {
    scoreflow::detail::require(num_classes > 0, "num_classes", num_classes, "must be positive");
    if (!labels.defined() || labels.dim() != 1)
      throw shape_error(scoreflow::detail::concat("one_hot: labels must be a 1-D tensor, got ",
                                                  labels.defined() ? labels.sizes() : c10::IntArrayRef{}));
    const auto l = labels.to(torch::kLong);
    if (l.numel() > 0) {
      const auto lo = l.min().item<std::int64_t>(), hi = l.max().item<std::int64_t>();
      if (lo < 0 || hi >= num_classes)
        throw invalid_option(scoreflow::detail::concat("one_hot: label ", lo < 0 ? lo : hi, " lies outside [0, ",
                                                       num_classes - 1, "]"));
    }
    auto out =
        torch::zeros({l.size(0), num_classes}, torch::TensorOptions().dtype(torch::kFloat32).device(l.device()));
    return out.scatter_(1, l.unsqueeze(1), 1.0);
  }
};
inline constexpr OneHotFn one_hot{};

/// The "no class" condition of classifier-free guidance: batch×num_classes zeros. The seed
/// (Part B §2.4–2.5) trains the class UNet with c zeroed for a random 10% of each batch, so the
/// same net is also the unconditional model of Ho & Salimans (2022), §3.2.
inline torch::Tensor null_condition(std::int64_t batch, std::int64_t num_classes,
                                    torch::TensorOptions options = torch::kFloat32) {
  scoreflow::detail::require(batch > 0, "batch", batch, "must be positive");
  scoreflow::detail::require(num_classes > 0, "num_classes", num_classes, "must be positive");
  return torch::zeros({batch, num_classes}, options);
}

namespace detail {
/// Eval mode and no autograd for one model call; the previous mode comes back on exit.
template <class Net>
class EvalScope {
 public:
  explicit EvalScope(Net& net) : net_(net), was_training_(net->is_training()) {
    if (was_training_) net_->eval();
  }
  ~EvalScope() {
    if (was_training_) net_->train();
  }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  Net& net_;
  bool was_training_;
  torch::NoGradGuard no_grad_;
};

/// Device/dtype of the model's first parameter (CPU float32 for a parameterless model).
template <class Net>
torch::TensorOptions model_options(Net& net) {
  for (const auto& p : net->parameters()) return p.options().requires_grad(false);
  return torch::TensorOptions().dtype(torch::kFloat32);
}

inline void require_images(const char* who, const torch::Tensor& x) {
  if (!x.defined() || x.dim() != 4)
    throw shape_error(scoreflow::detail::concat(who, ": expected images N×C×H×W, got ",
                                                x.defined() ? x.sizes() : c10::IntArrayRef{}));
}

/// Runs `call(x_model, options)` in eval/no-grad on the model's device and dtype, and returns
/// the result with x's device and dtype.
template <class Net, class Call>
torch::Tensor run(Net& net, const torch::Tensor& x, Call&& call) {
  EvalScope<Net> scope(net);
  const auto o = model_options(net);
  return call(x.to(o), o).to(x.options());
}
}  // namespace detail

/// The time input of a flow-matching UNet: the seed (Part B §2.2) trains u_θ(x_t, t) on
/// t ∈ [0, 1] itself, so FlowTime goes in as it is.
struct FlowTimeInput {
  using time_type = FlowTime;
  static constexpr const char* adapter = "flow_velocity";
  [[nodiscard]] double operator()(FlowTime t) const { return t.value; }
};

/// The time input of a DDPM-trained UNet (training/objectives.hpp): the integer timestep of
/// Ho et al. (2020), an index in [0, T), enters as t / T, so the seed's UNet, built for
/// t ∈ [0, 1], serves both objectives. Timesteps outside the training range are rejected.
struct DiffusionTimeInput {
  using time_type = Timestep;
  static constexpr const char* adapter = "ddpm_predictor";
  int train_steps;
  [[nodiscard]] double operator()(Timestep t) const {
    if (t.value < 0 || t.value >= train_steps)
      throw invalid_option(scoreflow::detail::concat(adapter, ": timestep = ", t.value, ": must lie in [0, ",
                                                     train_steps - 1, "]"));
    return static_cast<double>(t.value) / train_steps;
  }
};

/// A time-conditioned net (TimeNet, or ClassTimeNet with class vector c) as a denoiser function
/// fn(x, time, condition); TimeInput (FlowTimeInput or DiffusionTimeInput) says what the time
/// argument is and how it becomes the net's N×1 input t. One body serves every net kind:
///   - NoCondition: forward(x, t) of a time-only net; forward(x, t, 0) of a class net, whose
///     all-zero c is the unconditional model of classifier-free guidance (null_condition);
///   - a tensor c (one-hot N×K, or batch 1, broadcast by the net): forward(x, t, c);
///   - under_conditions(x, t, c) with c of k·N rows: forward_under_conditions (SharedInputNet),
///     the encoder once per image, which classifier-free guidance uses.
template <class Net, class TimeInput>
struct TimeConditionedFn {
  using Time = typename TimeInput::time_type;
  Net net;
  TimeInput time_input;

  torch::Tensor operator()(const torch::Tensor& x, Time t, NoCondition)
    requires TimeNet<Net> || (ClassTimeNet<Net> && DeclaresClasses<Net>)
  {
    return call(x, t, TimeRows::per_image, [&](const auto& xm, const auto& tm, const auto& o) {
      if constexpr (TimeNet<Net>)
        return net->forward(xm, tm);
      else
        return net->forward(xm, tm, null_condition(xm.size(0), num_classes(net), o));
    });
  }
  torch::Tensor operator()(const torch::Tensor& x, Time t, const torch::Tensor& c) requires ClassTimeNet<Net> {
    return call(x, t, TimeRows::per_image, [&](const auto& xm, const auto& tm, const auto& o) {
      return net->forward(xm, tm, c.to(o));
    });
  }
  /// x (N images) under each of the k·N conditions c: k·N answers (see SharedInputNet).
  torch::Tensor under_conditions(const torch::Tensor& x, Time t, const torch::Tensor& c) requires SharedInputNet<Net> {
    return call(x, t, TimeRows::one, [&](const auto& xm, const auto& tm, const auto& o) {
      return net->forward_under_conditions(xm, tm, c.to(o));
    });
  }

 private:
  /// The net's t: N×1 (one row per image), or 1×1, which the net broadcasts over its k·N rows.
  enum class TimeRows { per_image, one };

  /// Checks x and maps the time (both throw before the net is touched), then runs
  /// forward(x, t, options) through detail::run: eval, no-grad, the model's device and dtype.
  template <class Forward>
  torch::Tensor call(const torch::Tensor& x, Time t, TimeRows rows, Forward&& forward) {
    detail::require_images(TimeInput::adapter, x);
    const double value = time_input(t);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions& o) {
      return forward(xm, torch::full({rows == TimeRows::one ? 1 : xm.size(0), 1}, value, o), o);
    });
  }
};

/// Velocity field u_θ(x_t, t) of a flow-matching UNet (seed Part B §2.3, §2.6).
template <class Net>
using FlowVelocityFn = TimeConditionedFn<Net, FlowTimeInput>;

/// The output (ε̂, v̂ or x̂₀, as trained by training::DiffusionObjective) of a diffusion UNet: the
/// timestep enters as t / T.
template <class Net>
using DiffusionPredictorFn = TimeConditionedFn<Net, DiffusionTimeInput>;
/// The former name: the adapter serves every target, not only the noise.
template <class Net>
using NoisePredictorFn [[deprecated("use DiffusionPredictorFn")]] = DiffusionPredictorFn<Net>;

/// The one-step denoiser D(z) ≈ x of seed Part B §1.2 (time ignored).
template <class Net>
struct OneStepFn {
  Net net;

  template <class Time>
  torch::Tensor operator()(const torch::Tensor& x, Time, NoCondition) requires ImageNet<Net> {
    detail::require_images("one_step_denoiser", x);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions&) { return net->forward(xm); });
  }
};

/// Flow-matching velocity denoiser (Parameterization::velocity): u = x₁ − x₀ (seed Part B §2).
template <class Net>
  requires TimeNet<Net> || ClassTimeNet<Net>
Denoiser<FlowVelocityFn<Net>> flow_velocity(Net net) {
  return denoiser(FlowVelocityFn<Net>{std::move(net), {}}, Parameterization::velocity);
}

/// A UNet trained with the DDPM objective of training/objectives.hpp on t/train_steps, its output
/// declared as `target` (noise, velocity or sample), so the sampler converts it (e.g. v → x̂₀, ε̂;
/// Salimans & Ho 2022, §4) itself.
template <class Net>
  requires TimeNet<Net> || ClassTimeNet<Net>
Denoiser<DiffusionPredictorFn<Net>> ddpm_predictor(Net net, Parameterization target, int train_steps = 1000) {
  scoreflow::detail::require(train_steps >= 1, "train_steps", train_steps, "must be positive");
  return denoiser(DiffusionPredictorFn<Net>{std::move(net), {train_steps}}, target);
}

/// DDPM noise predictor ε̂(x_t, t) (Parameterization::noise; Ho et al. 2020, §3.2).
template <class Net>
  requires TimeNet<Net> || ClassTimeNet<Net>
Denoiser<DiffusionPredictorFn<Net>> ddpm_noise_predictor(Net net, int train_steps = 1000) {
  return ddpm_predictor(std::move(net), Parameterization::noise, train_steps);
}

/// One-step denoiser (Parameterization::sample): predicts clean data from its input.
template <class Net>
  requires ImageNet<Net>
Denoiser<OneStepFn<Net>> one_step_denoiser(Net net) {
  return denoiser(OneStepFn<Net>{std::move(net)}, Parameterization::sample);
}

}  // namespace scoreflow::models
