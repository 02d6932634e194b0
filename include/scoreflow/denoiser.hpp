#pragma once
// Any denoiser: a callable (x_t, time, condition) → prediction, with its prediction type declared.
//
//   auto model = scoreflow::denoiser([&](const T& x, scoreflow::Timestep t, const Cond& c) {...},
//                                    scoreflow::Parameterization::noise);
//
// `time` is `Timestep` under a diffusion schedule, `FlowTime` under a flow schedule and `Sigma`
// under a variance-exploding σ schedule.
#include <concepts>
#include <cstdint>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/process/prediction.hpp"
#include "scoreflow/process/time_grid.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

/// The condition of an unconditional model.
struct NoCondition {
  friend bool operator==(NoCondition, NoCondition) = default;
};

/// Specialise with `static C concat(std::span<const C>)` (batch-axis concatenation) to let
/// guidance and combiners evaluate several conditions in one model call. Without it, they make
/// one call per condition. Tensors (e.g. one-hot classes N×10, text embeddings N×77×4096) and
/// NoCondition concatenate out of the box.
template <class C>
struct condition_traits {};

template <>
struct condition_traits<NoCondition> {
  static NoCondition concat(std::span<const NoCondition>) { return {}; }
};

template <Tensor C>
struct condition_traits<C> {
  static C concat(std::span<const C> parts) { return ops::concat_batch(parts); }
};

template <class C>
concept ConcatenableCondition = requires(std::span<const C> parts) {
  { condition_traits<C>::concat(parts) } -> std::same_as<C>;
};

template <class F>
struct Denoiser {
  F fn;
  Parameterization prediction;
  VarianceOutput variance = VarianceOutput::none;
};

template <class F>
Denoiser<F> denoiser(F fn, Parameterization prediction, VarianceOutput variance = VarianceOutput::none) {
  return {std::move(fn), prediction, variance};
}

/// A denoiser usable with tensors T, time type Time and condition type C.
template <class M, class T, class Time, class C>
concept DenoiserFor = Tensor<T> && requires(M& m, const T& x, Time t, const C& c) {
  { m.fn(x, t, c) } -> std::convertible_to<T>;
  { m.prediction } -> std::convertible_to<Parameterization>;
  { m.variance } -> std::convertible_to<VarianceOutput>;
};

/// Optional for a model function: answering each input under several conditions in one call.
/// fn.under_conditions(x, time, c) takes x of batch N and c of batch k·N (condition-major: rows
/// j·N … j·N + N − 1 hold the j-th condition of inputs 0 … N − 1) and returns the k·N answers
/// fn([x, …, x], time, c) would, without the caller copying x k times. Classifier-free guidance
/// uses it when present: a model whose conditioning enters after an input-only encoder (the
/// seed's UNets, see models::ClassConditionalUNet::forward_under_conditions) runs that encoder
/// once per input instead of once per condition.
template <class F, class T, class Time, class C>
concept SharesInputAcrossConditions = requires(F& fn, const T& x, Time t, const C& c) {
  { fn.under_conditions(x, t, c) } -> std::convertible_to<T>;
};

/// Where a model call happens, for error messages.
struct CallSite {
  std::size_t step;
  double time;
};

namespace detail {
/// The state of a guidance policy that keeps none across a run (policy/concepts.hpp).
struct NoGuidanceState {};
}  // namespace detail

/// What a guidance policy may know about the prediction it makes (policy/guidance.hpp): where in
/// the run it is, how noisy the input is, and the per-prompt guidance scales of the combiner. The
/// sampler fills it for every prediction; outside a sampler (`evaluate`) it is empty.
struct GuidanceContext {
  std::size_t step = 0;         ///< the loop's step, 1 … total_steps (0: not in a sampler)
  std::size_t total_steps = 0;  ///< steps in this run
  std::size_t call_index = 0;   ///< predictions made before this one in this run
  /// (α, σ) of the input, when the schedule provides level_at(time) (every schedule of
  /// policy/schedule.hpp does).
  std::optional<NoiseLevel> level;
  /// (α, σ) at the grid point the step starts from: the same for every evaluation of a multi-stage
  /// step (Heun's corrector sees level ≠ step_level).
  std::optional<NoiseLevel> step_level;
  /// x̂ = a·x + b·prediction for the model's kind at this level (DataMap, noise_level.hpp), when
  /// the schedule provides data_map(kind, level) and the kind determines x̂ there.
  std::optional<DataMap> data_map;
  /// The combiner's guidance scale of each input, where it sets one (anagram and factorized
  /// parts' `guidance_scale`); empty, or one entry per input.
  std::span<const std::optional<double>> prompt_scales;

  /// Run progress in [0, 1]: 0 at the first step, 1 at the last.
  [[nodiscard]] double progress() const {
    if (total_steps <= 1 || step == 0) return 0.0;
    return static_cast<double>(step - 1) / static_cast<double>(total_steps - 1);
  }
};

