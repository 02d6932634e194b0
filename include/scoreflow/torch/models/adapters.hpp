#pragma once
// Trained LibTorch models as scoreflow denoisers (denoiser.hpp), ready for `scoreflow::Sampler`.
//
//   auto v = scoreflow::models::flow_velocity(class_unet);          // fn(x, FlowTime, c)
//   scoreflow::Sampler s{scoreflow::FlowSchedule<scoreflow::Euler>{scoreflow::FlowGrid::uniform(300)},
//                        scoreflow::ClassifierFree<torch::Tensor>{5.0, null_condition(40)},
//                        scoreflow::SinglePrompt<torch::Tensor>{one_hot(labels)}};
//   torch::Tensor images = s.sample(v, scoreflow::PureNoise<torch::Tensor>{torch::zeros({40, 1, 28, 28})}, gen);
//
//   flow_velocity(net)               velocity u_θ(x_t, t) of flow matching (seed Part B §2.3, §2.6):
//                                    FlowTime t → t as N×1; condition NoCondition (time-only
//                                    model, or a class model with all-zero c) or a one-hot N×K
//   ddpm_noise_predictor(net, T)     ε̂(x_t, t) of a DDPM-trained UNet: Timestep t → t/T as N×1
//   ddpm_predictor(net, kind, T)     the same for a UNet trained to predict v or x₀ instead
//   one_step_denoiser(net)           the seed's §1.2 denoiser D(z) ≈ x as a `sample` prediction
//
// Every call runs under torch::NoGradGuard with the module in eval() (BatchNorm uses its running
// statistics); the module's train/eval mode is restored afterwards, so sampling between training
// epochs does not disturb training. Inputs are moved to the model's device and dtype, outputs
// back to the input's, so a float64 or CPU-side sampler can drive a float32 CUDA model.
#include <concepts>
#include <cstdint>

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

/// One-hot float32 rows for integer labels in [0, num_classes): N → N×num_classes, on the
/// labels' device. A function object, so that an unqualified `one_hot(t)` under
/// `using namespace scoreflow::models` does not collide with at::one_hot found by ADL.
struct OneHotFn {
  torch::Tensor operator()(const torch::Tensor& labels, std::int64_t num_classes = 10) const {
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

/// The "no class" condition of classifier-free guidance (seed Part B §2.4): batch×num_classes zeros.
inline torch::Tensor null_condition(std::int64_t batch, std::int64_t num_classes = 10,
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

/// Length of the class vector a class-conditioned net expects (10 unless it says otherwise).
template <class Net>
std::int64_t num_classes(Net& net) {
  if constexpr (requires { { net->options().num_classes } -> std::convertible_to<std::int64_t>; })
    return net->options().num_classes;
  else
    return 10;
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

/// Velocity field u_θ(x_t, t) of a flow-matching UNet (seed Part B §2.3, §2.6).
template <class Net>
struct FlowVelocityFn {
  Net net;

  torch::Tensor operator()(const torch::Tensor& x, FlowTime t, NoCondition) requires TimeNet<Net> {
    detail::require_images("flow_velocity", x);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions& o) {
      return net->forward(xm, torch::full({xm.size(0), 1}, t.value, o));
    });
  }
  torch::Tensor operator()(const torch::Tensor& x, FlowTime t, NoCondition) requires ClassTimeNet<Net> {
    detail::require_images("flow_velocity", x);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions& o) {
      return net->forward(xm, torch::full({xm.size(0), 1}, t.value, o),
                          null_condition(xm.size(0), detail::num_classes(net), o));
    });
  }
  torch::Tensor operator()(const torch::Tensor& x, FlowTime t, const torch::Tensor& c) requires ClassTimeNet<Net> {
    detail::require_images("flow_velocity", x);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions& o) {
      return net->forward(xm, torch::full({xm.size(0), 1}, t.value, o), c.to(o));
    });
  }
  /// x (N images) under each of the k·N conditions c: k·N velocities (see SharedInputNet).
  torch::Tensor under_conditions(const torch::Tensor& x, FlowTime t, const torch::Tensor& c) requires SharedInputNet<Net> {
    detail::require_images("flow_velocity", x);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions& o) {
      return net->forward_under_conditions(xm, torch::full({1, 1}, t.value, o), c.to(o));
    });
  }
};

