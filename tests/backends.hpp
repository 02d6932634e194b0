#pragma once
// The tensor backends every conformance suite runs over. The torch test executable defines
// SCOREFLOW_TEST_TORCH and adds torch::Tensor.
#include <doctest/doctest.h>

#include "scoreflow/core.hpp"
#ifdef SCOREFLOW_TEST_TORCH
#include "scoreflow/torch/tensor.hpp"
#define SCOREFLOW_BACKENDS xt::xarray<float>, xt::xarray<double>, torch::Tensor
#else
#define SCOREFLOW_BACKENDS xt::xarray<float>, xt::xarray<double>
#endif

namespace sftest {

/// A tensor of backend T from values (float32 for torch).
template <class T>
T make(const std::vector<double>& values, const scoreflow::Shape& shape);

template <>
inline xt::xarray<float> make(const std::vector<double>& v, const scoreflow::Shape& s) {
  return scoreflow::ops::from_vector(v, s, xt::xarray<float>{});
}
template <>
inline xt::xarray<double> make(const std::vector<double>& v, const scoreflow::Shape& s) {
  return scoreflow::ops::from_vector(v, s, xt::xarray<double>{});
}
#ifdef SCOREFLOW_TEST_TORCH
template <>
inline torch::Tensor make(const std::vector<double>& v, const scoreflow::Shape& s) {
  return scoreflow::ops::from_vector(v, s, torch::zeros({1}, torch::kFloat32));
}
#endif

template <class T>
T zeros(const scoreflow::Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return make<T>(std::vector<double>(static_cast<std::size_t>(n), 0.0), s);
}

template <class T>
T full(const scoreflow::Shape& s, double value) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return make<T>(std::vector<double>(static_cast<std::size_t>(n), value), s);
}

/// Tolerance for comparing results of backend T (float backends round at ~1e-7).
template <class T>
constexpr double tolerance() {
  if constexpr (std::is_same_v<T, xt::xarray<double>>) return 1e-12;
  else return 1e-5;
}

template <class T>
double max_abs_diff(const T& a, const T& b) {
  auto va = scoreflow::ops::to_vector(a), vb = scoreflow::ops::to_vector(b);
  REQUIRE(va.size() == vb.size());
  double m = 0;
  for (std::size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

}  // namespace sftest