namespace detail {
inline double time_value(Timestep t) { return t.value; }
inline double time_value(FlowTime t) { return t.value; }
inline double time_value(Sigma t) { return t.value; }

template <Tensor T>
Prediction<T> check_and_wrap(T out, const Shape& in_shape, Parameterization kind, VarianceOutput variance,
                             const CallSite& site, bool check_finite) {
  Shape expected = in_shape;
  if (variance == VarianceOutput::learned_range) expected.at(1) *= 2;
  if (ops::shape(out) != expected) {
    std::string got, want;
    for (auto v : ops::shape(out)) got += std::to_string(v) + " ";
    for (auto v : expected) want += std::to_string(v) + " ";
    throw shape_error(concat("denoiser at step ", site.step, " (t = ", site.time, ") returned shape [ ", got,
                             "], expected [ ", want, "]"));
  }
  if (check_finite && !ops::all_finite(out))
    throw non_finite_error(concat("denoiser at step ", site.step, " (t = ", site.time,
                                  ") returned non-finite values (NaN or inf)"));
  if (variance == VarianceOutput::learned_range) {
    auto [value, var] = ops::split_channels(out, in_shape.at(1));
    return {std::move(value), kind, std::move(var)};
  }
  return {std::move(out), kind, std::nullopt};
}

/// One batched prediction as n per-input predictions (value and variance split in n equal parts).
template <Tensor T>
std::vector<Prediction<T>> split_prediction(Prediction<T> whole, std::size_t n) {
  std::vector<Prediction<T>> out;
  out.reserve(n);
  if (n == 1) {
    out.push_back(std::move(whole));
    return out;
  }
  auto values = ops::split_batch(whole.value, static_cast<std::int64_t>(n));
  std::vector<T> variances;
  if (whole.variance) variances = ops::split_batch(*whole.variance, static_cast<std::int64_t>(n));
  for (std::size_t i = 0; i < n; ++i)
    out.push_back({std::move(values[i]), whole.kind,
                   whole.variance ? std::optional<T>(std::move(variances[i])) : std::nullopt});
  return out;
}
}  // namespace detail

/// A contiguous list of tensors: std::vector<T>, or a std::span<const T> viewing the sampler's x.
template <class R>
concept TensorList = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
                     Tensor<std::ranges::range_value_t<R>>;

/// The model at one time of one step: what guidance policies call. The sampler builds one per
/// prediction; guidance never sees the Denoiser struct or the error-reporting context, only the
/// prediction kind and the GuidanceContext.
/// Every answer is shape-checked (and finiteness-checked) against its inputs and split into value
/// and learned variance as the model declares.
template <class M, Tensor T, class Time, class C>
class ModelCall {
 public:
  using tensor_type = T;
  using condition_type = C;

  ModelCall(M& model, Time time, CallSite site, bool check_finite, GuidanceContext context = {})
      : model_(model), time_(time), site_(site), check_finite_(check_finite), context_(context) {}

  [[nodiscard]] const GuidanceContext& context() const { return context_; }
  [[nodiscard]] Parameterization prediction() const { return model_.prediction; }

  /// One prediction per (xs[i], conds[i]): one batched model call when the condition type
  /// concatenates, one call per input otherwise.
  std::vector<Prediction<T>> operator()(std::span<const T> xs, const std::vector<C>& conds) const {
    if constexpr (ConcatenableCondition<C>) {
      if (xs.size() > 1) return detail::split_prediction(under_conditions(xs, std::span<const C>(conds)), xs.size());
    }
    std::vector<Prediction<T>> out;
    out.reserve(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) out.push_back(wrap(model_.fn(xs[i], time_, conds[i]), ops::shape(xs[i])));
    return out;
  }

  /// Each of the n inputs under k conditions in one model call: conds holds k·n entries,
  /// condition-major (entries j·n … j·n + n − 1 are the j-th condition of inputs 0 … n − 1), and
  /// the answer is one batched prediction of k·n rows in that order. A model whose function
  /// SharesInputAcrossConditions gets the n inputs once; any other gets them copied k times.
  Prediction<T> under_conditions(std::span<const T> xs, std::span<const C> conds) const
    requires ConcatenableCondition<C>
  {
    const std::size_t n = xs.size();
    if (n == 0 || conds.size() % n != 0)
      throw shape_error(detail::concat("model call: ", conds.size(), " conditions for ", n,
                                       " inputs (must be a positive multiple)"));
    const auto k = static_cast<std::int64_t>(conds.size() / n);
    std::optional<T> joined;
    if (n > 1) joined = ops::concat_batch(xs);
    const T& x = n == 1 ? xs[0] : *joined;
    const C c = condition_traits<C>::concat(conds);
    Shape shape = ops::shape(x);
    shape.at(0) *= k;
    if (k == 1) return wrap(model_.fn(x, time_, c), shape);
    if constexpr (SharesInputAcrossConditions<decltype(model_.fn), T, Time, C>)
      return wrap(model_.fn.under_conditions(x, time_, c), shape);
    else
      return wrap(model_.fn(ops::repeat_batch(x, k), time_, c), shape);
  }

 private:
  Prediction<T> wrap(T answer, const Shape& in_shape) const {
    return detail::check_and_wrap<T>(std::move(answer), in_shape, model_.prediction, model_.variance, site_,
                                     check_finite_);
  }

  M& model_;
  Time time_;
  CallSite site_;
  bool check_finite_;
  GuidanceContext context_;
};

/// Evaluates the model on inputs xs[i] with conditions conds[i] at one time (ModelCall's
/// operator(), for use outside a sampler).
template <TensorList Xs, class M, class Time, class C, class T = std::ranges::range_value_t<Xs>>
std::vector<Prediction<T>> evaluate(M& model, const Xs& inputs, Time time, const std::vector<C>& conds,
                                    const CallSite& site, bool check_finite) {
  const std::span<const T> xs(std::ranges::data(inputs), std::ranges::size(inputs));
  return ModelCall<M, T, Time, C>(model, time, site, check_finite)(xs, conds);
}

}  // namespace scoreflow
