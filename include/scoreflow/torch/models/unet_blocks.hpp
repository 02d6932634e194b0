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
// Conv, DownConv, UpConv and Unflatten are one module template, ConvBnGeluImpl<Kind> (Kind: Conv2d
// or ConvTranspose2d; the geometry and the name in messages are constructor arguments), and the
// one place that folds BatchNorm for inference (BatchNormFoldable, used by models::fold_batchnorm
// in inference.hpp). They, ConvBlock and UpBlock also have forward_joined(a, shared): the forward
// of concat(a, shared) where a holds k copies' worth of batch (k·N) and shared is the same N maps
// for every copy, whose part of the first layer is computed once (the UNet's skip connections
// when one image is evaluated under k conditions).
//
// The normalisation is the seed's BatchNorm by default. BlockOptions::norm selects GroupNorm
// instead (Wu & He 2018): it normalises each sample over groups of channels, so a block computes
// the same function in training and in evaluation and for any batch composition. BatchNorm's
// running statistics are one average over every noise level the batches mixed, while at sampling
// time all images of a batch share one noise level; GroupNorm has no such statistics (the
// measurement on the seed's flow model is in the README, "Training options"). The seed's
// deliverables stay on BatchNorm.
//
// Options are validated in the constructors (scoreflow::invalid_option names the parameter).
#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"

namespace scoreflow::models {

/// The normalisation after each convolution: the seed's BatchNorm2d, or GroupNorm with `groups`
/// groups of channels (Wu & He 2018, Eq. 1 with S_i the channels of i's group and i's sample).
struct Normalization {
  enum class Kind { batch, group };
  Kind kind = Kind::batch;
  std::int64_t groups = 8;  ///< GroupNorm only; must divide every block's channel count
  static Normalization batch() { return {}; }
  static Normalization group(std::int64_t groups = 8) { return {Kind::group, groups}; }
  [[nodiscard]] bool is_group() const { return kind == Kind::group; }
};

/// Input and output channels (or features) of a block, and its normalisation.
struct BlockOptions {
  std::int64_t in_channels;
  std::int64_t out_channels;
  Normalization norm{};
};

/// Kernel size, stride and padding of a block's square convolution.
struct ConvGeometry {
  std::int64_t kernel, stride, padding;
};

namespace detail {
inline BlockOptions checked(const char* block, BlockOptions o) {
  if (o.in_channels <= 0)
    throw invalid_option(scoreflow::detail::concat(block, ": in_channels = ", o.in_channels, ": must be positive"));
  if (o.out_channels <= 0)
    throw invalid_option(scoreflow::detail::concat(block, ": out_channels = ", o.out_channels, ": must be positive"));
  if (o.norm.is_group() && (o.norm.groups <= 0 || o.out_channels % o.norm.groups != 0))
    throw invalid_option(scoreflow::detail::concat(block, ": GroupNorm groups = ", o.norm.groups,
                                                   ": must be positive and divide out_channels = ", o.out_channels));
  return o;
}

/// Folds an eval-mode BatchNorm into the convolution before it. At inference BatchNorm is a fixed
/// per-channel affine map y = γ·(x − μ)/√(σ² + ε) + β (Ioffe & Szegedy 2015, §3.1), so it
/// composes with the linear convolution into one (Jacob et al. 2018, §3.2 "batch normalization
/// folding"): with s = γ/√(σ² + ε) along the weight's output axis (0 for Conv2d, 1 for
/// ConvTranspose2d),
///   W' = W · s,  b' = (b − μ) · s + β.
/// The BatchNorm is left as the identity (γ = 1, β = 0, μ = 0, σ² = 1 − ε) rather than removed,
/// so the state dict keeps its keys and a folded net still loads into an unfolded one.
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

/// A block's input: N×channels×H×W, or N×channels×size×size when size > 0.
inline void require_image(const char* block, const torch::Tensor& x, std::int64_t channels, std::int64_t size) {
  if (x.dim() == 4 && x.size(1) == channels && (size == 0 || (x.size(2) == size && x.size(3) == size))) return;
  if (size == 0)
    throw shape_error(scoreflow::detail::concat(block, ": expected input N×", channels, "×H×W, got ", x.sizes()));
  throw shape_error(
      scoreflow::detail::concat(block, ": expected input N×", channels, "×", size, "×", size, ", got ", x.sizes()));
}

/// The two convolution kinds of the blocks: the module, its functional form (forward_joined
/// convolves slices of the weight) and where the weight keeps its channels.
struct Conv2dKind {
  using Module = torch::nn::Conv2d;
  static constexpr std::int64_t in_axis = 1, out_axis = 0;  ///< weight: out × in × k × k
  static Module make(const BlockOptions& o, const ConvGeometry& g) {
    return Module(
        torch::nn::Conv2dOptions(o.in_channels, o.out_channels, g.kernel).stride(g.stride).padding(g.padding));
  }
  static torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                             const ConvGeometry& g) {
    return torch::conv2d(x, w, b, {g.stride, g.stride}, {g.padding, g.padding});
  }
};
struct ConvTranspose2dKind {
  using Module = torch::nn::ConvTranspose2d;
  static constexpr std::int64_t in_axis = 0, out_axis = 1;  ///< weight: in × out × k × k
  static Module make(const BlockOptions& o, const ConvGeometry& g) {
    return Module(torch::nn::ConvTranspose2dOptions(o.in_channels, o.out_channels, g.kernel)
                      .stride(g.stride)
                      .padding(g.padding));
  }
  static torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                             const ConvGeometry& g) {
    return torch::conv_transpose2d(x, w, b, {g.stride, g.stride}, {g.padding, g.padding});
  }
};
}  // namespace detail

