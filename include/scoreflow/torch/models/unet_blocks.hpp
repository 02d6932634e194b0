#pragma once
// The building blocks of the CS180 Project 5B UNet (seed Part B §1.1 "Standard UNet Operations",
// §2.1 FCBlock), as LibTorch modules. Every layer keeps PyTorch's defaults (bias on, affine
// BatchNorm, exact-erf GELU), so parameter counts match the Python reference exactly:
//
//   Conv(i, o)      Conv2d 3×3, stride 1, pad 1 → BatchNorm2d → GELU          (same size)
//   DownConv(i, o)  Conv2d 3×3, stride 2, pad 1 → BatchNorm2d → GELU          (H → H/2)
//   UpConv(i, o)    ConvTranspose2d 4×4, stride 2, pad 1 → BatchNorm2d → GELU (H → 2H)
//   Flatten(k)      AvgPool2d(k) → GELU                                       (k×k → 1×1)
//   Unflatten(c, k) ConvTranspose2d k×k, stride k, pad 0 → BatchNorm2d → GELU (1×1 → k×k)
//   concat(a, b)    channel concatenation
//   ConvBlock(i, o) = Conv(i, o) → Conv(o, o)
//   DownBlock(i, o) = DownConv(i, o) → ConvBlock(o, o)
//   UpBlock(i, o)   = UpConv(i, o) → ConvBlock(o, o)
//   FCBlock(i, o)   = Linear(i, o) → GELU → Linear(o, o)
//
// Conv, UpConv, ConvBlock and UpBlock also have forward_joined(a, shared): the forward of
// concat(a, shared) where a holds k copies' worth of batch (k·N) and shared is the same N maps
// for every copy, whose part of the first layer is computed once (the UNet's skip connections
// when one image is evaluated under k conditions).
//
// Options are validated in the constructors (scoreflow::invalid_option names the parameter).
#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"