/// ε̂(x_t, t) of a UNet trained with the DDPM objective (training/objectives.hpp): the integer
/// timestep enters the model as t / train_steps.
template <class Net>
struct NoisePredictorFn {
  Net net;
  int train_steps;

  torch::Tensor operator()(const torch::Tensor& x, Timestep t, NoCondition) requires TimeNet<Net> {
    detail::require_images("ddpm_noise_predictor", x);
    const double s = scaled(t);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions& o) {
      return net->forward(xm, torch::full({xm.size(0), 1}, s, o));
    });
  }
  torch::Tensor operator()(const torch::Tensor& x, Timestep t, NoCondition) requires ClassTimeNet<Net> {
    detail::require_images("ddpm_noise_predictor", x);
    const double s = scaled(t);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions& o) {
      return net->forward(xm, torch::full({xm.size(0), 1}, s, o),
                          null_condition(xm.size(0), detail::num_classes(net), o));
    });
  }
  torch::Tensor operator()(const torch::Tensor& x, Timestep t, const torch::Tensor& c) requires ClassTimeNet<Net> {
    detail::require_images("ddpm_noise_predictor", x);
    const double s = scaled(t);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions& o) {
      return net->forward(xm, torch::full({xm.size(0), 1}, s, o), c.to(o));
    });
  }
  /// x (N images) under each of the k·N conditions c: k·N predictions (see SharedInputNet).
  torch::Tensor under_conditions(const torch::Tensor& x, Timestep t, const torch::Tensor& c) requires SharedInputNet<Net> {
    detail::require_images("ddpm_noise_predictor", x);
    const double s = scaled(t);
    return detail::run(net, x, [&](const torch::Tensor& xm, const torch::TensorOptions& o) {
      return net->forward_under_conditions(xm, torch::full({1, 1}, s, o), c.to(o));
    });
  }

 private:
  [[nodiscard]] double scaled(Timestep t) const {
    if (t.value < 0 || t.value >= train_steps)
      throw invalid_option(scoreflow::detail::concat("ddpm_noise_predictor: timestep = ", t.value,
                                                     ": must lie in [0, ", train_steps - 1, "]"));
    return static_cast<double>(t.value) / train_steps;
  }
};

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
  return denoiser(FlowVelocityFn<Net>{std::move(net)}, Parameterization::velocity);
}

/// DDPM noise predictor (Parameterization::noise) for a UNet trained on t/train_steps.
template <class Net>
  requires TimeNet<Net> || ClassTimeNet<Net>
Denoiser<NoisePredictorFn<Net>> ddpm_noise_predictor(Net net, int train_steps = 1000) {
  scoreflow::detail::require(train_steps >= 1, "train_steps", train_steps, "must be positive");
  return denoiser(NoisePredictorFn<Net>{std::move(net), train_steps}, Parameterization::noise);
}

/// A UNet trained with DDPMNoise{…, target}: the same t/train_steps input, its output declared as
/// `target` (noise, velocity or sample), so the sampler converts it (e.g. v → x̂₀, ε̂) itself.
template <class Net>
  requires TimeNet<Net> || ClassTimeNet<Net>
Denoiser<NoisePredictorFn<Net>> ddpm_predictor(Net net, Parameterization target, int train_steps = 1000) {
  scoreflow::detail::require(train_steps >= 1, "train_steps", train_steps, "must be positive");
  return denoiser(NoisePredictorFn<Net>{std::move(net), train_steps}, target);
}

/// One-step denoiser (Parameterization::sample): predicts clean data from its input.
template <class Net>
  requires ImageNet<Net>
Denoiser<OneStepFn<Net>> one_step_denoiser(Net net) {
  return denoiser(OneStepFn<Net>{std::move(net)}, Parameterization::sample);
}

}  // namespace scoreflow::models
