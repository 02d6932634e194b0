#pragma once
// The CS180 Project 5B UNets (seed Part B §1.1, §2.1, §2.4) as LibTorch modules.
//
//   x  N×1×28×28 ──ConvBlock(1,D)──► e1 D×28×28 ──DownBlock(D,D)──► e2 D×14×14
//      ──DownBlock(D,2D)──► e3 2D×7×7 ──Flatten──► b 2D×1×1 ──Unflatten(2D)──► u0 2D×7×7
//   [conditioning: u0 ← c1·u0 + t1]
//   cat(u0, e3) 4D×7×7 ──UpBlock(4D,D)──► u1 D×14×14            [conditioning: u1 ← c2·u1 + t2]
//   cat(u1, e2) 2D×14×14 ──UpBlock(2D,D)──► u2 D×28×28
//   cat(u2, e1) 2D×28×28 ──ConvBlock(2D,D)──► Conv2d 3×3 pad 1 (D→1) ──► output N×1×28×28
//
//   UnconditionalUNet     forward(x)         seed §1.1; D = 128 has 7,891,073 parameters
//   TimeConditionalUNet   forward(x, t)      seed §2.1; u0 ← u0·fc1_t(t), u1 ← u1·fc2_t(t);
//                                            D = 64 has 1,996,417 parameters
//   ClassConditionalUNet  forward(x, t, c)   seed §2.4; u0 ← fc1_c(c)·u0 + fc1_t(t),
//                                            u1 ← fc2_c(c)·u1 + fc2_t(t); D = 64 has 2,019,201
//                         forward_under_conditions(x, t, c): each image under k conditions (c: k·N
//                                            rows), the encoder once per image (CFG's fast path)
//
// t is N×1 (or N) in [0, 1]; c is N×num_classes (one-hot; all zeros = unconditional). A t or c
// with batch 1 is broadcast over the batch. image_size must be divisible by 4: the bottleneck
// is image_size/4 (7 for MNIST), the Flatten/Unflatten kernel.
#include <cstdint>
#include <optional>

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/models/unet_blocks.hpp"