/// What models::fold_batchnorm (inference.hpp) looks for among a net's modules: a block that can
/// move its BatchNorm into the layer before it. Any module may implement it.
class BatchNormFoldable {
 public:
  /// Inference only: BatchNorm's running statistics move into the convolution and forward skips
  /// the BatchNorm from then on. Folding twice is a no-op.
  virtual void fold_batchnorm() = 0;
  [[nodiscard]] virtual bool batchnorm_folded() const = 0;

 protected:
  BatchNormFoldable() = default;
  BatchNormFoldable(const BatchNormFoldable&) = default;
  BatchNormFoldable& operator=(const BatchNormFoldable&) = default;
  ~BatchNormFoldable() = default;
};

/// Convolution (Kind: detail::Conv2dKind or detail::ConvTranspose2dKind) → BatchNorm2d → GELU,
/// the layer every seed block is made of (Part B §1.1); Conv, DownConv, UpConv and Unflatten
/// differ only in the kind, the geometry and the name in their messages. Submodules "conv" then
/// "bn", in that order: saved weight files are keyed by these names. With
/// BlockOptions::norm = Normalization::group(g) the second submodule is "gn", a GroupNorm, and
/// folding (an inference rewrite of BatchNorm only) leaves the block as it is.
template <class Kind>
class ConvBnGeluImpl : public torch::nn::Module, public BatchNormFoldable {
 public:
  /// input_size > 0: the block only takes input_size × input_size maps (Unflatten: 1 × 1).
  ConvBnGeluImpl(const char* name, BlockOptions options, ConvGeometry geometry, std::int64_t input_size = 0)
      : name_(name), options_(detail::checked(name, options)), geometry_(geometry), input_size_(input_size) {
    conv = register_module("conv", Kind::make(options_, geometry_));
    if (options_.norm.is_group())
      gn = register_module("gn", torch::nn::GroupNorm(torch::nn::GroupNormOptions(options_.norm.groups,
                                                                                  options_.out_channels)));
    else
      bn = register_module("bn", torch::nn::BatchNorm2d(options_.out_channels));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    detail::require_image(name_, x, options_.in_channels, input_size_);
    return torch::gelu(normalized(conv(x)));
  }
  /// forward(concat(a, [shared, …, shared])) for a k·N×Ca×H×W and shared N×Cs×H×W, with the
  /// shared part convolved once: a convolution (transposed or not) is linear in its input
  /// channels, so W ∗ [a; s] + b = (W_a ∗ a + b) + W_s ∗ s, W_a and W_s the weight's slices along
  /// its input axis. Equal to the concatenated call up to float rounding. The UNet uses it for
  /// the skip connections when one image is evaluated under k conditions.
  torch::Tensor forward_joined(const torch::Tensor& a, const torch::Tensor& shared) {
    detail::require_joined(name_, a, shared, options_.in_channels);
    if (a.size(0) == shared.size(0)) return forward(torch::cat({a, shared}, 1));
    const auto& w = conv->weight;
    const auto ca = a.size(1), in = Kind::in_axis;
    auto pre = detail::add_to_each_copy(Kind::apply(a, w.narrow(in, 0, ca), conv->bias, geometry_),
                                        Kind::apply(shared, w.narrow(in, ca, w.size(in) - ca), {}, geometry_));
    return torch::gelu(normalized(pre));
  }
  [[nodiscard]] const BlockOptions& options() const { return options_; }
  [[nodiscard]] const ConvGeometry& geometry() const { return geometry_; }

