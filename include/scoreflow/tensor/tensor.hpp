#pragma once
// The tensor extension point.
//
// Everything in scoreflow's core is written once against the operations below. A tensor type
// joins by specialising `tensor_traits<T>` (see tensor/xtensor.hpp and torch/tensor.hpp). The
// operations come in groups, each checked by a concept at the entry points that need it, so a
// missing operation is reported by name instead of deep inside a sampler:
//
//   group (concept)          operations                                   needed by
//   arithmetic (Tensor)      shape, axpby, scale, add_scalar, multiply,   every sampler, guidance,
//                            exp, randn_like, concat_batch, split_batch,  combiner and constraint
//                            split_channels, all_finite
//   image (ImageTensor)      permute_pixels, blur,                        views and filters (anagrams,
//                            abs_quantile_per_sample,                     hybrids), dynamic
//                            clamp_divide_per_sample, dot_per_sample,     thresholding, guidance rules
//                            mix_channels, correlate_zero_padded          that project or rescale,
//                                                                         factorized decompositions
//   host copy (HostCopyable) to_vector, from_vector                       tests, interop with plain data
//   fast paths (optional,    axpby_randn, repeat_batch, axpby_halves,     the DDPM/DDIM noisy step,
//   declared in fast_paths)  axpby_rows, axpbypcz                         batched CFG, training
//                                                                         batches (a time per row),
//                                                                         multistep updates
//
// A fast path is used only when the backend declares it (`static constexpr TensorFastPaths
// fast_paths{...}` in its traits), and a declared one must exist with the signature below: a typo
// in a specialisation is a compile error naming the operation, not a silent slow path. Each has a
// generic default built from the arithmetic group, and a fast version must give the same numbers.
//
// Conventions: images are N×C×H×W (any rank ≥ 2 works for the elementwise operations; the
// spatial operations act on the last two axes and the batch is axis 0).
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/random.hpp"

