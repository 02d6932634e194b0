#pragma once
// Guidance policies: how conditional (and unconditional) model answers become one prediction.
// A guidance policy takes the list of (input, condition) pairs a combiner asks for and returns
// one prediction per pair, making as few model calls as the condition type allows.
#include <cmath>
#include <optional>
#include <span>
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
/// Conditional and unconditional inputs go through one batched call when C concatenates (with
/// x passed once to a model that SharesInputAcrossConditions).
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
    if constexpr (ConcatenableCondition<C>) {
      // One call on [x₁ … xₙ, x₁ … xₙ] with [u … u, c₁ … cₙ] (unconditional first, as diffusers
      // does), guided straight from the answer's two halves: one pass over the output. A model
      // that shares its input across conditions gets x once; any other gets x copied twice.
      const std::span<const T> inputs(std::ranges::data(xs), n);
      std::optional<T> joined;
      if (n > 1) joined = ops::concat_batch(inputs);
      const T& x = n == 1 ? inputs[0] : *joined;
      std::vector<C> all(n, unconditional_);
      all.insert(all.end(), conds.begin(), conds.end());
      const C c = condition_traits<C>::concat(std::span<const C>(all));
      Shape both = ops::shape(x);
      both.at(0) *= 2;
      T answer = [&]() -> T {
        if constexpr (SharesInputAcrossConditions<decltype(model.fn), T, Time, C>)
          return model.fn.under_conditions(x, time, c);
        else
          return model.fn(ops::repeat_batch(x, 2), time, c);
      }();
      auto whole = detail::check_and_wrap<T>(std::move(answer), both, model.prediction, model.variance, site,
                                             check_finite);
      std::optional<T> variance;  // the conditional half's
      if (whole.variance) variance = ops::split_batch(*whole.variance, 2)[1];
      return detail::split_prediction(
          Prediction<T>{ops::axpby_halves(1.0 - gamma_, gamma_, whole.value), whole.kind, std::move(variance)}, n);
    } else {
      // Two calls per input, straight on the caller's tensors.
      const auto call = [&](const T& x, const C& c) {
        return detail::check_and_wrap<T>(model.fn(x, time, c), ops::shape(x), model.prediction, model.variance, site,
                                         check_finite);
      };
      std::vector<Prediction<T>> out;
      out.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        const T& x = std::ranges::data(xs)[i];
        auto cond = call(x, conds[i]);
        const auto uncond = call(x, unconditional_);
        cond.value = ops::axpby(1.0 - gamma_, uncond.value, gamma_, cond.value);
        out.push_back(std::move(cond));
      }
      return out;
    }
  }

 private:
  double gamma_;
  C unconditional_;
};

}  // namespace scoreflow
