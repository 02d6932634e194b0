#pragma once
// xtensor backend: `xt::xarray<float>` and `xt::xarray<double>` as scoreflow tensors.
//
// The only place that includes xtensor headers, so a move to xtensor ≥ 0.25 (which moved its
// headers into subfolders) is a change to this file alone. Every result is evaluated into a
// container: no lazy expression outlives a call.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

template <class S>
  requires std::floating_point<S>
struct tensor_traits<xt::xarray<S>> {
  using array = xt::xarray<S>;
  static constexpr TensorFastPaths fast_paths{
      .axpby_randn = true, .repeat_batch = true, .axpby_halves = true, .axpbypcz = true};

  static Shape shape(const array& x) { return Shape(x.shape().begin(), x.shape().end()); }

  static array axpby(double a, const array& x, double b, const array& y) {
    check_same_shape(x, y, "axpby");
    array out = array::from_shape(x.shape());
    const S sa = static_cast<S>(a), sb = static_cast<S>(b);
    const S* px = x.data();
    const S* py = y.data();
    S* po = out.data();
    for (std::size_t i = 0, n = x.size(); i < n; ++i) po[i] = sa * px[i] + sb * py[i];
    return out;
  }
  static array axpby_randn(double a, const array& x, double b, const array& y, double c, Generator& gen) {
    check_same_shape(x, y, "axpby_randn");
    array out = array::from_shape(x.shape());
    // The draws first, into out, then one pass over x, y and them: the same numbers as a fused
    // loop, and faster (bench_sampler_overhead, fixed_small): the ziggurat's state keeps its
    // registers when the loop around it does nothing else.
    gen.fill_normal(std::span<S>(out.data(), out.size()));
    detail::axpbypcz_loop(a, x.data(), b, y.data(), c, out.data(), out.data(), out.size());
    return out;
  }
  static array axpbypcz(double a, const array& x, double b, const array& y, double c, const array& z) {
    check_same_shape(x, y, "axpbypcz");
    check_same_shape(x, z, "axpbypcz");
    array out = array::from_shape(x.shape());
    detail::axpbypcz_loop(a, x.data(), b, y.data(), c, z.data(), out.data(), out.size());
    return out;
  }
  static array scale(double a, const array& x) {
    array out = x;
    const S sa = static_cast<S>(a);
    for (auto& v : out.storage()) v *= sa;
    return out;
  }
  static array add_scalar(const array& x, double a) {
    array out = x;
    const S sa = static_cast<S>(a);
    for (auto& v : out.storage()) v += sa;
    return out;
  }
  static array multiply(const array& x, const array& y) {
    check_same_shape(x, y, "multiply");
    array out = array::from_shape(x.shape());
    for (std::size_t i = 0, n = x.size(); i < n; ++i) out.data()[i] = x.data()[i] * y.data()[i];
    return out;
  }
  static array exp(const array& x) {
    array out = x;
    for (auto& v : out.storage()) v = std::exp(v);
    return out;
  }
  static array randn_like(const array& x, Generator& gen) {
    array out = array::from_shape(x.shape());
    gen.fill_normal(std::span<S>(out.data(), out.size()));
    return out;
  }
  static array concat_batch(std::span<const array> parts) {
    if (parts.empty()) throw shape_error("concat_batch: no tensors given");
    auto sh = parts[0].shape();
    std::vector<std::size_t> out_shape(sh.begin(), sh.end());
    std::size_t total = 0;
    for (const auto& p : parts) {
      if (p.dimension() != out_shape.size() ||
          !std::equal(p.shape().begin() + 1, p.shape().end(), out_shape.begin() + 1))
        throw shape_error("concat_batch: tensors differ in a non-batch dimension");
      total += p.shape()[0];
    }
    out_shape[0] = total;
    array out = array::from_shape(out_shape);
    S* dst = out.data();
    for (const auto& p : parts) dst = std::copy(p.data(), p.data() + p.size(), dst);
    return out;
  }
  static std::vector<array> split_batch(const array& x, std::int64_t parts) {
    const auto n = static_cast<std::int64_t>(x.shape()[0]);
    if (parts <= 0 || n % parts != 0)
      throw shape_error(detail::concat("split_batch: batch ", n, " is not divisible into ", parts));
    std::vector<std::size_t> part_shape(x.shape().begin(), x.shape().end());
    part_shape[0] = static_cast<std::size_t>(n / parts);
    const std::size_t chunk = x.size() / static_cast<std::size_t>(parts);
    std::vector<array> out;
    for (std::int64_t k = 0; k < parts; ++k) {
      array piece = array::from_shape(part_shape);
      std::copy_n(x.data() + k * chunk, chunk, piece.data());
      out.push_back(std::move(piece));
    }
    return out;
  }
  static array repeat_batch(const array& x, std::int64_t times) {
    if (times <= 0) throw shape_error(detail::concat("repeat_batch: cannot repeat ", times, " times"));
    std::vector<std::size_t> out_shape(x.shape().begin(), x.shape().end());
    out_shape.at(0) *= static_cast<std::size_t>(times);
    array out = array::from_shape(out_shape);
    S* dst = out.data();
    for (std::int64_t k = 0; k < times; ++k) dst = std::copy(x.data(), x.data() + x.size(), dst);
    return out;
  }
  static array axpby_halves(double a, double b, const array& y) {
    if (y.dimension() == 0 || y.shape()[0] % 2 != 0)
      throw shape_error("axpby_halves: the batch does not split into two halves");
    std::vector<std::size_t> out_shape(y.shape().begin(), y.shape().end());
    out_shape[0] /= 2;
    array out = array::from_shape(out_shape);
    const std::size_t half = out.size();
    const S sa = static_cast<S>(a), sb = static_cast<S>(b);
    const S* p = y.data();
    S* po = out.data();
    for (std::size_t i = 0; i < half; ++i) po[i] = sa * p[i] + sb * p[half + i];
    return out;
  }
  static std::pair<array, array> split_channels(const array& x, std::int64_t first) {
    if (x.dimension() < 2 || first <= 0 || first >= static_cast<std::int64_t>(x.shape()[1]))
      throw shape_error(detail::concat("split_channels: cannot split axis 1 at ", first));
    auto a = xt::view(x, xt::all(), xt::range(0, first));
    auto b = xt::view(x, xt::all(), xt::range(first, static_cast<std::int64_t>(x.shape()[1])));
    return {array(a), array(b)};
  }
  static array permute_pixels(const array& x, const std::vector<std::int64_t>& index) {
    const auto plane = plane_size(x);
    if (static_cast<std::size_t>(index.size()) != plane)
      throw shape_error("permute_pixels: index size differs from H·W");
    array out = array::from_shape(x.shape());
    for (std::size_t base = 0; base < x.size(); base += plane)
      for (std::size_t p = 0; p < plane; ++p)
        out.data()[base + p] = x.data()[base + static_cast<std::size_t>(index[p])];
    return out;
  }
  static array blur(const array& x, const std::vector<double>& kernel) {
    if (x.dimension() < 2) throw shape_error("blur: needs at least two axes");
    const auto h = static_cast<std::int64_t>(x.shape()[x.dimension() - 2]);
    const auto w = static_cast<std::int64_t>(x.shape()[x.dimension() - 1]);
    const auto half = static_cast<std::int64_t>(kernel.size() / 2);
    if (half >= h || half >= w)
      throw shape_error(detail::concat("blur: kernel size ", kernel.size(),
                                       " needs an image larger than half of it; got ", h, "x", w));
    // Separable: rows then columns, accumulating in double like a float32 conv would not;
    // the difference is far below float precision.
    array out = array::from_shape(x.shape());
    std::vector<double> tmp(static_cast<std::size_t>(h * w));
    for (std::size_t base = 0; base < x.size(); base += static_cast<std::size_t>(h * w)) {
      const S* src = x.data() + base;
      for (std::int64_t r = 0; r < h; ++r)
        for (std::int64_t c = 0; c < w; ++c) {
          double acc = 0;
          for (std::int64_t k = -half; k <= half; ++k)
            acc += kernel[static_cast<std::size_t>(k + half)] * src[r * w + detail::reflect_index(c + k, w)];
          tmp[static_cast<std::size_t>(r * w + c)] = acc;
        }
      S* dst = out.data() + base;
      for (std::int64_t r = 0; r < h; ++r)
        for (std::int64_t c = 0; c < w; ++c) {
          double acc = 0;
          for (std::int64_t k = -half; k <= half; ++k)
            acc += kernel[static_cast<std::size_t>(k + half)] *
                   tmp[static_cast<std::size_t>(detail::reflect_index(r + k, h) * w + c)];
          dst[r * w + c] = static_cast<S>(acc);
        }
    }
    return out;
  }
  static bool all_finite(const array& x) {
    return std::all_of(x.begin(), x.end(), [](S v) { return std::isfinite(v); });
  }
  static std::vector<double> abs_quantile_per_sample(const array& x, double q) {
    const auto n = x.shape()[0];
    const std::size_t per = x.size() / n;
    std::vector<double> out;
    for (std::size_t b = 0; b < n; ++b) {
      std::vector<double> values(per);
      for (std::size_t i = 0; i < per; ++i) values[i] = std::abs(static_cast<double>(x.data()[b * per + i]));
      out.push_back(detail::linear_quantile(std::move(values), q));
    }
    return out;
  }
  static array clamp_divide_per_sample(const array& x, const std::vector<double>& s) {
    const auto n = x.shape()[0];
    if (s.size() != n) throw shape_error("clamp_divide_per_sample: one bound per sample needed");
    const std::size_t per = x.size() / n;
    array out = array::from_shape(x.shape());
    for (std::size_t b = 0; b < n; ++b) {
      const S bound = static_cast<S>(s[b]);
      for (std::size_t i = 0; i < per; ++i)
        out.data()[b * per + i] = std::clamp(x.data()[b * per + i], -bound, bound) / bound;
    }
    return out;
  }
  static std::vector<double> dot_per_sample(const array& x, const array& y) {
    const auto n = x.shape()[0];
    const std::size_t per = n == 0 ? 0 : x.size() / n;
    std::vector<double> out(n, 0.0);
    for (std::size_t b = 0; b < n; ++b)
      for (std::size_t i = 0; i < per; ++i)
        out[b] += static_cast<double>(x.data()[b * per + i]) * static_cast<double>(y.data()[b * per + i]);
    return out;
  }
  static array mix_channels(const array& x, const std::vector<double>& m) {
    const std::size_t n = x.shape()[0], ch = x.shape()[1], plane = x.size() / (n * ch);
    array out = array::from_shape(x.shape());
    for (std::size_t b = 0; b < n; ++b)
      for (std::size_t c = 0; c < ch; ++c)
        for (std::size_t p = 0; p < plane; ++p) {
          double acc = 0.0;
          for (std::size_t d = 0; d < ch; ++d) acc += m[c * ch + d] * static_cast<double>(x.data()[(b * ch + d) * plane + p]);
          out.data()[(b * ch + c) * plane + p] = static_cast<S>(acc);
        }
    return out;
  }
  static array correlate_zero_padded(const array& x, const std::vector<double>& kernel) {
    const auto k = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(kernel.size()))));
    const auto h = static_cast<std::int64_t>(x.shape()[x.dimension() - 2]);
    const auto w = static_cast<std::int64_t>(x.shape()[x.dimension() - 1]);
    const std::int64_t half = k / 2;
    array out = array::from_shape(x.shape());
    const auto plane = static_cast<std::size_t>(h * w);
    for (std::size_t base = 0; base < x.size(); base += plane)
      for (std::int64_t r = 0; r < h; ++r)
        for (std::int64_t c = 0; c < w; ++c) {
          double acc = 0.0;
          for (std::int64_t a = 0; a < k; ++a)
            for (std::int64_t b = 0; b < k; ++b) {
              const std::int64_t rr = r + a - half, cc = c + b - half;
              if (rr < 0 || rr >= h || cc < 0 || cc >= w) continue;
              acc += kernel[static_cast<std::size_t>(a * k + b)] *
                     static_cast<double>(x.data()[base + static_cast<std::size_t>(rr * w + cc)]);
            }
          out.data()[base + static_cast<std::size_t>(r * w + c)] = static_cast<S>(acc);
        }
    return out;
  }
  static std::vector<double> to_vector(const array& x) { return std::vector<double>(x.begin(), x.end()); }
  static array from_vector(const std::vector<double>& values, const Shape& shape, const array&) {
    std::vector<std::size_t> sh(shape.begin(), shape.end());
    array out = array::from_shape(sh);
    if (out.size() != values.size()) throw shape_error("from_vector: value count differs from shape");
    std::transform(values.begin(), values.end(), out.begin(), [](double v) { return static_cast<S>(v); });
    return out;
  }

 private:
  static void check_same_shape(const array& x, const array& y, const char* op) {
    if (x.shape() != y.shape()) throw shape_error(detail::concat(op, ": operands differ in shape"));
  }
  static std::size_t plane_size(const array& x) {
    if (x.dimension() < 2) throw shape_error("spatial operation needs at least two axes");
    return x.shape()[x.dimension() - 2] * x.shape()[x.dimension() - 1];
  }
};

static_assert(ImageTensor<xt::xarray<float>> && HostCopyable<xt::xarray<float>>);
static_assert(ImageTensor<xt::xarray<double>> && HostCopyable<xt::xarray<double>>);

}  // namespace scoreflow
