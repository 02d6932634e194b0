#pragma once
// Combiners: how one or several prompts shape one prediction. A combiner says which
// (input, condition) pairs the model must see — all of them go through one guidance call, hence
// one batched model call — and how the answers combine back into one prediction.
#include <cstddef>
#include <span>
#include <vector>

#include "scoreflow/denoiser.hpp"
#include "scoreflow/errors.hpp"
#include "scoreflow/policy/filters.hpp"
#include "scoreflow/policy/views.hpp"
#include "scoreflow/process/prediction.hpp"

namespace scoreflow {

namespace detail {
/// The condition of every part, in order (each part is a {condition, …} pair).
template <class C, class Parts>
std::vector<C> conditions_of(const Parts& parts) {
  std::vector<C> out;
  for (const auto& p : parts) out.push_back(p.condition);
  return out;
}
}  // namespace detail

/// One prompt (condition), used as it is.
template <class C>
struct SinglePrompt {
  C condition{};

  /// A view of x itself (no copy); valid while x lives.
  template <Tensor T>
  std::span<const T> inputs(const T& x) const { return {&x, 1}; }
  std::vector<C> conditions() const { return {condition}; }
  template <Tensor T>
  Prediction<T> combine(std::vector<Prediction<T>> answers) const { return std::move(answers.at(0)); }
};
SinglePrompt()->SinglePrompt<NoCondition>;

/// Visual anagrams (seed §1.8; Geng et al. 2024), generalised to N prompts: prompt i sees
/// view_i(x); its answer is mapped back by view_i⁻¹; the answers are averaged.
///   ε = ½ (CFG(x, p₁) + flip(CFG(flip(x), p₂)))  is  Anagram{{{p₁, identity}, {p₂, flip_vertical}}}.
template <class C>
class Anagram {
 public:
  struct Part {
    C condition;
    View view;
  };
  explicit Anagram(std::vector<Part> parts) : parts_(std::move(parts)) {
    detail::require(!parts_.empty(), "anagram parts", 0, "needs at least one prompt");
  }
  [[nodiscard]] const std::vector<Part>& parts() const { return parts_; }

  template <ImageTensor T>
  std::vector<T> inputs(const T& x) const {
    std::vector<T> out;
    for (const auto& p : parts_) out.push_back(p.view.apply(x));
    return out;
  }
  std::vector<C> conditions() const { return detail::conditions_of<C>(parts_); }
  template <ImageTensor T>
  Prediction<T> combine(std::vector<Prediction<T>> answers) const {
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      answers[i].value = parts_[i].view.invert(answers[i].value);
      if (answers[i].variance) answers[i].variance = parts_[i].view.invert_positions(*answers[i].variance);
    }
    return weighted_sum(answers, std::vector<double>(parts_.size(), 1.0 / static_cast<double>(parts_.size())));
  }

 private:
  std::vector<Part> parts_;
};

/// Factorized images (seed §1.9 hybrids; Geng et al. 2024 "factorized diffusion"): prompt i's
/// answer passes filter_i and the results are summed. The filters must sum to the identity, so a
/// single prompt repeated gives plain sampling.
template <class C>
class Factorized {
 public:
  struct Part {
    C condition;
    Filter filter;
  };
  explicit Factorized(std::vector<Part> parts) : parts_(std::move(parts)) {
    detail::require(!parts_.empty(), "factorized parts", 0, "needs at least one prompt");
    std::vector<Filter> filters;
    for (const auto& p : parts_) filters.push_back(p.filter);
    if (!sums_to_identity(filters))
      throw invalid_option("factorized filters: they must sum to the identity (e.g. low_pass and high_pass of the same blur)");
  }

  /// Seed §1.9: low frequencies of prompt `low`, high frequencies of prompt `high`.
  static Factorized hybrid(C low, C high, GaussianBlur blur = GaussianBlur(33, 2.0)) {
    return Factorized({{std::move(low), Filter::low_pass(blur)}, {std::move(high), Filter::high_pass(blur)}});
  }

  template <ImageTensor T>
  std::vector<T> inputs(const T& x) const { return std::vector<T>(parts_.size(), x); }
  std::vector<C> conditions() const { return detail::conditions_of<C>(parts_); }
  template <ImageTensor T>
  Prediction<T> combine(std::vector<Prediction<T>> answers) const {
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      answers[i].value = parts_[i].filter(answers[i].value);
      if (answers[i].variance) answers[i].variance = parts_[i].filter(*answers[i].variance);
    }
    return weighted_sum(answers, std::vector<double>(parts_.size(), 1.0));
  }

 private:
  std::vector<Part> parts_;
};

}  // namespace scoreflow
