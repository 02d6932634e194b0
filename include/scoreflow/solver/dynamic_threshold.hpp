#pragma once
// Dynamic thresholding of x̂₀ (Saharia et al. 2022, Imagen §2.3), as DeepFloyd IF uses it:
// s = clamp(quantile(|x̂₀|, ratio) per sample, 1, max_value); x̂₀ ← clamp(x̂₀, −s, s) / s.
#include <algorithm>
#include <cmath>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

class DynamicThreshold {
 public:
  explicit DynamicThreshold(double ratio = 0.95, double max_value = 1.5) : ratio_(ratio), max_value_(max_value) {
    detail::require(ratio > 0.0 && ratio <= 1.0, "dynamic_threshold.ratio", ratio, "must lie in (0, 1]");
    detail::require(std::isfinite(max_value) && max_value >= 1.0, "dynamic_threshold.max_value", max_value,
                    "must be finite and at least 1");
  }
  [[nodiscard]] double ratio() const { return ratio_; }
  [[nodiscard]] double max_value() const { return max_value_; }

  template <ImageTensor T>
  T operator()(const T& x0) const {
    auto s = ops::abs_quantile_per_sample(x0, ratio_);
    for (auto& v : s) v = std::clamp(v, 1.0, max_value_);
    return ops::clamp_divide_per_sample(x0, s);
  }

 private:
  double ratio_;
  double max_value_;
};

}  // namespace scoreflow
