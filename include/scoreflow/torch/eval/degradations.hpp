#pragma once
// What the evaluator classifier (evaluator.hpp) is trained on besides clean real images:
//  - Augmentation: random affine and elastic distortions of real images (Simard, Steinkraus &
//    Platt 2003, "Best practices for convolutional neural networks applied to visual document
//    analysis", ICDAR, §2; LeCun et al. 1998, "Gradient-based learning applied to document
//    recognition", Proc. IEEE, §III-C, trained on distorted digits), plus mild pixel noise;
//  - RejectTraining / reject_examples: degraded real images for the reject class — strong Gaussian
//    blur, broken strokes, blends of two digits of different classes, scribbles and noise.
// The degradations are public so that a measurement can apply the same ones to held-out digits.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include <torch/nn.h>

#include "scoreflow/errors.hpp"

namespace scoreflow {

// All draw from LibTorch's global generator (train_classifier seeds it) on the images' device.

/// Separable Gaussian blur of images [N,1,H,W] with one standard deviation (in pixels) per image
/// (`sigma` [N], each > 0), zero padding (the background of MNIST-style images is 0).
inline torch::Tensor gaussian_blur(const torch::Tensor& images, const torch::Tensor& sigma) {
  if (images.dim() != 4 || images.size(1) != 1)
    throw shape_error(detail::concat("gaussian_blur: images must be [N, 1, H, W]; got ", detail::shape_text(images.sizes())));
  const auto n = images.size(0);
  if (sigma.dim() != 1 || sigma.size(0) != n)
    throw shape_error(detail::concat("gaussian_blur: need one sigma per image ([", n, "]); got ", detail::shape_text(sigma.sizes())));
  if (n == 0) return images;
  const double max_sigma = sigma.max().item<double>(), min_sigma = sigma.min().item<double>();
  detail::require(min_sigma > 0 && std::isfinite(max_sigma), "gaussian_blur sigma", min_sigma, "must be positive and finite");
  const auto radius = std::min<std::int64_t>(static_cast<std::int64_t>(std::ceil(3 * max_sigma)), std::max(images.size(2), images.size(3)) - 1);
  const auto offsets = torch::arange(-radius, radius + 1, images.options().dtype(torch::kFloat32));
  auto w = torch::exp(-0.5 * (offsets.unsqueeze(0) / sigma.to(images.device(), torch::kFloat32).unsqueeze(1)).pow(2));
  w = w / w.sum(1, true);  // [N, k]
  const auto k = 2 * radius + 1;
  namespace F = torch::nn::functional;
  auto x = images.to(torch::kFloat32).reshape({1, n, images.size(2), images.size(3)});
  x = F::conv2d(x, w.view({n, 1, k, 1}), F::Conv2dFuncOptions().padding({radius, 0}).groups(n));
  x = F::conv2d(x, w.view({n, 1, 1, k}), F::Conv2dFuncOptions().padding({0, radius}).groups(n));
  return x.view(images.sizes());
}
inline torch::Tensor gaussian_blur(const torch::Tensor& images, double sigma) {
  detail::require(sigma > 0 && std::isfinite(sigma), "gaussian_blur sigma", sigma, "must be positive and finite");
  return gaussian_blur(images, torch::full({images.size(0)}, sigma, torch::kFloat32));
}

/// Distortions of the real training images. Each image is, with `affine_probability`, resampled
/// through its own random rotation, isotropic scale, horizontal shear and shift, drawn uniformly
/// within these bounds (Simard et al. 2003, §2), and, with `noise_probability`, gets mild
/// Gaussian pixel noise. Half the images stay unresampled: bilinear resampling softens the
/// strokes a little, and a net that only ever saw resampled digits as real would take the crisp
/// originals for something else (measured: 6.7% of the held-out digits read as reject).
struct Augmentation {
  double affine_probability = 0.5;
  double max_rotation_deg = 12;
  double max_scale = 0.1;      ///< scale in [1 − s, 1 + s]
  double max_shear = 0.15;     ///< x += shear·y
  double max_shift_px = 2.0;   ///< per axis, in pixels
  double elastic_alpha_px = 34;   ///< elastic distortion (Simard et al. 2003, §2): displacement scale α
  double elastic_sigma_px = 4;    ///< … and the σ of the Gaussian that smooths the U(−1, 1) field; α = 0: none
  double noise_probability = 0.25;
  double max_noise_sigma = 0.08;  ///< σ uniform in [0, max]; far below the reject class's noise
};
using AffineAugmentation = Augmentation;

/// `images` [N,1,28,28] resampled (bilinear, zero padding) through random affine maps.
inline torch::Tensor random_affine(const torch::Tensor& images, const Augmentation& a) {
  const auto n = images.size(0);
  const auto opts = images.options().dtype(torch::kFloat32);
  auto uniform = [&](double bound) { return (torch::rand({n}, opts) * 2 - 1) * bound; };
  const auto angle = uniform(a.max_rotation_deg * std::numbers::pi / 180), scale = 1 + uniform(a.max_scale);
  const auto shear = uniform(a.max_shear);
  const double shift_unit = 2.0 / 28;  // affine_grid's coordinates span [-1, 1] over 28 pixels
  const auto tx = uniform(a.max_shift_px * shift_unit), ty = uniform(a.max_shift_px * shift_unit);
  const auto c = torch::cos(angle) / scale, s = torch::sin(angle) / scale;
  // [R(θ)·[[1, shear], [0, 1]] / scale | t]: the map from output to input coordinates.
  const auto theta = torch::stack({torch::stack({c, c * shear - s, tx}, 1), torch::stack({s, s * shear + c, ty}, 1)}, 1);
  namespace F = torch::nn::functional;
  auto grid = F::affine_grid(theta, {n, 1, 28, 28}, /*align_corners=*/false);  // [n, 28, 28, 2]
  if (a.elastic_alpha_px > 0) {
    // Elastic distortion (Simard et al. 2003, §2): a per-pixel displacement field, uniform in
    // [−1, 1], smoothed by a Gaussian of σ = elastic_sigma_px and scaled by α pixels.
    const auto field = torch::rand({2 * n, 1, 28, 28}, opts) * 2 - 1;
    const auto smooth = gaussian_blur(field, torch::full({2 * n}, a.elastic_sigma_px, opts));
    grid = grid + smooth.view({n, 2, 28, 28}).permute({0, 2, 3, 1}) * (a.elastic_alpha_px * shift_unit);
  }
  return F::grid_sample(images.to(torch::kFloat32), grid,
                        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
}

/// The real images of a training batch distorted as `a` says (see Augmentation).
inline torch::Tensor augment_real(const torch::Tensor& images, const Augmentation& a) {
  const auto n = images.size(0);
  const auto opts = images.options().dtype(torch::kFloat32);
  auto x = images.to(torch::kFloat32);
  const auto affine = (torch::rand({n, 1, 1, 1}, opts) < a.affine_probability);
  x = torch::where(affine, random_affine(x, a), x);
  const auto noisy = (torch::rand({n, 1, 1, 1}, opts) < a.noise_probability);
  const auto sigma = torch::rand({n, 1, 1, 1}, opts) * a.max_noise_sigma;
  return torch::where(noisy, (x + sigma * torch::randn_like(x)).clamp(0, 1), x);
}

namespace detail {
/// Row and column (float) of flat pixel indices of a 28×28 image.
inline torch::Tensor pixel_row(const torch::Tensor& index) { return torch::div(index, 28, "floor").to(torch::kFloat32); }
inline torch::Tensor pixel_column(const torch::Tensor& index) { return torch::remainder(index, 28).to(torch::kFloat32); }
}  // namespace detail

/// Broken strokes: `discs` discs of radius in [min_radius, max_radius] pixels, centred on ink
/// (drawn with probability ∝ intensity), are erased from each image (soft edge, 1 px ramp); up
/// to two more rounds follow for images that still keep more than 65% of their ink, so that
/// nearly every example has lost a large part of its stroke (a short "1" is not a broken one,
/// and a real thin digit with one gap should not look like a training example of reject).
inline torch::Tensor erase_strokes(const torch::Tensor& images, std::int64_t discs, double min_radius, double max_radius) {
  const auto n = images.size(0);
  if (n == 0) return images;
  const auto opts = images.options().dtype(torch::kFloat32);
  const auto original = images.to(torch::kFloat32).reshape({n, 28 * 28});
  const auto pixel = torch::arange(28 * 28, opts.dtype(torch::kLong));
  const auto py = detail::pixel_row(pixel).view({1, 1, -1}), px = detail::pixel_column(pixel).view({1, 1, -1});
  auto flat = original;
  for (int round = 0; round < 3; ++round) {
    const auto centres = torch::multinomial(flat + 1e-6, discs, /*replacement=*/true);  // [n, discs]
    const auto cy = detail::pixel_row(centres).unsqueeze(2), cx = detail::pixel_column(centres).unsqueeze(2);
    const auto radius = (min_radius + torch::rand({n, discs, 1}, opts) * (max_radius - min_radius));
    const auto distance = ((py - cy).pow(2) + (px - cx).pow(2)).sqrt();  // [n, discs, 784]
    const auto erased = flat * (distance - radius + 0.5).clamp(0, 1).prod(1);
    const auto enough = flat.sum(1, true) <= 0.65 * original.sum(1, true);
    flat = torch::where(enough, flat, erased);
  }
  return flat.view(images.sizes());
}

/// Pixel-wise blends w·a + (1 − w)·b of image pairs [N,1,28,28], one weight per pair ([N]).
inline torch::Tensor overlay(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& weight) {
  if (a.sizes() != b.sizes()) throw shape_error("overlay: the two image batches differ in shape");
  const auto w = weight.to(a.device(), torch::kFloat32).view({-1, 1, 1, 1});
  return w * a.to(torch::kFloat32) + (1 - w) * b.to(torch::kFloat32);
}

/// `n` images of random pen scribbles: polylines of `segments` segments, each 4–10 px long,
/// turning by 60°–150° at every joint, drawn 1–1.6 px wide.
inline torch::Tensor scribbles(std::int64_t n, std::int64_t segments, const torch::TensorOptions& options) {
  const auto opts = options.dtype(torch::kFloat32);
  if (n == 0) return torch::zeros({0, 1, 28, 28}, opts);
  std::vector<torch::Tensor> points{6 + torch::rand({n, 2}, opts) * 16};
  auto heading = torch::rand({n}, opts) * 2 * std::numbers::pi;
  for (std::int64_t s = 0; s < segments; ++s) {
    const auto turn = (std::numbers::pi / 3 + torch::rand({n}, opts) * std::numbers::pi / 2) *
                      torch::where(torch::rand({n}, opts) < 0.5, torch::ones({n}, opts), -torch::ones({n}, opts));
    heading = heading + (s == 0 ? torch::zeros({n}, opts) : turn);
    const auto length = 4 + torch::rand({n}, opts) * 6;
    const auto step = torch::stack({torch::cos(heading), torch::sin(heading)}, 1) * length.unsqueeze(1);
    points.push_back((points.back() + step).clamp(1, 26));
  }
  const auto a = torch::stack(std::vector<torch::Tensor>(points.begin(), points.end() - 1), 1).unsqueeze(2);  // [n,S,1,2]
  const auto b = torch::stack(std::vector<torch::Tensor>(points.begin() + 1, points.end()), 1).unsqueeze(2);
  const auto pixel = torch::arange(28 * 28, opts.dtype(torch::kLong));
  const auto p = torch::stack({detail::pixel_row(pixel), detail::pixel_column(pixel)}, 1).view({1, 1, -1, 2});
  // Distance from each pixel to each segment: project onto the segment, clamp to its ends.
  const auto ab = b - a, ap = p - a;
  const auto t = ((ap * ab).sum(3) / (ab * ab).sum(3).clamp_min(1e-6)).clamp(0, 1).unsqueeze(3);
  const auto distance = (ap - t * ab).pow(2).sum(3).sqrt().amin(1);                         // [n, 784]
  const auto width = 1.0 + torch::rand({n, 1}, opts) * 0.6;
  return (width - distance + 0.5).clamp(0, 1).view({n, 1, 28, 28});
}

/// What the reject class is trained on: degraded real images. The strengths are chosen so that a
/// human would call every example blurry, broken, ambiguous or not a digit (see the README for
/// the held-out measurements they give).
struct RejectTraining {
  double fraction = 0.25;         ///< reject examples per real image in each batch (0: no reject class training)
  double blur_sigma_min = 1.2;    ///< Gaussian blur σ in pixels, uniform in [min, max]
  double blur_sigma_max = 3.0;
  std::int64_t erase_discs = 4;   ///< broken strokes: discs erased per digit
  double erase_radius_min = 2.0;  ///< their radius in pixels, uniform in [min, max]
  double erase_radius_max = 3.5;
  double overlay_weight_min = 0.35;  ///< blend weight of the first digit, uniform in [min, 1 − min]
  double noise_sigma_min = 0.3;   ///< digit + Gaussian noise of σ uniform in [min, max]
  double noise_sigma_max = 0.6;
};

namespace detail {
inline void check_reject_training(const RejectTraining& r) {
  require(r.fraction >= 0 && std::isfinite(r.fraction), "reject.fraction", r.fraction, "must be ≥ 0 and finite");
  require(r.blur_sigma_min > 0 && r.blur_sigma_max >= r.blur_sigma_min && r.blur_sigma_max <= 8, "reject.blur_sigma_min",
          r.blur_sigma_min, "must be positive and ≤ reject.blur_sigma_max ≤ 8");
  require(r.erase_discs >= 1, "reject.erase_discs", r.erase_discs, "must be at least 1");
  require(r.erase_radius_min > 0 && r.erase_radius_max >= r.erase_radius_min, "reject.erase_radius_min",
          r.erase_radius_min, "must be positive and ≤ reject.erase_radius_max");
  require(r.overlay_weight_min > 0 && r.overlay_weight_min <= 0.5, "reject.overlay_weight_min", r.overlay_weight_min,
          "must lie in (0, 0.5]");
  require(r.noise_sigma_min > 0 && r.noise_sigma_max >= r.noise_sigma_min, "reject.noise_sigma_min", r.noise_sigma_min,
          "must be positive and ≤ reject.noise_sigma_max");
}

/// With probability ½ per image, rescales it so its brightest pixel is 1: a dim blur or blend
/// must not be told from a real digit by its contrast alone.
inline torch::Tensor maybe_stretch(const torch::Tensor& x) {
  const auto peak = x.flatten(1).amax(1).clamp_min(1e-3).view({-1, 1, 1, 1});
  const auto stretch = torch::rand({x.size(0), 1, 1, 1}, x.options()) < 0.5;
  return torch::where(stretch, (x / peak).clamp(0, 1), x);
}

inline torch::Tensor uniform_between(std::int64_t n, double lo, double hi, const torch::TensorOptions& o) {
  return lo + torch::rand({n}, o) * (hi - lo);
}
}  // namespace detail

/// `count` reject-class examples made from the (augmented) real batch `images` with `labels`:
/// in turn a blurred digit, a digit with broken strokes, a blend of two digits of different
/// classes, and noise (a scribble, smoothed noise, or a digit under strong noise).
inline torch::Tensor reject_examples(const torch::Tensor& images, const torch::Tensor& labels, std::int64_t count,
                                     const RejectTraining& r) {
  const auto n = images.size(0);
  const auto opts = images.options().dtype(torch::kFloat32);
  if (count == 0 || n == 0) return torch::zeros({0, 1, 28, 28}, opts);
  const auto source = torch::randint(n, {count}, opts.dtype(torch::kLong));
  const auto kind = torch::arange(count, opts.dtype(torch::kLong)) % 4;
  auto out = torch::zeros({count, 1, 28, 28}, opts);
  auto fill = [&](std::int64_t k, auto&& make) {
    const auto rows = (kind == k).nonzero().flatten();
    if (rows.numel() > 0) out.index_copy_(0, rows, make(rows.numel(), source.index_select(0, rows)));
  };
  fill(0, [&](std::int64_t m, const torch::Tensor& src) {
    const auto sigma = detail::uniform_between(m, r.blur_sigma_min, r.blur_sigma_max, opts);
    return detail::maybe_stretch(gaussian_blur(images.index_select(0, src), sigma));
  });
  fill(1, [&](std::int64_t, const torch::Tensor& src) {
    return erase_strokes(images.index_select(0, src), r.erase_discs, r.erase_radius_min, r.erase_radius_max);
  });
  fill(2, [&](std::int64_t m, const torch::Tensor& src) {
    // A partner of a different class: the next image in a random order whose label differs
    // (a batch of one class blends with itself shifted, still not one clean digit).
    const auto labels_cpu = labels.to(torch::kCPU, torch::kLong).contiguous();
    const auto src_cpu = src.to(torch::kCPU).contiguous();
    const auto order_t = torch::randperm(n, torch::TensorOptions().dtype(torch::kLong));
    const auto label = labels_cpu.accessor<std::int64_t, 1>();
    const auto order = order_t.accessor<std::int64_t, 1>();
    const auto self_index = src_cpu.accessor<std::int64_t, 1>();
    std::vector<std::int64_t> partner(static_cast<std::size_t>(m));
    for (std::int64_t i = 0; i < m; ++i) {
      const auto self = self_index[i];
      std::int64_t pick = order[(self + 1) % n];
      for (std::int64_t j = 0; j < n; ++j) {
        const auto candidate = order[(self + j) % n];
        if (label[candidate] != label[self]) {
          pick = candidate;
          break;
        }
      }
      partner[static_cast<std::size_t>(i)] = pick;
    }
    const auto b_idx = torch::tensor(partner, torch::kLong).to(images.device());
    auto b = images.index_select(0, b_idx);
    const auto same = labels.index_select(0, src).eq(labels.index_select(0, b_idx)).view({-1, 1, 1, 1});
    b = torch::where(same, random_affine(b, {.max_rotation_deg = 40, .max_scale = 0.1, .max_shear = 0.3, .max_shift_px = 6}), b);
    const auto w = detail::uniform_between(m, r.overlay_weight_min, 1 - r.overlay_weight_min, opts);
    return detail::maybe_stretch(overlay(images.index_select(0, src), b, w));
  });
  fill(3, [&](std::int64_t m, const torch::Tensor& src) {
    const auto which = torch::arange(m, opts.dtype(torch::kLong)) % 3;
    const auto scribble = scribbles(m, 5, opts);
    const auto smooth = gaussian_blur(torch::rand({m, 1, 28, 28}, opts), detail::uniform_between(m, 0.5, 1.5, opts));
    const auto lo = smooth.flatten(1).amin(1).view({-1, 1, 1, 1}), hi = smooth.flatten(1).amax(1).view({-1, 1, 1, 1});
    const auto noise_field = ((smooth - lo) / (hi - lo).clamp_min(1e-6)).pow(2);
    const auto sigma = detail::uniform_between(m, r.noise_sigma_min, r.noise_sigma_max, opts).view({-1, 1, 1, 1});
    const auto noisy = (images.index_select(0, src) + sigma * torch::randn({m, 1, 28, 28}, opts)).clamp(0, 1);
    const auto w = which.view({-1, 1, 1, 1});
    return torch::where(w == 0, scribble, torch::where(w == 1, noise_field, noisy));
  });
  return out;
}

}  // namespace scoreflow
