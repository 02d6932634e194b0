#pragma once
// Combiners: how one or several prompts shape one prediction. A combiner says which
// (input, condition) pairs the model must see — all of them go through one guidance call, hence
// one batched model call — and how the answers combine back into one prediction.
#include <cmath>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "scoreflow/denoiser.hpp"
#include "scoreflow/errors.hpp"
#include "scoreflow/policy/filters.hpp"
#include "scoreflow/policy/views.hpp"
#include "scoreflow/process/prediction.hpp"

namespace scoreflow {

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

namespace detail {
/// Several prompts, one call: the structure anagrams and factorized images share. Part i gives
/// its condition and `part.model_input(x)`; the combiner's inputs go through one guided call (one
/// batched model call where the condition concatenates); each answer comes back through
/// `part.map_back(answer)`, and the answers are reduced with equal weights: their mean
/// (anagrams) or their sum (factorized images, whose filters sum to the identity).
template <class C, class Part>
class Partwise {
 public:
  /// mean (anagrams), sum (factorized images), or alternate: step k uses part (k − 1) mod n alone
  /// (the reference's "alternate" reduction; here only that part is evaluated, so a step costs one
  /// prompt's model call instead of n).
  enum class Reduction { mean, sum, alternate };

  [[nodiscard]] Reduction reduction() const { return reduction_; }
  /// The combiner the sampler uses at `step` (1-based): itself, or for `alternate` the one part
  /// whose turn it is.
  [[nodiscard]] bool alternates() const { return reduction_ == Reduction::alternate && parts_.size() > 1; }
  [[nodiscard]] Partwise at_step(std::size_t step) const {
    Partwise one = *this;
    one.parts_ = {parts_[(step == 0 ? 0 : step - 1) % parts_.size()]};
    return one;
  }

  [[nodiscard]] const std::vector<Part>& parts() const { return parts_; }

  template <ImageTensor T>
  std::vector<T> inputs(const T& x) const {
    std::vector<T> out;
    out.reserve(parts_.size());
    for (const auto& p : parts_) out.push_back(p.model_input(x));
    return out;
  }
  std::vector<C> conditions() const {
    std::vector<C> out;
    for (const auto& p : parts_) out.push_back(p.model_condition());
    return out;
  }
  /// Each part's own guidance scale, where it sets one (ClassifierFree uses it instead of its γ).
  std::vector<std::optional<double>> guidance_scales() const {
    std::vector<std::optional<double>> out;
    for (const auto& p : parts_) out.push_back(p.guidance_scale);
    return out;
  }
  template <ImageTensor T>
  Prediction<T> combine(std::vector<Prediction<T>> answers) const {
    for (std::size_t i = 0; i < parts_.size(); ++i) parts_[i].map_back(answers[i]);
    const double w = reduction_ == Reduction::mean ? 1.0 / static_cast<double>(parts_.size()) : 1.0;
    if (reduction_ == Reduction::alternate && parts_.size() > 1)
      throw invalid_option("alternate reduction: combine needs the step's part (at_step) first");
    return weighted_sum(answers, std::vector<double>(parts_.size(), w));
  }

 protected:
  Partwise(std::vector<Part> parts, Reduction reduction, const char* what)
      : parts_(std::move(parts)), reduction_(reduction) {
    require(!parts_.empty(), what, 0, "needs at least one prompt");
  }

