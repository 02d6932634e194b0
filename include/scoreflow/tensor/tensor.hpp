#pragma once
// The one extension point for tensor types.
//
// Everything in scoreflow's core is written once against the handful of operations below. A
// tensor type joins by specialising `tensor_traits<T>` (see xtensor.hpp and torch/tensor.hpp);
// the `Tensor` concept then checks every operation at the public entry points, so a missing one
// is reported by name instead of deep inside a sampler.
//
// Conventions: images are N×C×H×W (any rank ≥ 2 works for the elementwise operations; the
// spatial operations act on the last two axes and the batch is axis 0).
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "scoreflow/tensor/random.hpp"

namespace scoreflow {

using Shape = std::vector<std::int64_t>;

/// Specialise for a tensor type. The primary template is intentionally undefined.
template <class T>
struct tensor_traits;

// clang-format off
template <class T>
concept Tensor = std::copy_constructible<T> && requires(
    const T& x, const T& y, double a, Generator& gen, std::span<const T> parts,
    const std::vector<std::int64_t>& index, const std::vector<double>& values, const Shape& shape) {
  { tensor_traits<T>::shape(x) } -> std::same_as<Shape>;
  { tensor_traits<T>::axpby(a, x, a, y) } -> std::same_as<T>;     // a·x + b·y
  { tensor_traits<T>::scale(a, x) } -> std::same_as<T>;           // a·x
  { tensor_traits<T>::add_scalar(x, a) } -> std::same_as<T>;      // x + a
  { tensor_traits<T>::multiply(x, y) } -> std::same_as<T>;        // x ⊙ y
  { tensor_traits<T>::exp(x) } -> std::same_as<T>;
  { tensor_traits<T>::randn_like(x, gen) } -> std::same_as<T>;    // N(0, I), shape/device of x
  { tensor_traits<T>::concat_batch(parts) } -> std::same_as<T>;   // along axis 0
  { tensor_traits<T>::split_batch(x, 2) } -> std::same_as<std::vector<T>>;  // equal parts
  { tensor_traits<T>::split_channels(x, 1) } -> std::same_as<std::pair<T, T>>;  // axis 1 at c
  { tensor_traits<T>::permute_pixels(x, index) } -> std::same_as<T>;  // y[.., p] = x[.., index[p]]
  { tensor_traits<T>::blur(x, values) } -> std::same_as<T>;       // separable, reflect padding
  { tensor_traits<T>::all_finite(x) } -> std::same_as<bool>;
  { tensor_traits<T>::abs_quantile_per_sample(x, a) } -> std::same_as<std::vector<double>>;
  { tensor_traits<T>::clamp_divide_per_sample(x, values) } -> std::same_as<T>;  // clamp(x,±s)/s
  { tensor_traits<T>::to_vector(x) } -> std::same_as<std::vector<double>>;      // row-major copy
  { tensor_traits<T>::from_vector(values, shape, x) } -> std::same_as<T>;  // dtype/device of x
};
// clang-format on

/// Free functions that forward to the traits; the core calls these.
namespace ops {
template <Tensor T> Shape shape(const T& x) { return tensor_traits<T>::shape(x); }
template <Tensor T> T axpby(double a, const T& x, double b, const T& y) {
  return tensor_traits<T>::axpby(a, x, b, y);
}
template <Tensor T> T add(const T& x, const T& y) { return axpby(1.0, x, 1.0, y); }
template <Tensor T> T sub(const T& x, const T& y) { return axpby(1.0, x, -1.0, y); }
template <Tensor T> T scale(double a, const T& x) { return tensor_traits<T>::scale(a, x); }
template <Tensor T> T add_scalar(const T& x, double a) { return tensor_traits<T>::add_scalar(x, a); }
template <Tensor T> T multiply(const T& x, const T& y) { return tensor_traits<T>::multiply(x, y); }
template <Tensor T> T exp(const T& x) { return tensor_traits<T>::exp(x); }
template <Tensor T> T randn_like(const T& x, Generator& gen) {
  return tensor_traits<T>::randn_like(x, gen);
}
/// a·x + b·y + c·z with z ~ N(0, I) drawn from gen in element order: the noisy step of DDPM/DDIM
/// in one pass. Optional for a backend (`tensor_traits<T>::axpby_randn`); without it, or as the
/// reference, it is axpby(1, axpby(a, x, b, y), c, randn_like(x, gen)), and a fused version must
/// give the same numbers (round a·x + b·y to T's scalar first, then add c·z).
template <Tensor T> T axpby_randn(double a, const T& x, double b, const T& y, double c, Generator& gen) {
  if constexpr (requires { { tensor_traits<T>::axpby_randn(a, x, b, y, c, gen) } -> std::same_as<T>; })
    return tensor_traits<T>::axpby_randn(a, x, b, y, c, gen);
  else
    return axpby(1.0, axpby(a, x, b, y), c, randn_like(x, gen));
}
template <Tensor T> T concat_batch(std::span<const T> parts) {
  return tensor_traits<T>::concat_batch(parts);
}
template <Tensor T> std::vector<T> split_batch(const T& x, std::int64_t parts) {
  return tensor_traits<T>::split_batch(x, parts);
}
/// x concatenated `times` times along the batch axis: the input of a batched guided call.
/// Optional for a backend (`tensor_traits<T>::repeat_batch`); the default concatenates copies.
template <Tensor T> T repeat_batch(const T& x, std::int64_t times) {
  if constexpr (requires { { tensor_traits<T>::repeat_batch(x, times) } -> std::same_as<T>; }) {
    return tensor_traits<T>::repeat_batch(x, times);
  } else {
    const std::vector<T> parts(static_cast<std::size_t>(times), x);
    return concat_batch(std::span<const T>(parts));
  }
}
/// a·y[first half of the batch] + b·y[second half]: classifier-free guidance straight from one
/// batched answer, without splitting it first. Optional for a backend
/// (`tensor_traits<T>::axpby_halves`); the default is split_batch then axpby.
template <Tensor T> T axpby_halves(double a, double b, const T& y) {
  if constexpr (requires { { tensor_traits<T>::axpby_halves(a, b, y) } -> std::same_as<T>; }) {
    return tensor_traits<T>::axpby_halves(a, b, y);
  } else {
    const auto halves = split_batch(y, 2);
    return axpby(a, halves[0], b, halves[1]);
  }
}
template <Tensor T> std::pair<T, T> split_channels(const T& x, std::int64_t first) {
  return tensor_traits<T>::split_channels(x, first);
}
template <Tensor T> T permute_pixels(const T& x, const std::vector<std::int64_t>& index) {
  return tensor_traits<T>::permute_pixels(x, index);
}
template <Tensor T> T blur(const T& x, const std::vector<double>& kernel) {
  return tensor_traits<T>::blur(x, kernel);
}
template <Tensor T> bool all_finite(const T& x) { return tensor_traits<T>::all_finite(x); }
template <Tensor T> std::vector<double> abs_quantile_per_sample(const T& x, double q) {
  return tensor_traits<T>::abs_quantile_per_sample(x, q);
}
template <Tensor T> T clamp_divide_per_sample(const T& x, const std::vector<double>& s) {
  return tensor_traits<T>::clamp_divide_per_sample(x, s);
}
template <Tensor T> std::vector<double> to_vector(const T& x) { return tensor_traits<T>::to_vector(x); }
template <Tensor T> T from_vector(const std::vector<double>& v, const Shape& s, const T& like) {
  return tensor_traits<T>::from_vector(v, s, like);
}
template <Tensor T> std::int64_t batch_size(const T& x) { return shape(x).at(0); }
}  // namespace ops

namespace detail {
/// Reflect-pad index (torch's "reflect": the edge sample is not repeated).
inline std::int64_t reflect_index(std::int64_t i, std::int64_t n) {
  if (n == 1) return 0;
  const std::int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

/// Quantile with linear interpolation between order statistics (torch.quantile's default).
inline double linear_quantile(std::vector<double> values, double q) {
  const double pos = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const auto hi = lo + 1 < values.size() ? lo + 1 : lo;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(lo), values.end());
  const double v_lo = values[lo];
  double v_hi = v_lo;
  if (hi != lo) v_hi = *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(hi), values.end());
  return v_lo + (pos - static_cast<double>(lo)) * (v_hi - v_lo);
}
}  // namespace detail
}  // namespace scoreflow