namespace scoreflow::models {

/// Input and output channels (or features) of a block.
struct BlockOptions {
  std::int64_t in_channels;
  std::int64_t out_channels;
};

namespace detail {
inline BlockOptions checked(const char* block, BlockOptions o) {
  if (o.in_channels <= 0)
    throw invalid_option(scoreflow::detail::concat(block, ": in_channels = ", o.in_channels, ": must be positive"));
  if (o.out_channels <= 0)
    throw invalid_option(scoreflow::detail::concat(block, ": out_channels = ", o.out_channels, ": must be positive"));
  return o;
}

/// Folds an eval-mode BatchNorm into the convolution before it (weights scaled along the output
/// axis: 0 for Conv2d, 1 for ConvTranspose2d), and leaves the BatchNorm as the identity
/// (γ = 1, β = 0, μ = 0, σ² = 1 − ε), so the state dict keeps its layout:
///   W' = W · γ/√(σ² + ε),  b' = (b − μ) · γ/√(σ² + ε) + β.
inline void fold_batchnorm_into(torch::Tensor& weight, torch::Tensor& bias, torch::nn::BatchNorm2dImpl& bn,
                                std::int64_t out_axis) {
  torch::NoGradGuard no_grad;
  const double eps = bn.options.eps();
  const auto scale = bn.weight / (bn.running_var + eps).sqrt();
  std::vector<std::int64_t> shape(static_cast<std::size_t>(weight.dim()), 1);
  shape[static_cast<std::size_t>(out_axis)] = scale.numel();
  weight.mul_(scale.view(shape));
  bias.copy_((bias - bn.running_mean) * scale + bn.bias);
  bn.weight.fill_(1.0);
  bn.bias.fill_(0.0);
  bn.running_mean.fill_(0.0);
  bn.running_var.fill_(1.0 - eps);
}

/// Checks the inputs of a forward_joined: a is k·N×Ca×H×W, shared is N×Cs×H×W, Ca + Cs = channels.
inline void require_joined(const char* block, const torch::Tensor& a, const torch::Tensor& shared,
                           std::int64_t channels) {
  if (a.dim() != 4 || shared.dim() != 4 || a.size(1) + shared.size(1) != channels || shared.size(0) == 0 ||
      a.size(0) % shared.size(0) != 0 || a.size(2) != shared.size(2) || a.size(3) != shared.size(3))
    throw shape_error(scoreflow::detail::concat(block, ": cannot join ", a.sizes(), " with ", shared.sizes(),
                                                " (expected k·N×Ca×H×W and N×Cs×H×W with Ca + Cs = ", channels,
                                                ")"));
}

/// per_copy (k·N×C×H×W) + shared (N×C×H×W) added to each of the k copies, in place.
inline torch::Tensor add_to_each_copy(torch::Tensor per_copy, const torch::Tensor& shared) {
  const auto n = shared.size(0);
  per_copy.view({per_copy.size(0) / n, n, per_copy.size(1), per_copy.size(2), per_copy.size(3)})
      .add_(shared.unsqueeze(0));
  return per_copy;
}

inline void require_image(const char* block, const torch::Tensor& x, std::int64_t channels) {
  if (x.dim() != 4 || x.size(1) != channels)
    throw shape_error(scoreflow::detail::concat(block, ": expected input N×", channels, "×H×W, got ", x.sizes()));
}
}  // namespace detail

/// Conv: Conv2d 3×3 (stride 1, pad 1) → BatchNorm2d → GELU; keeps H×W (seed Part B §1.1).
class ConvImpl : public torch::nn::Module {
 public:
  explicit ConvImpl(BlockOptions options) : options_(detail::checked("Conv", options)) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(options_.in_channels,
                                                                              options_.out_channels, 3)
                                                         .stride(1)
                                                         .padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(options_.out_channels));
  }
  ConvImpl(std::int64_t in_channels, std::int64_t out_channels) : ConvImpl(BlockOptions{in_channels, out_channels}) {}

  torch::Tensor forward(const torch::Tensor& x) {
    detail::require_image("Conv", x, options_.in_channels);
    return torch::gelu(folded_ ? conv(x) : bn(conv(x)));
  }
  /// forward(concat(a, [shared, …, shared])) for a k·N×Ca×H×W and shared N×Cs×H×W, with the
  /// shared part convolved once: the convolution is linear in its input channels, so
  /// W ∗ [a; s] + b = (W_a ∗ a + b) + W_s ∗ s. Equal to the concatenated call up to float rounding.
  torch::Tensor forward_joined(const torch::Tensor& a, const torch::Tensor& shared) {
    detail::require_joined("Conv", a, shared, options_.in_channels);
    if (a.size(0) == shared.size(0)) return forward(torch::cat({a, shared}, 1));
    const auto& w = conv->weight;
    const auto ca = a.size(1);
    auto pre = detail::add_to_each_copy(torch::conv2d(a, w.narrow(1, 0, ca), conv->bias, {1, 1}, {1, 1}),
                                        torch::conv2d(shared, w.narrow(1, ca, w.size(1) - ca), {}, {1, 1}, {1, 1}));
    return torch::gelu(folded_ ? pre : bn(pre));
  }
  [[nodiscard]] const BlockOptions& options() const { return options_; }
  /// Inference only: BatchNorm's running statistics move into the convolution and forward skips
  /// the BatchNorm from then on (see models::fold_batchnorm in inference.hpp).
  void fold_batchnorm() {
    if (!folded_) detail::fold_batchnorm_into(conv->weight, conv->bias, *bn, 0);
    folded_ = true;
  }
  [[nodiscard]] bool batchnorm_folded() const { return folded_; }

  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};

 private:
  BlockOptions options_;
  bool folded_ = false;
};
TORCH_MODULE(Conv);