 private:
  std::vector<Part> parts_;
  Reduction reduction_;
};
}  // namespace detail

/// One prompt of an anagram: the model sees view(x); its answer is mapped back by view⁻¹ (a
/// learned variance by the permutation only: a variance is never negated).
template <class C>
struct AnagramPart {
  C condition;
  View view;
  std::optional<double> guidance_scale{};  ///< this prompt's γ under ClassifierFree (unset: the policy's)
  template <ImageTensor T>
  T model_input(const T& x) const { return view.apply(x); }
  /// A condition with an image-space part (DeepFloyd IF stage II's upsampled image) is seen through
  /// the view too, as the reference applies the view to cat(x_t, upsampled): condition_traits<C>
  /// provides apply_view(c, view) for such conditions.
  C model_condition() const {
    if constexpr (requires { condition_traits<C>::apply_view(condition, view); })
      return condition_traits<C>::apply_view(condition, view);
    else
      return condition;
  }
  template <ImageTensor T>
  void map_back(Prediction<T>& answer) const {
    answer.value = view.invert(answer.value);
    if (answer.variance) answer.variance = view.invert_positions(*answer.variance);
  }
};

struct AnagramOptions {
  /// Average the parts (the paper), or alternate between them step by step.
  bool alternate = false;
  /// Accept views that are not orthogonal (View::scaled): the model then sees noise that is not
  /// N(0, I), and the anagram no longer samples the product the paper describes.
  bool allow_non_orthogonal = false;
};

/// Visual anagrams (seed §1.8; Geng et al. 2024), generalised to N prompts: prompt i sees
/// view_i(x); its answer is mapped back by view_i⁻¹; the answers are averaged.
///   ε = ½ (CFG(x, p₁) + flip(CFG(flip(x), p₂)))  is  Anagram{{{p₁, identity}, {p₂, flip_vertical}}}.
template <class C>
class Anagram : public detail::Partwise<C, AnagramPart<C>> {
 public:
  using Part = AnagramPart<C>;
  using Base = detail::Partwise<C, Part>;
  explicit Anagram(std::vector<Part> parts, AnagramOptions options = {})
      : Base(std::move(parts), options.alternate ? Base::Reduction::alternate : Base::Reduction::mean, "anagram parts") {
    if (!options.allow_non_orthogonal)
      for (std::size_t i = 0; i < this->parts().size(); ++i)
        if (!this->parts()[i].view.is_orthogonal())
          throw invalid_option(detail::concat(
              "anagram part ", i, ": view ", this->parts()[i].view.name(), " scaled by ", this->parts()[i].view.scale(),
              " is not orthogonal (the model would see noise of standard deviation ",
              std::abs(this->parts()[i].view.scale()), ", not N(0, I)); set AnagramOptions::allow_non_orthogonal "
              "to use it anyway"));
  }
};

/// One prompt of a factorized image: the model sees x; its answer (and a learned variance) passes
/// the part's filter.
template <class C>
struct FactorizedPart {
  C condition;
  Filter filter;
  std::optional<double> guidance_scale{};  ///< this prompt's γ under ClassifierFree (unset: the policy's)
  template <ImageTensor T>
  T model_input(const T& x) const { return x; }
  const C& model_condition() const { return condition; }
  template <ImageTensor T>
  void map_back(Prediction<T>& answer) const {
    answer.value = filter(answer.value);
    if (answer.variance) answer.variance = filter(*answer.variance);
  }
};

/// Factorized images (seed §1.9 hybrids; Geng et al. 2024 "factorized diffusion"): prompt i's
/// answer passes filter_i and the results are summed. The filters must sum to the identity, so a
/// single prompt repeated gives plain sampling.
template <class C>
class Factorized : public detail::Partwise<C, FactorizedPart<C>> {
 public:
  using Part = FactorizedPart<C>;
  explicit Factorized(std::vector<Part> parts)
      : detail::Partwise<C, Part>(std::move(parts), detail::Partwise<C, Part>::Reduction::sum, "factorized parts") {
    std::vector<Filter> filters;
    for (const auto& p : this->parts()) filters.push_back(p.filter);
    if (!sums_to_identity(filters))
      throw invalid_option("factorized filters: they must sum to the identity (e.g. low_pass and high_pass of the same blur)");
  }

  /// Seed §1.9: low frequencies of prompt `low`, high frequencies of prompt `high`.
  static Factorized hybrid(C low, C high, GaussianBlur blur = GaussianBlur(33, 2.0)) {
    return Factorized({{std::move(low), Filter::low_pass(blur)}, {std::move(high), Filter::high_pass(blur)}});
  }
};

}  // namespace scoreflow