namespace scoreflow::models {

struct UNetOptions {
  std::int64_t in_channels = 1;   ///< image channels (1 for MNIST); the output has as many
  std::int64_t hidden = 128;      ///< D, the seed's "hidden dimension"
  std::int64_t image_size = 28;   ///< H = W; divisible by 4
  std::int64_t num_classes = 10;  ///< length of the class vector (class-conditioned UNet only): the
                                  ///< seed's 10 MNIST digits (Part B §2.4); the adapters and the
                                  ///< examples read it from here (models::num_classes)
  Normalization norm{};           ///< the seed's BatchNorm, or Normalization::group(g) (unet_blocks.hpp);
                                  ///< g must divide hidden
};

namespace detail {
inline UNetOptions checked(const char* model, UNetOptions o) {
  auto positive = [&](const char* name, std::int64_t v) {
    if (v <= 0) throw invalid_option(scoreflow::detail::concat(model, ": ", name, " = ", v, ": must be positive"));
  };
  positive("in_channels", o.in_channels);
  positive("hidden", o.hidden);
  positive("image_size", o.image_size);
  positive("num_classes", o.num_classes);
  if (o.norm.is_group() && (o.norm.groups <= 0 || o.hidden % o.norm.groups != 0))
    throw invalid_option(scoreflow::detail::concat(model, ": GroupNorm groups = ", o.norm.groups,
                                                   ": must be positive and divide hidden = ", o.hidden));
  if (o.image_size % 4 != 0)
    throw invalid_option(scoreflow::detail::concat(model, ": image_size = ", o.image_size,
                                                   ": must be divisible by 4 (two 2× downsamplings)"));
  return o;
}

/// A per-sample conditioning input (t: N×1, c: N×K) as float of x's dtype/device, broadcast
/// to `batch` rows (it must have `batch` rows or 1).
inline torch::Tensor condition_input(const char* model, const char* name, const torch::Tensor& v,
                                     std::int64_t features, std::int64_t batch, const torch::TensorOptions& options) {
  if (!v.defined()) throw shape_error(scoreflow::detail::concat(model, ": ", name, " is undefined"));
  torch::Tensor out = v;
  if (features == 1 && out.dim() == 1) out = out.unsqueeze(1);
  if (out.dim() != 2 || out.size(1) != features || (out.size(0) != batch && out.size(0) != 1))
    throw shape_error(scoreflow::detail::concat(model, ": ", name, " must be N×", features, " with N = ", batch,
                                                " (or 1), got ", v.sizes()));
  out = out.to(options);
  if (out.size(0) != batch) out = out.expand({batch, features});
  return out;
}

/// The input images checked: N×C×S×S.
inline const torch::Tensor& require_input(const UNetOptions& o, const torch::Tensor& x) {
  const auto s = o.image_size;
  if (!x.defined() || x.dim() != 4 || x.size(1) != o.in_channels || x.size(2) != s || x.size(3) != s)
    throw shape_error(scoreflow::detail::concat("UNet: expected input N×", o.in_channels, "×", s, "×", s, ", got ",
                                                x.defined() ? x.sizes() : c10::IntArrayRef{}));
  return x;
}

/// Per-channel modulation of the two decoder maps: u ← scale·u + shift (undefined = identity).
struct Modulation {
  torch::Tensor scale0, shift0;  ///< for u0 (N×2D×1×1)
  torch::Tensor scale1, shift1;  ///< for u1 (N×D×1×1)
};

inline torch::Tensor modulate(torch::Tensor u, const torch::Tensor& scale, const torch::Tensor& shift) {
  if (scale.defined()) u = u * scale;
  if (shift.defined()) u = u + shift;
  return u;
}
}  // namespace detail

/// The UNet body shared by the three models (seed Part B §1.1): encoder, bottleneck, decoder,
/// with a hook that modulates u0 and u1 (§2.1, §2.4).
class UNetBackboneImpl : public torch::nn::Module {
 public:
  explicit UNetBackboneImpl(UNetOptions options) : options_(detail::checked("UNet", options)) {
    const auto c = options_.in_channels, d = options_.hidden, k = options_.image_size / 4;
    const auto& n = options_.norm;
    in_block = register_module("in_block", ConvBlock(BlockOptions{c, d, n}));
    down1 = register_module("down1", DownBlock(BlockOptions{d, d, n}));
    down2 = register_module("down2", DownBlock(BlockOptions{d, 2 * d, n}));
    flatten = register_module("flatten", Flatten(k));
    unflatten = register_module("unflatten", Unflatten(2 * d, k, n));
    up1 = register_module("up1", UpBlock(BlockOptions{4 * d, d, n}));
    up2 = register_module("up2", UpBlock(BlockOptions{2 * d, d, n}));
    out_block = register_module("out_block", ConvBlock(BlockOptions{2 * d, d, n}));
    out_conv = register_module("out_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(d, c, 3).padding(1)));
  }

  /// The output for x with the decoder modulated by m. With copies = k > 1 the modulation has
  /// k·N rows and each image is decoded under k of them (condition-major, k·N outputs, equal to
  /// forward([x, …, x], m) up to float rounding): the encoder, the bottleneck and the skip
  /// connections' share of the decoder's first layers run once per image, not k times.
  torch::Tensor forward(const torch::Tensor& x, const detail::Modulation& m = {}, std::int64_t copies = 1) {
    detail::require_input(options_, x);
    scoreflow::detail::require(copies >= 1, "UNet: copies", copies, "must be positive");
    for (const auto* v : {&m.scale0, &m.shift0, &m.scale1, &m.shift1})
      if (v->defined() && v->size(0) != copies * x.size(0))
        throw shape_error(scoreflow::detail::concat("UNet: a modulation of ", v->size(0), " rows for ", x.size(0),
                                                    " images × ", copies, " copies"));
    auto e1 = in_block(x);
    auto e2 = down1(e1);
    auto e3 = down2(e2);
    auto bottleneck = unflatten(flatten(e3));  // depends on x only
    if (copies > 1) bottleneck = bottleneck.repeat({copies, 1, 1, 1});
    auto u0 = detail::modulate(bottleneck, m.scale0, m.shift0);
    auto u1 = detail::modulate(up1->forward_joined(u0, e3), m.scale1, m.shift1);
    auto u2 = up2->forward_joined(u1, e2);
    return out_conv(out_block->forward_joined(u2, e1));
  }
  [[nodiscard]] const UNetOptions& options() const { return options_; }

  ConvBlock in_block{nullptr};
  DownBlock down1{nullptr}, down2{nullptr};
  Flatten flatten{nullptr};
  Unflatten unflatten{nullptr};
  UpBlock up1{nullptr}, up2{nullptr};
  ConvBlock out_block{nullptr};
  torch::nn::Conv2d out_conv{nullptr};

 private:
  UNetOptions options_;
};
TORCH_MODULE(UNetBackbone);

/// The unconditional UNet (seed Part B §1.1): x ↦ same-shaped output. Used as the one-step
/// denoiser (§1.2) and the pure-noise denoiser (§1.2.3).
class UnconditionalUNetImpl : public torch::nn::Module {
 public:
  explicit UnconditionalUNetImpl(UNetOptions options = {}) {
    backbone = register_module("backbone", UNetBackbone(options));
  }
  torch::Tensor forward(const torch::Tensor& x) { return backbone(x); }
  [[nodiscard]] const UNetOptions& options() const { return backbone->options(); }