/// DownConv: Conv2d 3×3 (stride 2, pad 1) → BatchNorm2d → GELU; halves H×W (seed Part B §1.1).
class DownConvImpl : public torch::nn::Module {
 public:
  explicit DownConvImpl(BlockOptions options) : options_(detail::checked("DownConv", options)) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(options_.in_channels,
                                                                              options_.out_channels, 3)
                                                         .stride(2)
                                                         .padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(options_.out_channels));
  }
  DownConvImpl(std::int64_t in_channels, std::int64_t out_channels)
      : DownConvImpl(BlockOptions{in_channels, out_channels}) {}

  torch::Tensor forward(const torch::Tensor& x) {
    detail::require_image("DownConv", x, options_.in_channels);
    return torch::gelu(folded_ ? conv(x) : bn(conv(x)));
  }
  [[nodiscard]] const BlockOptions& options() const { return options_; }
  /// Inference only: BatchNorm's running statistics move into the convolution and forward skips
  /// the BatchNorm from then on (see models::fold_batchnorm in inference.hpp).
  void fold_batchnorm() {
    if (!folded_) detail::fold_batchnorm_into(conv->weight, conv->bias, *bn, 0);
    folded_ = true;
  }
  [[nodiscard]] bool batchnorm_folded() const { return folded_; }

  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};

 private:
  BlockOptions options_;
  bool folded_ = false;
};
TORCH_MODULE(DownConv);

/// UpConv: ConvTranspose2d 4×4 (stride 2, pad 1) → BatchNorm2d → GELU; doubles H×W (seed Part B §1.1).
class UpConvImpl : public torch::nn::Module {
 public:
  explicit UpConvImpl(BlockOptions options) : options_(detail::checked("UpConv", options)) {
    conv = register_module("conv", torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(
                                                                  options_.in_channels, options_.out_channels, 4)
                                                                  .stride(2)
                                                                  .padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(options_.out_channels));
  }
  UpConvImpl(std::int64_t in_channels, std::int64_t out_channels) : UpConvImpl(BlockOptions{in_channels, out_channels}) {}

  torch::Tensor forward(const torch::Tensor& x) {
    detail::require_image("UpConv", x, options_.in_channels);
    return torch::gelu(folded_ ? conv(x) : bn(conv(x)));
  }
  /// forward(concat(a, [shared, …, shared])) with the shared part transposed-convolved once
  /// (as ConvImpl::forward_joined; the input channels are the weight's first axis here).
  torch::Tensor forward_joined(const torch::Tensor& a, const torch::Tensor& shared) {
    detail::require_joined("UpConv", a, shared, options_.in_channels);
    if (a.size(0) == shared.size(0)) return forward(torch::cat({a, shared}, 1));
    const auto& w = conv->weight;
    const auto ca = a.size(1);
    auto pre = detail::add_to_each_copy(
        torch::conv_transpose2d(a, w.narrow(0, 0, ca), conv->bias, {2, 2}, {1, 1}),
        torch::conv_transpose2d(shared, w.narrow(0, ca, w.size(0) - ca), {}, {2, 2}, {1, 1}));
    return torch::gelu(folded_ ? pre : bn(pre));
  }
  [[nodiscard]] const BlockOptions& options() const { return options_; }
  /// Inference only: BatchNorm's running statistics move into the convolution and forward skips
  /// the BatchNorm from then on (see models::fold_batchnorm in inference.hpp).
  void fold_batchnorm() {
    if (!folded_) detail::fold_batchnorm_into(conv->weight, conv->bias, *bn, 1);
    folded_ = true;
  }
  [[nodiscard]] bool batchnorm_folded() const { return folded_; }

  torch::nn::ConvTranspose2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};

 private:
  BlockOptions options_;
  bool folded_ = false;
};
TORCH_MODULE(UpConv);

