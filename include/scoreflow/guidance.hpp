#pragma once
// Guidance policies: how conditional (and unconditional) model answers become one prediction.
// A guidance policy takes the list of (input, condition) pairs a combiner asks for and returns
// one prediction per pair, making as few model calls as the condition type allows.
#include <cmath>
#include <ranges>
#include <vector>

#include "scoreflow/denoiser.hpp"
#include "scoreflow/errors.hpp"

namespace scoreflow {

/// The conditional model as it is.
struct NoGuidance {
  template <TensorList Xs, class M, class Time, class C, class T = std::ranges::range_value_t<Xs>>
  std::vector<Prediction<T>> operator()(M& model, const Xs& xs, Time time, const std::vector<C>& conds,
                                        const CallSite& site, bool check_finite) const {
    return evaluate(model, xs, time, conds, site, check_finite);
  }
};

/// Classifier-free guidance (Ho & Salimans 2022; seed §1.6): ε = ε_u + γ(ε_c − ε_u).
/// Conditional and unconditional inputs go through one batched call when C concatenates.
/// A learned variance is taken from the conditional branch, as DeepFloyd IF does.
template <class C>
class ClassifierFree {
 public:
  ClassifierFree(double gamma, C unconditional) : gamma_(gamma), unconditional_(std::move(unconditional)) {
    detail::require(std::isfinite(gamma), "gamma", gamma, "must be finite");
  }
  [[nodiscard]] double gamma() const { return gamma_; }
  [[nodiscard]] const C& unconditional() const { return unconditional_; }

  template <TensorList Xs, class M, class Time, class T = std::ranges::range_value_t<Xs>>
  std::vector<Prediction<T>> operator()(M& model, const Xs& xs, Time time, const std::vector<C>& conds,
                                        const CallSite& site, bool check_finite) const {
    const std::size_t n = std::ranges::size(xs);
    std::vector<T> inputs;
    inputs.reserve(2 * n);
    inputs.insert(inputs.end(), std::ranges::begin(xs), std::ranges::end(xs));
    inputs.insert(inputs.end(), std::ranges::begin(xs), std::ranges::end(xs));
    std::vector<C> all = conds;
    all.insert(all.end(), n, unconditional_);
    auto answers = evaluate(model, inputs, time, all, site, check_finite);
    std::vector<Prediction<T>> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      auto& cond = answers[i];
      const auto& uncond = answers[n + i];
      cond.value = ops::axpby(1.0 - gamma_, uncond.value, gamma_, cond.value);
      out.push_back(std::move(cond));
    }
    return out;
  }

 private:
  double gamma_;
  C unconditional_;
};

}  // namespace scoreflow
