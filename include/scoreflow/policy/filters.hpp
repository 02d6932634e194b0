#pragma once
// Gaussian blur equal to torchvision's `gaussian_blur`, and linear image filters built from it
// (the low-/high-pass pair of hybrid images, seed §1.9).
#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
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

/// One primitive linear map of an image: a Gaussian blur over the last two axes, the channel
/// mean broadcast to every channel, or a diagonal motion blur.
class LinearMap {
 public:
  enum class Kind { gaussian_blur, channel_mean, motion_blur };

  /// torchvision's gaussian_blur (reflect padding).
  static LinearMap blur(GaussianBlur b) { return LinearMap(Kind::gaussian_blur, b, 0); }
  /// Every channel replaced by the mean over the channels: the grayscale part of an image.
  static LinearMap channel_mean() { return LinearMap(Kind::channel_mean, GaussianBlur(1, 1.0), 0); }
  /// The mean of `taps` pixels along the main diagonal ("\"), zero outside the image: the
  /// reference's motion blur, conv2d(x, eye(n)/n, padding = n // 2), 7 taps at 64×64.
  static LinearMap motion_blur(int taps = 7) {
    detail::require(taps > 0 && taps % 2 == 1, "motion blur taps", taps, "must be odd and positive");
    return LinearMap(Kind::motion_blur, GaussianBlur(1, 1.0), taps);
  }

  [[nodiscard]] Kind kind() const { return kind_; }

  template <ImageTensor T>
  T operator()(const T& x) const {
    switch (kind_) {
      case Kind::gaussian_blur: return blur_(x);
      case Kind::channel_mean: {
        const auto s = ops::shape(x);
        if (s.size() < 3) throw shape_error("channel mean: needs an N×C×H×W tensor");
        const auto c = static_cast<std::size_t>(s[1]);
        return ops::mix_channels(x, std::vector<double>(c * c, 1.0 / static_cast<double>(c)));
      }
      case Kind::motion_blur: {
        const auto n = static_cast<std::size_t>(taps_);
        std::vector<double> kernel(n * n, 0.0);
        for (std::size_t i = 0; i < n; ++i) kernel[i * n + i] = 1.0 / static_cast<double>(n);
        return ops::correlate_zero_padded(x, kernel);
      }
    }
    return x;
  }

  friend bool operator==(const LinearMap&, const LinearMap&) = default;

 private:
  LinearMap(Kind k, GaussianBlur b, int taps) : kind_(k), blur_(b), taps_(taps) {}
  Kind kind_;
  GaussianBlur blur_;
  int taps_;
};

/// A linear filter Σ_j w_j · (M_j,1 ∘ … ∘ M_j,k) of primitive maps (an empty chain is the
/// identity). Kept in this symbolic form so that a set of filters can be checked to sum exactly to
/// the identity, as factorized images need (Geng et al., "Factorized Diffusion", ECCV 2024, §3).
class Filter {
 public:
  struct Term {
    std::vector<LinearMap> chain;  ///< applied first to last
    double weight;
  };

  explicit Filter(std::vector<Term> terms) : terms_(std::move(terms)) {}
  /// a·I + Σ_j b_j G_j, the form of the seed's filters.
  Filter(double identity_weight, std::vector<std::pair<GaussianBlur, double>> blurs) {
    if (identity_weight != 0.0) terms_.push_back({{}, identity_weight});
    for (const auto& [b, w] : blurs) terms_.push_back({{LinearMap::blur(b)}, w});
  }

  static Filter identity() { return Filter(1.0, {}); }
  /// s·I: Factorized Diffusion's scaling component (§4: CFG, negation and composition are sums of
  /// scaled prompts, e.g. −6.5·"" + 7.5·"a corgi" is CFG 7.5).
  static Filter scaled(double s) {
    detail::require(std::isfinite(s), "filter scale", s, "must be finite");
    return Filter(s, {});
  }
  /// Seed §1.9: low frequencies, a Gaussian blur (kernel 33, σ 2 recommended).
  static Filter low_pass(GaussianBlur blur = GaussianBlur(33, 2.0)) { return Filter(0.0, {{blur, 1.0}}); }
  /// The complement of `low_pass`: x − blur(x).
  static Filter high_pass(GaussianBlur blur = GaussianBlur(33, 2.0)) { return Filter(1.0, {{blur, -1.0}}); }
  /// blur_narrow(x) − blur_wide(x).
  static Filter band_pass(GaussianBlur narrow, GaussianBlur wide) { return Filter(0.0, {{narrow, 1.0}, {wide, -1.0}}); }

