#pragma once
// LibTorch backend: `torch::Tensor` as a scoreflow tensor (any device, float or double).
//
// Only ATen is needed here, not the whole <torch/torch.h>; it builds measurably faster.
// Noise drawn from scoreflow::Generator is made on the CPU and moved to the tensor's device, so
// it is bit-identical to the xtensor path. For speed on a GPU, draw the start noise yourself.
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

template <>
struct tensor_traits<torch::Tensor> {
  using T = torch::Tensor;
  static constexpr TensorFastPaths fast_paths{.axpby_randn = true, .axpby_rows = true, .axpbypcz = true};

  static Shape shape(const T& x) { return Shape(x.sizes().begin(), x.sizes().end()); }
  static T axpby(double a, const T& x, double b, const T& y) {
    if (!x.sizes().equals(y.sizes())) throw shape_error("axpby: operands differ in shape");
    if (plain_cpu(x, y)) {  // one pass, one allocation, no dispatch
      T out = at::empty(x.sizes(), x.options());
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "scoreflow_axpby", [&] {
        const auto sa = static_cast<scalar_t>(a), sb = static_cast<scalar_t>(b);
        const scalar_t* px = x.data_ptr<scalar_t>();
        const scalar_t* py = y.data_ptr<scalar_t>();
        scalar_t* po = out.data_ptr<scalar_t>();
        for (std::int64_t i = 0, n = x.numel(); i < n; ++i) po[i] = sa * px[i] + sb * py[i];
      });
      return out;
    }
    return at::add(x * a, y, b);  // a·x + b·y in one kernel after the scale
  }
  /// Row i: a[i]·x_i + b[i]·y_i (tensor.hpp). On the CPU the same loop as axpby per row (the same
  /// roundings); elsewhere one broadcast multiply-add with the coefficients as a tensor, not a
  /// kernel per row.
  static T axpby_rows(const std::vector<double>& a, const T& x, const std::vector<double>& b, const T& y) {
    if (!x.sizes().equals(y.sizes())) throw shape_error("axpby_rows: operands differ in shape");
    if (plain_cpu(x, y)) {
      T out = at::empty(x.sizes(), x.options());
      const std::int64_t rows = x.size(0), per = rows == 0 ? 0 : x.numel() / rows;
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "scoreflow_axpby_rows", [&] {
        const scalar_t* px = x.data_ptr<scalar_t>();
        const scalar_t* py = y.data_ptr<scalar_t>();
        scalar_t* po = out.data_ptr<scalar_t>();
        for (std::int64_t r = 0; r < rows; ++r) {
          const auto sa = static_cast<scalar_t>(a[static_cast<std::size_t>(r)]);
          const auto sb = static_cast<scalar_t>(b[static_cast<std::size_t>(r)]);
          for (std::int64_t i = r * per; i < (r + 1) * per; ++i) po[i] = sa * px[i] + sb * py[i];
        }
      });
      return out;
    }
    std::vector<std::int64_t> shape(static_cast<std::size_t>(x.dim()), 1);
    shape.at(0) = x.size(0);
    const auto coefficients = [&](const std::vector<double>& c) {
      return torch::tensor(c, torch::TensorOptions().dtype(torch::kFloat64)).to(x.options()).view(shape);
    };
    return x * coefficients(a) + y * coefficients(b);
  }
  /// a·x + b·y + c·z, z drawn from gen (tensor.hpp); fused on the CPU, the reference elsewhere.
  static T axpby_randn(double a, const T& x, double b, const T& y, double c, Generator& gen) {
    if (!x.sizes().equals(y.sizes())) throw shape_error("axpby_randn: operands differ in shape");
    if (!plain_cpu(x, y)) return axpby(1.0, axpby(a, x, b, y), c, randn_like(x, gen));
    T out = at::empty(x.sizes(), x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "scoreflow_axpby_randn", [&] {
      scalar_t* po = out.data_ptr<scalar_t>();
      const auto n = static_cast<std::size_t>(x.numel());
      gen.fill_normal(std::span<scalar_t>(po, n));  // the draws first, then one pass (xtensor.hpp says why)
      detail::axpbypcz_loop(a, x.data_ptr<scalar_t>(), b, y.data_ptr<scalar_t>(), c, po, po, n);
    });
    return out;
  }
  /// a·x + b·y + c·z (tensor.hpp); fused on the CPU, the reference elsewhere.
  static T axpbypcz(double a, const T& x, double b, const T& y, double c, const T& z) {
    if (!x.sizes().equals(y.sizes()) || !x.sizes().equals(z.sizes()))
      throw shape_error("axpbypcz: operands differ in shape");
    if (!plain_cpu(x, y) || !plain_cpu(x, z)) return axpby(1.0, axpby(a, x, b, y), c, z);
    T out = at::empty(x.sizes(), x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "scoreflow_axpbypcz", [&] {
      detail::axpbypcz_loop(a, x.data_ptr<scalar_t>(), b, y.data_ptr<scalar_t>(), c, z.data_ptr<scalar_t>(),
                            out.data_ptr<scalar_t>(), static_cast<std::size_t>(x.numel()));
    });
    return out;
  }
  static T scale(double a, const T& x) { return x * a; }
  static T add_scalar(const T& x, double a) { return x + a; }
  static T multiply(const T& x, const T& y) {
    if (!x.sizes().equals(y.sizes())) throw shape_error("multiply: operands differ in shape");
    return x * y;
  }
  static T exp(const T& x) { return x.exp(); }
  static T randn_like(const T& x, Generator& gen) {
    if (x.device().is_cpu() && (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64)) {
      // Drawn straight into x's dtype: the same double → float rounding as the path below.
      T out = at::empty(x.sizes(), x.options().requires_grad(false).memory_format(c10::MemoryFormat::Contiguous));
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "scoreflow_randn", [&] {
        gen.fill_normal(std::span<scalar_t>(out.data_ptr<scalar_t>(), static_cast<std::size_t>(out.numel())));
      });
      return out;
    }
    auto cpu = torch::empty(x.sizes(), torch::TensorOptions().dtype(torch::kFloat64));
    gen.fill_normal(std::span<double>(cpu.data_ptr<double>(), static_cast<std::size_t>(cpu.numel())));
    if (x.scalar_type() == torch::kFloat32) {
      // Round through float exactly as the xtensor path does (double → float cast).
      return cpu.to(torch::kFloat32).to(x.device());
    }
    return cpu.to(x.options());
  }
  static T concat_batch(std::span<const T> parts) {
    if (parts.empty()) throw shape_error("concat_batch: no tensors given");
    return torch::cat(std::vector<T>(parts.begin(), parts.end()), 0);
  }
  static std::vector<T> split_batch(const T& x, std::int64_t parts) {
    const auto n = x.size(0);
    if (parts <= 0 || n % parts != 0)
      throw shape_error(detail::concat("split_batch: batch ", n, " is not divisible into ", parts));
    return x.split(n / parts, 0);
  }
  static std::pair<T, T> split_channels(const T& x, std::int64_t first) {
    if (x.dim() < 2 || first <= 0 || first >= x.size(1))
      throw shape_error(detail::concat("split_channels: cannot split axis 1 at ", first));
    return {x.narrow(1, 0, first), x.narrow(1, first, x.size(1) - first)};
  }
  static T permute_pixels(const T& x, const std::vector<std::int64_t>& index) {
    if (x.dim() < 2) throw shape_error("permute_pixels: needs at least two axes");
    const auto plane = x.size(-2) * x.size(-1);
    if (static_cast<std::int64_t>(index.size()) != plane)
      throw shape_error("permute_pixels: index size differs from H·W");
    auto idx = torch::tensor(index, torch::TensorOptions().dtype(torch::kLong)).to(x.device());
    return x.flatten(-2).index_select(-1, idx).view(x.sizes());
  }
  static T blur(const T& x, const std::vector<double>& kernel) {
    if (x.dim() < 2) throw shape_error("blur: needs at least two axes");
    const auto k = static_cast<std::int64_t>(kernel.size());
    const auto half = k / 2;
    const auto h = x.size(-2), w = x.size(-1);
    if (half >= h || half >= w)
      throw shape_error(detail::concat("blur: kernel size ", k,
                                       " needs an image larger than half of it; got ", h, "x", w));
    // As torchvision's gaussian_blur: reflect padding, then a depthwise convolution with the
    // separable kernel (applied as two 1-D passes; the same products, in a different order).
    auto planes = x.reshape({-1, 1, h, w});
    auto k1 = torch::tensor(kernel, torch::TensorOptions().dtype(torch::kFloat64)).to(x.options());
    auto padded = at::reflection_pad2d(planes, {half, half, half, half});
    auto rows = at::conv2d(padded, k1.view({1, 1, 1, k}));
    auto both = at::conv2d(rows, k1.view({1, 1, k, 1}));
    return both.reshape(x.sizes());
  }
  static bool all_finite(const T& x) { return x.isfinite().all().item<bool>(); }
  static std::vector<double> abs_quantile_per_sample(const T& x, double q) {
    auto s = at::quantile(x.reshape({x.size(0), -1}).abs().to(torch::kFloat64), q, 1).cpu();
    return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
  }
  static T clamp_divide_per_sample(const T& x, const std::vector<double>& s) {
    if (static_cast<std::int64_t>(s.size()) != x.size(0))
      throw shape_error("clamp_divide_per_sample: one bound per sample needed");
    Shape view(static_cast<std::size_t>(x.dim()), 1);
    view[0] = x.size(0);
    auto bound = torch::tensor(s, torch::TensorOptions().dtype(torch::kFloat64)).to(x.options()).view(view);
    return at::maximum(at::minimum(x, bound), -bound) / bound;
  }
  static std::vector<double> dot_per_sample(const T& x, const T& y) {
    const auto n = x.size(0);
    auto d = (x.reshape({n, -1}).to(torch::kFloat64) * y.reshape({n, -1}).to(torch::kFloat64)).sum(1).cpu();
    return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  }
  static T mix_channels(const T& x, const std::vector<double>& m) {
    const auto ch = x.size(1);
    auto matrix = torch::tensor(m, torch::TensorOptions().dtype(torch::kFloat64)).view({ch, ch}).to(x.options());
    auto flat = x.reshape({x.size(0), ch, -1});
    return at::matmul(matrix, flat).reshape(x.sizes());
  }
  static T correlate_zero_padded(const T& x, const std::vector<double>& kernel) {
    const auto k = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(kernel.size()))));
    const auto h = x.size(-2), w = x.size(-1);
    auto planes = x.reshape({-1, 1, h, w});
    auto weight = torch::tensor(kernel, torch::TensorOptions().dtype(torch::kFloat64)).view({1, 1, k, k}).to(x.options());
    return at::conv2d(planes, weight, {}, 1, k / 2).reshape(x.sizes());
  }
  static std::vector<double> to_vector(const T& x) {
    auto c = x.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  }
  static T from_vector(const std::vector<double>& values, const Shape& shape, const T& like) {
    auto t = torch::tensor(values, torch::TensorOptions().dtype(torch::kFloat64));
    if (t.numel() != c10::multiply_integers(shape)) throw shape_error("from_vector: value count differs from shape");
    return t.view(shape).to(like.options());
  }

 private:
  /// Contiguous CPU float/double tensors of one dtype outside autograd: the raw-loop fast paths.
  static bool plain_cpu(const T& x, const T& y) {
    return x.device().is_cpu() && y.device().is_cpu() && x.scalar_type() == y.scalar_type() &&
           (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64) && x.is_contiguous() &&
           y.is_contiguous() && !(at::GradMode::is_enabled() && (x.requires_grad() || y.requires_grad()));
  }
};

static_assert(ImageTensor<torch::Tensor> && HostCopyable<torch::Tensor>);

}  // namespace scoreflow
