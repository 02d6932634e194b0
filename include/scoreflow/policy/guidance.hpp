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
  template <class Call, class T = typename Call::tensor_type, class C = typename Call::condition_type>
  std::vector<Prediction<T>> operator()(const Call& call, std::span<const T> xs, const std::vector<C>& conds) const {
    return call(xs, conds);
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

  template <class Call, class T = typename Call::tensor_type>
    requires std::same_as<typename Call::condition_type, C>
  std::vector<Prediction<T>> operator()(const Call& call, std::span<const T> xs, const std::vector<C>& conds) const {
    const std::size_t n = xs.size();
    if constexpr (ConcatenableCondition<C>) {
      // One call on every input under [u … u, c₁ … cₙ] (unconditional first, as diffusers does),
      // guided straight from the answer's two halves: one pass over the output.
      std::vector<C> both(n, unconditional_);
      both.insert(both.end(), conds.begin(), conds.end());
      Prediction<T> whole = call.under_conditions(xs, std::span<const C>(both));
      std::optional<T> variance;  // the conditional half's
      if (whole.variance) variance = ops::split_batch(*whole.variance, 2)[1];
      return detail::split_prediction(
          Prediction<T>{ops::axpby_halves(1.0 - gamma_, gamma_, whole.value), whole.kind, std::move(variance)}, n);
    } else {
      // Two calls per input, straight on the caller's tensors.
      std::vector<Prediction<T>> out;
      out.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        const std::span<const T> x(&xs[i], 1);
        auto cond = std::move(call(x, {conds[i]}).front());
        const auto uncond = std::move(call(x, {unconditional_}).front());
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