  /// The reference's three-band split (visual_anagrams/views/view_hybrid.py, TripleView): with
  /// m = G₁(x), low = G₂(m) (the second blur of the first), medium = m − G₂(m), high = x − m;
  /// kernel 25, σ₁ = 1, σ₂ = 2 at 64×64.
  static Filter triple_low(GaussianBlur g1 = GaussianBlur(25, 1.0), GaussianBlur g2 = GaussianBlur(25, 2.0)) {
    return Filter({{{LinearMap::blur(g1), LinearMap::blur(g2)}, 1.0}});
  }
  static Filter triple_medium(GaussianBlur g1 = GaussianBlur(25, 1.0), GaussianBlur g2 = GaussianBlur(25, 2.0)) {
    return Filter({{{LinearMap::blur(g1)}, 1.0}, {{LinearMap::blur(g1), LinearMap::blur(g2)}, -1.0}});
  }
  static Filter triple_high(GaussianBlur g1 = GaussianBlur(25, 1.0)) {
    return Filter({{{}, 1.0}, {{LinearMap::blur(g1)}, -1.0}});
  }
  /// The channel mean (grayscale) and its residual (colour), the reference's grayscale / color.
  static Filter grayscale() { return Filter({{{LinearMap::channel_mean()}, 1.0}}); }
  static Filter color() { return Filter({{{}, 1.0}, {{LinearMap::channel_mean()}, -1.0}}); }
  /// The reference's motion / motion_res pair.
  static Filter motion(int taps = 7) { return Filter({{{LinearMap::motion_blur(taps)}, 1.0}}); }
  static Filter motion_residual(int taps = 7) {
    return Filter({{{}, 1.0}, {{LinearMap::motion_blur(taps)}, -1.0}});
  }

  template <ImageTensor T>
  T operator()(const T& x) const {
    // Chains that share a prefix (the triple split's G₁) are evaluated once.
    std::vector<std::pair<std::vector<LinearMap>, T>> done;
    const auto evaluate = [&](const std::vector<LinearMap>& chain) -> T {
      for (const auto& [c, value] : done)
        if (c == chain) return value;
      T value = x;
      std::size_t from = 0;
      for (std::size_t len = chain.size(); len > 0 && from == 0; --len)
        for (const auto& [c, v] : done)
          if (c.size() == len && std::equal(c.begin(), c.end(), chain.begin())) {
            value = v;
            from = len;
            break;
          }
      for (std::size_t i = from; i < chain.size(); ++i) value = chain[i](value);
      done.emplace_back(chain, value);
      return value;
    };
    std::optional<T> out;
    for (const auto& term : terms_) {
      const T part = term.chain.empty() ? x : evaluate(term.chain);
      out = out ? ops::axpby(1.0, *out, term.weight, part) : ops::scale(term.weight, part);
    }
    return out ? *out : ops::scale(0.0, x);
  }

  [[nodiscard]] const std::vector<Term>& terms() const { return terms_; }

 private:
  std::vector<Term> terms_;
};

/// True when Σ filters = I exactly: the weights of the empty chain sum to 1 and those of every
/// other chain cancel (chains compare map by map, so G₁∘G₂ and G₂∘G₁ count as different).
inline bool sums_to_identity(const std::vector<Filter>& filters, double tolerance = 1e-12) {
  std::vector<Filter::Term> merged;
  for (const auto& f : filters)
    for (const auto& term : f.terms()) {
      auto it = std::find_if(merged.begin(), merged.end(), [&](const Filter::Term& m) { return m.chain == term.chain; });
      if (it == merged.end()) merged.push_back(term);
      else it->weight += term.weight;
    }
  for (const auto& m : merged)
    if (std::abs(m.weight - (m.chain.empty() ? 1.0 : 0.0)) > tolerance) return false;
  return std::any_of(merged.begin(), merged.end(), [](const Filter::Term& m) { return m.chain.empty(); });
}

}  // namespace scoreflow