  /// A no-op on a GroupNorm block: GroupNorm's statistics belong to each input, not to training.
  void fold_batchnorm() override {
    if (!bn) return;
    if (!folded_) detail::fold_batchnorm_into(conv->weight, conv->bias, *bn, Kind::out_axis);
    folded_ = true;
  }
  /// True once folded, and always on a GroupNorm block (nothing to fold).
  [[nodiscard]] bool batchnorm_folded() const override { return folded_ || !bn; }

  typename Kind::Module conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};  ///< the seed's normalisation (null with GroupNorm)
  torch::nn::GroupNorm gn{nullptr};    ///< Normalization::group (null with BatchNorm)

 private:
  torch::Tensor normalized(const torch::Tensor& y) { return gn ? gn(y) : folded_ ? y : bn(y); }

  const char* name_;
  BlockOptions options_;
  ConvGeometry geometry_;
  std::int64_t input_size_;
  bool folded_ = false;
};

/// Conv: Conv2d 3×3 (stride 1, pad 1) → BatchNorm2d → GELU; keeps H×W (seed Part B §1.1).
class ConvImpl : public ConvBnGeluImpl<detail::Conv2dKind> {
 public:
  explicit ConvImpl(BlockOptions options) : ConvBnGeluImpl("Conv", options, {3, 1, 1}) {}
  ConvImpl(std::int64_t in_channels, std::int64_t out_channels) : ConvImpl(BlockOptions{in_channels, out_channels}) {}
};
TORCH_MODULE(Conv);

/// DownConv: Conv2d 3×3 (stride 2, pad 1) → BatchNorm2d → GELU; halves H×W (seed Part B §1.1).
class DownConvImpl : public ConvBnGeluImpl<detail::Conv2dKind> {
 public:
  explicit DownConvImpl(BlockOptions options) : ConvBnGeluImpl("DownConv", options, {3, 2, 1}) {}
  DownConvImpl(std::int64_t in_channels, std::int64_t out_channels)
      : DownConvImpl(BlockOptions{in_channels, out_channels}) {}
};
TORCH_MODULE(DownConv);

/// UpConv: ConvTranspose2d 4×4 (stride 2, pad 1) → BatchNorm2d → GELU; doubles H×W (seed Part B §1.1).
class UpConvImpl : public ConvBnGeluImpl<detail::ConvTranspose2dKind> {
 public:
  explicit UpConvImpl(BlockOptions options) : ConvBnGeluImpl("UpConv", options, {4, 2, 1}) {}
  UpConvImpl(std::int64_t in_channels, std::int64_t out_channels)
      : UpConvImpl(BlockOptions{in_channels, out_channels}) {}
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
class UnflattenImpl : public ConvBnGeluImpl<detail::ConvTranspose2dKind> {
 public:
  explicit UnflattenImpl(std::int64_t channels, std::int64_t kernel_size = 7, Normalization norm = {})
      : ConvBnGeluImpl("Unflatten", checked(channels, kernel_size, norm), {kernel_size, kernel_size, 0}, 1) {}
  [[nodiscard]] std::int64_t kernel_size() const { return geometry().kernel; }

 private:
  static BlockOptions checked(std::int64_t channels, std::int64_t kernel_size, Normalization norm) {
    scoreflow::detail::require(channels > 0, "Unflatten: channels", channels, "must be positive");
    scoreflow::detail::require(kernel_size > 0, "Unflatten: kernel_size", kernel_size, "must be positive");
    return {channels, channels, norm};
  }
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
    conv1 = register_module("conv1", Conv(options_));
    conv2 = register_module("conv2", Conv(BlockOptions{options_.out_channels, options_.out_channels, options_.norm}));
  }
  ConvBlockImpl(std::int64_t in_channels, std::int64_t out_channels)
      : ConvBlockImpl(BlockOptions{in_channels, out_channels}) {}
  torch::Tensor forward(const torch::Tensor& x) { return conv2(conv1(x)); }
  /// forward(concat(a, [shared, …, shared])), see ConvBnGeluImpl::forward_joined.
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
    down = register_module("down", DownConv(options_));
    block = register_module("block", ConvBlock(BlockOptions{options_.out_channels, options_.out_channels, options_.norm}));
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
    up = register_module("up", UpConv(options_));
    block = register_module("block", ConvBlock(BlockOptions{options_.out_channels, options_.out_channels, options_.norm}));
  }
  UpBlockImpl(std::int64_t in_channels, std::int64_t out_channels)
      : UpBlockImpl(BlockOptions{in_channels, out_channels}) {}
  torch::Tensor forward(const torch::Tensor& x) { return block(up(x)); }
  /// forward(concat(a, [shared, …, shared])), see ConvBnGeluImpl::forward_joined.
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