/// Flatten: AvgPool2d(k) → GELU; k×k → 1×1 (seed Part B §1.1; k = 7 for MNIST). No parameters.
class FlattenImpl : public torch::nn::Module {
 public:
  explicit FlattenImpl(std::int64_t kernel_size = 7) : kernel_size_(kernel_size) {
    scoreflow::detail::require(kernel_size_ > 0, "Flatten: kernel_size", kernel_size_, "must be positive");
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (x.dim() != 4 || x.size(2) != kernel_size_ || x.size(3) != kernel_size_)
      throw shape_error(scoreflow::detail::concat("Flatten: expected input N×C×", kernel_size_, "×", kernel_size_,
                                                  ", got ", x.sizes()));
    return torch::gelu(torch::avg_pool2d(x, {kernel_size_, kernel_size_}));
  }
  [[nodiscard]] std::int64_t kernel_size() const { return kernel_size_; }

 private:
  std::int64_t kernel_size_;
};
TORCH_MODULE(Flatten);

/// Unflatten: ConvTranspose2d k×k (stride k, pad 0) → BatchNorm2d → GELU; 1×1 → k×k, channels
/// kept (seed Part B §1.1; k = 7 for MNIST).
class UnflattenImpl : public torch::nn::Module {
 public:
  explicit UnflattenImpl(std::int64_t channels, std::int64_t kernel_size = 7)
      : channels_(channels), kernel_size_(kernel_size) {
    scoreflow::detail::require(channels_ > 0, "Unflatten: channels", channels_, "must be positive");
    scoreflow::detail::require(kernel_size_ > 0, "Unflatten: kernel_size", kernel_size_, "must be positive");
    conv = register_module("conv", torch::nn::ConvTranspose2d(
                                       torch::nn::ConvTranspose2dOptions(channels_, channels_, kernel_size_)
                                           .stride(kernel_size_)
                                           .padding(0)));
    bn = register_module("bn", torch::nn::BatchNorm2d(channels_));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (x.dim() != 4 || x.size(1) != channels_ || x.size(2) != 1 || x.size(3) != 1)
      throw shape_error(scoreflow::detail::concat("Unflatten: expected input N×", channels_, "×1×1, got ", x.sizes()));
    return torch::gelu(folded_ ? conv(x) : bn(conv(x)));
  }
  /// Inference only, as ConvImpl::fold_batchnorm.
  void fold_batchnorm() {
    if (!folded_) detail::fold_batchnorm_into(conv->weight, conv->bias, *bn, 1);
    folded_ = true;
  }
  [[nodiscard]] bool batchnorm_folded() const { return folded_; }

  torch::nn::ConvTranspose2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};

 private:
  std::int64_t channels_, kernel_size_;
  bool folded_ = false;
};
TORCH_MODULE(Unflatten);

/// Concat: channel-wise concatenation of two N×C×H×W maps of equal N, H, W (seed Part B §1.1).
inline torch::Tensor concat(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.dim() != 4 || b.dim() != 4 || a.size(0) != b.size(0) || a.size(2) != b.size(2) || a.size(3) != b.size(3))
    throw shape_error(scoreflow::detail::concat("concat: cannot join ", a.sizes(), " and ", b.sizes(),
                                                " along channels"));
  return torch::cat({a, b}, 1);
}

/// ConvBlock(i, o) = Conv(i, o) → Conv(o, o) (seed Part B §1.1).
class ConvBlockImpl : public torch::nn::Module {
 public:
  explicit ConvBlockImpl(BlockOptions options) : options_(detail::checked("ConvBlock", options)) {
    conv1 = register_module("conv1", Conv(options_.in_channels, options_.out_channels));
    conv2 = register_module("conv2", Conv(options_.out_channels, options_.out_channels));
  }
  ConvBlockImpl(std::int64_t in_channels, std::int64_t out_channels)
      : ConvBlockImpl(BlockOptions{in_channels, out_channels}) {}
  torch::Tensor forward(const torch::Tensor& x) { return conv2(conv1(x)); }
  /// forward(concat(a, [shared, …, shared])), see ConvImpl::forward_joined.
  torch::Tensor forward_joined(const torch::Tensor& a, const torch::Tensor& shared) {
    return conv2(conv1->forward_joined(a, shared));
  }
  [[nodiscard]] const BlockOptions& options() const { return options_; }