  UNetBackbone backbone{nullptr};
};
TORCH_MODULE(UnconditionalUNet);

/// The time-conditioned UNet u_θ(x_t, t) of flow matching (seed Part B §2.1): fc1_t = FCBlock(1, 2D)
/// and fc2_t = FCBlock(1, D) scale u0 and u1 channel-wise.
class TimeConditionalUNetImpl : public torch::nn::Module {
 public:
  explicit TimeConditionalUNetImpl(UNetOptions options = {.hidden = 64}) {
    backbone = register_module("backbone", UNetBackbone(options));
    const auto d = backbone->options().hidden;
    fc1_t = register_module("fc1_t", FCBlock(1, 2 * d));
    fc2_t = register_module("fc2_t", FCBlock(1, d));
  }
  /// x: N×C×S×S, t: N×1 (or N) with t ∈ [0, 1].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) {
    detail::require_input(options(), x);
    const auto time = detail::condition_input("TimeConditionalUNet", "t", t, 1, x.size(0), x.options());
    detail::Modulation m;
    m.scale0 = fc1_t(time).unsqueeze(-1).unsqueeze(-1);
    m.scale1 = fc2_t(time).unsqueeze(-1).unsqueeze(-1);
    return backbone(x, m);
  }
  [[nodiscard]] const UNetOptions& options() const { return backbone->options(); }

  UNetBackbone backbone{nullptr};
  FCBlock fc1_t{nullptr}, fc2_t{nullptr};
};
TORCH_MODULE(TimeConditionalUNet);

/// The class-conditioned UNet u_θ(x_t, t, c) (seed Part B §2.4): fc1_c = FCBlock(K, 2D) and
/// fc2_c = FCBlock(K, D) scale, the time blocks shift: u0 ← c1·u0 + t1, u1 ← c2·u1 + t2. An
/// all-zero c is the unconditional model of classifier-free guidance.
class ClassConditionalUNetImpl : public torch::nn::Module {
 public:
  explicit ClassConditionalUNetImpl(UNetOptions options = {.hidden = 64}) {
    backbone = register_module("backbone", UNetBackbone(options));
    const auto d = backbone->options().hidden, k = backbone->options().num_classes;
    fc1_t = register_module("fc1_t", FCBlock(1, 2 * d));
    fc2_t = register_module("fc2_t", FCBlock(1, d));
    fc1_c = register_module("fc1_c", FCBlock(k, 2 * d));
    fc2_c = register_module("fc2_c", FCBlock(k, d));
  }
  /// x: N×C×S×S, t: N×1 (or N) in [0, 1], c: N×K (one-hot, or zeros for "no class").
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) {
    detail::require_input(options(), x);
    return backbone(x, modulation(t, c, x.size(0), x.options()), 1);
  }
  /// Each of the N images of x under k conditions at once: c is k·N×K, condition-major (rows
  /// j·N … j·N + N − 1 are the j-th condition of images 0 … N − 1), t has k·N rows or 1. The
  /// k·N outputs equal forward([x, …, x], t, c) up to float rounding; the encoder sees x once.
  /// Classifier-free guidance (k = 2: unconditional, conditional) costs about 0.78× the FLOPs of
  /// the batched call for D = 64 (models::flow_velocity exposes this as under_conditions).
  torch::Tensor forward_under_conditions(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) {
    const auto n = detail::require_input(options(), x).size(0);
    if (n == 0 || !c.defined() || c.dim() != 2 || c.size(0) == 0 || c.size(0) % n != 0)
      throw shape_error(scoreflow::detail::concat("ClassConditionalUNet::forward_under_conditions: c must be k·N×",
                                                  options().num_classes, " with N = ", n, " images and k ≥ 1, got ",
                                                  c.defined() ? c.sizes() : c10::IntArrayRef{}));
    return backbone(x, modulation(t, c, c.size(0), x.options()), c.size(0) / n);
  }
  [[nodiscard]] const UNetOptions& options() const { return backbone->options(); }

  UNetBackbone backbone{nullptr};
  FCBlock fc1_t{nullptr}, fc2_t{nullptr}, fc1_c{nullptr}, fc2_c{nullptr};

 private:
  detail::Modulation modulation(const torch::Tensor& t, const torch::Tensor& c, std::int64_t rows,
                                const torch::TensorOptions& o) {
    const auto time = detail::condition_input("ClassConditionalUNet", "t", t, 1, rows, o);
    const auto cls = detail::condition_input("ClassConditionalUNet", "c", c, options().num_classes, rows, o);
    auto as_map = [](const torch::Tensor& v) { return v.unsqueeze(-1).unsqueeze(-1); };
    detail::Modulation m;
    m.scale0 = as_map(fc1_c(cls));
    m.shift0 = as_map(fc1_t(time));
    m.scale1 = as_map(fc2_c(cls));
    m.shift1 = as_map(fc2_t(time));
    return m;
  }
};
TORCH_MODULE(ClassConditionalUNet);

/// Number of trainable parameters (elements) of a module.
inline std::int64_t parameter_count(const torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace scoreflow::models
