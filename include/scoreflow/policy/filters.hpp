#pragma once
// Gaussian blur equal to torchvision's `gaussian_blur`, and linear image filters built from it
// (the low-/high-pass pair of hybrid images, seed §1.9).
#include <cmath>
#include <optional>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

class GaussianBlur {
 public:
  /// σ defaults as torchvision does: σ = 0.3((k − 1)/2 − 1) + 0.8 (seed §1.2).
  explicit GaussianBlur(int kernel_size, std::optional<double> sigma = std::nullopt)
      : kernel_size_(kernel_size),
        sigma_(sigma.value_or(0.3 * ((kernel_size - 1) * 0.5 - 1.0) + 0.8)) {
    detail::require(kernel_size > 0 && kernel_size % 2 == 1, "kernel_size", kernel_size,
                    "must be odd and positive");
    detail::require(std::isfinite(sigma_) && sigma_ > 0.0, "sigma", sigma_, "must be finite and positive");
  }

  [[nodiscard]] int kernel_size() const { return kernel_size_; }
  [[nodiscard]] double sigma() const { return sigma_; }

  /// torchvision `_get_gaussian_kernel1d`: x = linspace(−(k−1)/2, (k−1)/2, k),
  /// pdf = exp(−x²/(2σ²)), kernel = pdf / Σ pdf.
  [[nodiscard]] std::vector<double> kernel() const {
    std::vector<double> k(static_cast<std::size_t>(kernel_size_));
    const double half = (kernel_size_ - 1) * 0.5;
    double sum = 0.0;
    for (int i = 0; i < kernel_size_; ++i) {
      const double x = -half + i;
      k[static_cast<std::size_t>(i)] = std::exp(-0.5 * (x / sigma_) * (x / sigma_));
      sum += k[static_cast<std::size_t>(i)];
    }
    for (auto& v : k) v /= sum;
    return k;
  }

  template <ImageTensor T>
  T operator()(const T& x) const { return ops::blur(x, kernel()); }

  friend bool operator==(const GaussianBlur&, const GaussianBlur&) = default;

 private:
  int kernel_size_;
  double sigma_;
};

/// A linear filter a·I + Σ_j b_j·G_j over the last two axes. Kept in this symbolic form so that a
/// set of filters can be checked to sum exactly to the identity (hybrid images need that).
class Filter {
 public:
  struct Term {
    GaussianBlur blur;
    double weight;
  };

  Filter(double identity_weight, std::vector<Term> terms)
      : identity_weight_(identity_weight), terms_(std::move(terms)) {}

  static Filter identity() { return {1.0, {}}; }
  /// Seed §1.9: low frequencies, a Gaussian blur (kernel 33, σ 2 recommended).
  static Filter low_pass(GaussianBlur blur = GaussianBlur(33, 2.0)) { return {0.0, {{blur, 1.0}}}; }
  /// The complement of `low_pass`: x − blur(x).
  static Filter high_pass(GaussianBlur blur = GaussianBlur(33, 2.0)) { return {1.0, {{blur, -1.0}}}; }
  /// blur_narrow(x) − blur_wide(x).
  static Filter band_pass(GaussianBlur narrow, GaussianBlur wide) {
    return {0.0, {{narrow, 1.0}, {wide, -1.0}}};
  }

  template <ImageTensor T>
  T operator()(const T& x) const {
    T out = ops::scale(identity_weight_, x);
    for (const auto& term : terms_) out = ops::axpby(1.0, out, term.weight, term.blur(x));
    return out;
  }

  [[nodiscard]] double identity_weight() const { return identity_weight_; }
  [[nodiscard]] const std::vector<Term>& terms() const { return terms_; }

 private:
  double identity_weight_;
  std::vector<Term> terms_;
};

/// True when Σ filters = I exactly: identity weights sum to 1 and every blur's weights cancel.
inline bool sums_to_identity(const std::vector<Filter>& filters, double tolerance = 1e-12) {
  double identity = 0.0;
  std::vector<Filter::Term> blurs;
  for (const auto& f : filters) {
    identity += f.identity_weight();
    for (const auto& term : f.terms()) {
      bool merged = false;
      for (auto& b : blurs)
        if (b.blur == term.blur) {
          b.weight += term.weight;
          merged = true;
        }
      if (!merged) blurs.push_back(term);
    }
  }
  if (std::abs(identity - 1.0) > tolerance) return false;
  for (const auto& b : blurs)
    if (std::abs(b.weight) > tolerance) return false;
  return true;
}

}  // namespace scoreflow