  Conv conv1{nullptr}, conv2{nullptr};

 private:
  BlockOptions options_;
};
TORCH_MODULE(ConvBlock);

/// DownBlock(i, o) = DownConv(i, o) → ConvBlock(o, o) (seed Part B §1.1).
class DownBlockImpl : public torch::nn::Module {
 public:
  explicit DownBlockImpl(BlockOptions options) : options_(detail::checked("DownBlock", options)) {
    down = register_module("down", DownConv(options_.in_channels, options_.out_channels));
    block = register_module("block", ConvBlock(options_.out_channels, options_.out_channels));
  }
  DownBlockImpl(std::int64_t in_channels, std::int64_t out_channels)
      : DownBlockImpl(BlockOptions{in_channels, out_channels}) {}
  torch::Tensor forward(const torch::Tensor& x) { return block(down(x)); }
  [[nodiscard]] const BlockOptions& options() const { return options_; }

  DownConv down{nullptr};
  ConvBlock block{nullptr};

 private:
  BlockOptions options_;
};
TORCH_MODULE(DownBlock);

/// UpBlock(i, o) = UpConv(i, o) → ConvBlock(o, o) (seed Part B §1.1).
class UpBlockImpl : public torch::nn::Module {
 public:
  explicit UpBlockImpl(BlockOptions options) : options_(detail::checked("UpBlock", options)) {
    up = register_module("up", UpConv(options_.in_channels, options_.out_channels));
    block = register_module("block", ConvBlock(options_.out_channels, options_.out_channels));
  }
  UpBlockImpl(std::int64_t in_channels, std::int64_t out_channels)
      : UpBlockImpl(BlockOptions{in_channels, out_channels}) {}
  torch::Tensor forward(const torch::Tensor& x) { return block(up(x)); }
  /// forward(concat(a, [shared, …, shared])), see UpConvImpl::forward_joined.
  torch::Tensor forward_joined(const torch::Tensor& a, const torch::Tensor& shared) {
    return block(up->forward_joined(a, shared));
  }
  [[nodiscard]] const BlockOptions& options() const { return options_; }

  UpConv up{nullptr};
  ConvBlock block{nullptr};

 private:
  BlockOptions options_;
};
TORCH_MODULE(UpBlock);

/// FCBlock(i, o) = Linear(i, o) → GELU → Linear(o, o): embeds a conditioning vector (the time
/// t ∈ [0, 1] as N×1, or a one-hot class as N×10) for the UNet (seed Part B §2.1, §2.4).
class FCBlockImpl : public torch::nn::Module {
 public:
  explicit FCBlockImpl(BlockOptions options) : options_(detail::checked("FCBlock", options)) {
    fc1 = register_module("fc1", torch::nn::Linear(options_.in_channels, options_.out_channels));
    fc2 = register_module("fc2", torch::nn::Linear(options_.out_channels, options_.out_channels));
  }
  FCBlockImpl(std::int64_t in_features, std::int64_t out_features)
      : FCBlockImpl(BlockOptions{in_features, out_features}) {}
  torch::Tensor forward(const torch::Tensor& x) {
    if (x.dim() != 2 || x.size(1) != options_.in_channels)
      throw shape_error(scoreflow::detail::concat("FCBlock: expected input N×", options_.in_channels, ", got ",
                                                  x.sizes()));
    return fc2(torch::gelu(fc1(x)));
  }
  [[nodiscard]] const BlockOptions& options() const { return options_; }

  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  BlockOptions options_;
};
TORCH_MODULE(FCBlock);

}  // namespace scoreflow::models