namespace scoreflow {

using Shape = std::vector<std::int64_t>;

/// Specialise for a tensor type. The primary template is intentionally undefined.
template <class T>
struct tensor_traits;

/// The optional fast paths a backend implements; declare them in its traits as
/// `static constexpr TensorFastPaths fast_paths{.axpby_randn = true, ...}`.
struct TensorFastPaths {
  bool axpby_randn = false;   ///< a·x + b·y + c·z, z ~ N(0, I) from gen in element order, no temporary
  bool repeat_batch = false;  ///< x concatenated `times` times along the batch axis
  bool axpby_halves = false;  ///< a·y[first half of the batch] + b·y[second half]
  bool axpby_rows = false;    ///< row i of the batch: a[i]·x_i + b[i]·y_i
  bool axpbypcz = false;      ///< a·x + b·y + c·z in one pass (a multistep update from three tensors)
};

namespace detail {
/// out[i] = (a·x[i] + b·y[i]) + c·z[i], a·x + b·y rounded to S first: the one loop of the
/// backends' axpbypcz and axpby_randn fast paths, equal to the two-axpby reference. z may be out
/// itself (axpby_randn draws z into its result): each element is read before it is written.
template <class S>
void axpbypcz_loop(double a, const S* x, double b, const S* y, double c, const S* z, S* out, std::size_t n) {
  const S sa = static_cast<S>(a), sb = static_cast<S>(b), sc = static_cast<S>(c);
  for (std::size_t i = 0; i < n; ++i) {
    const S m = sa * x[i] + sb * y[i];
    out[i] = S(1) * m + sc * z[i];
  }
}

template <class T>
consteval TensorFastPaths declared_fast_paths() {
  if constexpr (requires { { tensor_traits<T>::fast_paths } -> std::convertible_to<TensorFastPaths>; })
    return tensor_traits<T>::fast_paths;
  else
    return {};
}
}  // namespace detail

// clang-format off
/// The arithmetic every sampler needs.
template <class T>
concept Tensor = std::copy_constructible<T> && requires(
    const T& x, const T& y, double a, Generator& gen, std::span<const T> parts) {
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
  { tensor_traits<T>::all_finite(x) } -> std::same_as<bool>;
};

/// Image operations: only views, filters and dynamic thresholding need them.
template <class T>
concept ImageTensor = Tensor<T> && requires(
    const T& x, double a, const std::vector<std::int64_t>& index, const std::vector<double>& values) {
  { tensor_traits<T>::permute_pixels(x, index) } -> std::same_as<T>;  // y[.., p] = x[.., index[p]]
  { tensor_traits<T>::blur(x, values) } -> std::same_as<T>;       // separable, reflect padding
  { tensor_traits<T>::abs_quantile_per_sample(x, a) } -> std::same_as<std::vector<double>>;
  { tensor_traits<T>::clamp_divide_per_sample(x, values) } -> std::same_as<T>;  // clamp(x,±s)/s
  { tensor_traits<T>::dot_per_sample(x, x) } -> std::same_as<std::vector<double>>;  // Σ over axes ≥ 1 of x⊙y
  { tensor_traits<T>::mix_channels(x, values) } -> std::same_as<T>;  // y[:, c] = Σ_d M[c·C + d] x[:, d]
  { tensor_traits<T>::correlate_zero_padded(x, values) } -> std::same_as<T>;  // k×k, zeros outside
};

/// Row-major copies to and from plain doubles (tests, interop).
template <class T>
concept HostCopyable = Tensor<T> && requires(const T& x, const std::vector<double>& values, const Shape& shape) {
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
/// into one allocation (the backends draw z into the result, then combine in place). Fast path
/// `axpby_randn`; the reference is axpby(1, axpby(a, x, b, y), c, randn_like(x, gen)), and a fused
/// version must give the same numbers (round a·x + b·y to T's scalar first, then add c·z).
template <Tensor T> T axpby_randn(double a, const T& x, double b, const T& y, double c, Generator& gen) {
  if constexpr (detail::declared_fast_paths<T>().axpby_randn) {
    static_assert(requires { { tensor_traits<T>::axpby_randn(a, x, b, y, c, gen) } -> std::same_as<T>; },
                  "tensor_traits<T> declares fast_paths.axpby_randn but has no axpby_randn(a, x, b, y, c, gen) -> T");
    return tensor_traits<T>::axpby_randn(a, x, b, y, c, gen);
  } else {
    static_assert(!requires { tensor_traits<T>::axpby_randn(a, x, b, y, c, gen); },
                  "tensor_traits<T> defines axpby_randn but does not declare it in fast_paths: declare it to use it");
    return axpby(1.0, axpby(a, x, b, y), c, randn_like(x, gen));
  }
}
/// a·x + b·y + c·z: a multistep rule's update (x, this step's answer, an earlier one) in one pass
/// and one allocation. Fast path `axpbypcz`; the reference is axpby(1, axpby(a, x, b, y), c, z),
/// and a fused version must give the same numbers (round a·x + b·y to T's scalar first, then
/// add c·z), so a rule gives the same result on every backend whether it has the fast path or not.
template <Tensor T> T axpbypcz(double a, const T& x, double b, const T& y, double c, const T& z) {
  if constexpr (detail::declared_fast_paths<T>().axpbypcz) {
    static_assert(requires { { tensor_traits<T>::axpbypcz(a, x, b, y, c, z) } -> std::same_as<T>; },
                  "tensor_traits<T> declares fast_paths.axpbypcz but has no axpbypcz(a, x, b, y, c, z) -> T");
    return tensor_traits<T>::axpbypcz(a, x, b, y, c, z);
  } else {
    static_assert(!requires { tensor_traits<T>::axpbypcz(a, x, b, y, c, z); },
                  "tensor_traits<T> defines axpbypcz but does not declare it in fast_paths: declare it to use it");
    return axpby(1.0, axpby(a, x, b, y), c, z);
  }
}
template <Tensor T> T concat_batch(std::span<const T> parts) {
  return tensor_traits<T>::concat_batch(parts);
}
template <Tensor T> std::vector<T> split_batch(const T& x, std::int64_t parts) {
  return tensor_traits<T>::split_batch(x, parts);
}
/// x concatenated `times` times along the batch axis: the input of a batched guided call.
/// Fast path `repeat_batch`; the default concatenates copies.
template <Tensor T> T repeat_batch(const T& x, std::int64_t times) {
  if constexpr (detail::declared_fast_paths<T>().repeat_batch) {
    static_assert(requires { { tensor_traits<T>::repeat_batch(x, times) } -> std::same_as<T>; },
                  "tensor_traits<T> declares fast_paths.repeat_batch but has no repeat_batch(x, times) -> T");
    return tensor_traits<T>::repeat_batch(x, times);
  } else {
    static_assert(!requires { tensor_traits<T>::repeat_batch(x, times); },
                  "tensor_traits<T> defines repeat_batch but does not declare it in fast_paths: declare it to use it");
    const std::vector<T> parts(static_cast<std::size_t>(times), x);
    return concat_batch(std::span<const T>(parts));
  }
}
/// a·y[first half of the batch] + b·y[second half]: classifier-free guidance straight from one
/// batched answer, without splitting it first. Fast path `axpby_halves`; the default is
/// split_batch then axpby.
template <Tensor T> T axpby_halves(double a, double b, const T& y) {
  if constexpr (detail::declared_fast_paths<T>().axpby_halves) {
    static_assert(requires { { tensor_traits<T>::axpby_halves(a, b, y) } -> std::same_as<T>; },
                  "tensor_traits<T> declares fast_paths.axpby_halves but has no axpby_halves(a, b, y) -> T");
    return tensor_traits<T>::axpby_halves(a, b, y);
  } else {
    static_assert(!requires { tensor_traits<T>::axpby_halves(a, b, y); },
                  "tensor_traits<T> defines axpby_halves but does not declare it in fast_paths: declare it to use it");
    const auto halves = split_batch(y, 2);
    return axpby(a, halves[0], b, halves[1]);
  }
}
/// Row i of the batch: a[i]·x_i + b[i]·y_i — a process formula where every sample has its own
/// time (a training batch). Fast path `axpby_rows`; the default splits the batch into rows.
template <Tensor T>
T axpby_rows(const std::vector<double>& a, const T& x, const std::vector<double>& b, const T& y) {
  const auto n = shape(x).at(0);
  if (static_cast<std::int64_t>(a.size()) != n || static_cast<std::int64_t>(b.size()) != n)
    throw shape_error(detail::concat("axpby_rows: ", a.size(), " and ", b.size(), " coefficients for a batch of ", n));
  if constexpr (detail::declared_fast_paths<T>().axpby_rows) {
    static_assert(requires { { tensor_traits<T>::axpby_rows(a, x, b, y) } -> std::same_as<T>; },
                  "tensor_traits<T> declares fast_paths.axpby_rows but has no axpby_rows(a, x, b, y) -> T");
    return tensor_traits<T>::axpby_rows(a, x, b, y);
  } else {
    static_assert(!requires { tensor_traits<T>::axpby_rows(a, x, b, y); },
                  "tensor_traits<T> defines axpby_rows but does not declare it in fast_paths: declare it to use it");
    const auto xs = split_batch(x, n), ys = split_batch(y, n);
    std::vector<T> rows;
    rows.reserve(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) rows.push_back(axpby(a[i], xs[i], b[i], ys[i]));
    return concat_batch(std::span<const T>(rows));
  }
}
template <Tensor T> std::pair<T, T> split_channels(const T& x, std::int64_t first) {
  return tensor_traits<T>::split_channels(x, first);
}
template <Tensor T> bool all_finite(const T& x) { return tensor_traits<T>::all_finite(x); }
template <Tensor T> std::int64_t batch_size(const T& x) { return shape(x).at(0); }

template <ImageTensor T> T permute_pixels(const T& x, const std::vector<std::int64_t>& index) {
  return tensor_traits<T>::permute_pixels(x, index);
}
template <ImageTensor T> T blur(const T& x, const std::vector<double>& kernel) {
  return tensor_traits<T>::blur(x, kernel);
}
template <ImageTensor T> std::vector<double> abs_quantile_per_sample(const T& x, double q) {
  return tensor_traits<T>::abs_quantile_per_sample(x, q);
}
template <ImageTensor T> T clamp_divide_per_sample(const T& x, const std::vector<double>& s) {
  return tensor_traits<T>::clamp_divide_per_sample(x, s);
}

/// ⟨x_n, y_n⟩ for every sample n of the batch (the sum over all non-batch axes), accumulated in
/// double precision.
template <ImageTensor T> std::vector<double> dot_per_sample(const T& x, const T& y) {
  if (shape(x) != shape(y)) throw shape_error("dot_per_sample: the two tensors differ in shape");
  return tensor_traits<T>::dot_per_sample(x, y);
}

/// y[n, c] = Σ_d M[c][d] x[n, d] over axis 1 (M row-major, C×C): channel means, colour splits.
template <ImageTensor T> T mix_channels(const T& x, const std::vector<double>& matrix) {
  const auto s = shape(x);
  if (s.size() < 3 || static_cast<std::int64_t>(matrix.size()) != s[1] * s[1])
    throw shape_error(detail::concat("mix_channels: a ", matrix.size(), "-entry matrix for ",
                                     s.size() < 3 ? 0 : s[1], " channels (needs C×C and an N×C×… tensor)"));
  return tensor_traits<T>::mix_channels(x, matrix);
}
/// Cross-correlation of every H×W plane with a k×k kernel (row-major, k odd), zero outside the
/// image, output the input's size: torch's conv2d(x, kernel, padding = k // 2).
template <ImageTensor T> T correlate_zero_padded(const T& x, const std::vector<double>& kernel) {
  const auto k = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(kernel.size()))));
  if (k * k != static_cast<std::int64_t>(kernel.size()) || k % 2 == 0)
    throw shape_error(detail::concat("correlate_zero_padded: ", kernel.size(), " taps is not an odd square kernel"));
  if (shape(x).size() < 2) throw shape_error("correlate_zero_padded: needs at least two axes");
  return tensor_traits<T>::correlate_zero_padded(x, kernel);
}

template <HostCopyable T> std::vector<double> to_vector(const T& x) { return tensor_traits<T>::to_vector(x); }
template <HostCopyable T> T from_vector(const std::vector<double>& v, const Shape& s, const T& like) {
  return tensor_traits<T>::from_vector(v, s, like);
}
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
