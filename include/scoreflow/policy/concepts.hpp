#pragma once
// What the sampler calls on each of its policies, one concept per member.
//
// `Sampler::sample` checks every member separately (`detail::check_sampler_policies` below), so a
// policy that lacks one fails at the call to `sample` with a message naming that member, instead
// of deep inside the loop. The compile-failure tests (tests/compile_fail/) build one deliberately
// wrong policy per member and check the diagnostic names it.
//
//   policy      members the loop calls
//   Start       tensor_type, index(), init(schedule, gen) -> StartState<T>
//   Schedule    time_type, size(), time(i), forward(x, i, noise), step(x, i, predict, gen, history),
//               renoise(x, from, to, noise)
//   Guidance    operator()(call, inputs, conditions[, state]), call a ModelCall (denoiser.hpp);
//               optional state_type<T> (one per run)
//   Combiner    inputs(x), conditions(), combine(answers); optional guidance_scales()
//   Constraint  path(n, start), check(x), apply(x, i, schedule, gen)
//   model       fn(x, time, condition), prediction, variance (DenoiserFor, denoiser.hpp)
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "scoreflow/denoiser.hpp"
#include "scoreflow/policy/starts.hpp"
#include "scoreflow/process/prediction.hpp"
#include "scoreflow/solver/history.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

namespace detail {
/// Stands in for the sampler's predict(x, time) (guidance and combiner already applied) when a
/// concept checks a step rule. Declared only: concepts never evaluate it.
template <class T, class Time>
struct PredictArchetype {
  Prediction<T> operator()(const T&, Time) const;
};
}  // namespace detail

// ---- Start --------------------------------------------------------------------------------------
template <class S, class T>
concept StartDeclaresTensor = requires { typename S::tensor_type; } && std::same_as<typename S::tensor_type, T>;

template <class S>
concept StartHasIndex = requires(const S& s) {
  { s.index() } -> std::convertible_to<std::size_t>;
};

template <class S, class Schedule, class T>
concept StartHasInit = requires(const S& s, const Schedule& schedule, Generator& gen) {
  { s.init(schedule, gen) } -> std::same_as<StartState<T>>;
};

template <class S, class Schedule, class T>
concept StartFor = StartDeclaresTensor<S, T> && StartHasIndex<S> && StartHasInit<S, Schedule, T>;

// ---- Schedule -----------------------------------------------------------------------------------
template <class S>
concept ScheduleHasTimeType = requires { typename S::time_type; };

template <class S>
concept ScheduleHasSize = requires(const S& s) {
  { s.size() } -> std::convertible_to<std::size_t>;
};

template <class S>
concept ScheduleHasTime = ScheduleHasTimeType<S> && requires(const S& s, std::size_t i) {
  { s.time(i) } -> std::same_as<typename S::time_type>;
};

template <class S, class T>
concept ScheduleHasForward = requires(const S& s, const T& x, std::size_t i) {
  { s.forward(x, i, x) } -> std::same_as<T>;
};

template <class S, class T>
concept ScheduleHasStep =
    ScheduleHasTimeType<S> &&
    requires(const S& s, const T& x, std::size_t i, detail::PredictArchetype<T, typename S::time_type>& predict,
             Generator& gen, SolverHistory<T>& history) {
      { s.step(x, i, predict, gen, history) } -> std::same_as<T>;
    };

template <class S, class T>
concept ScheduleHasRenoise = requires(const S& s, const T& x, std::size_t i) {
  { s.renoise(x, i, i, x) } -> std::same_as<T>;
};

template <class S, class T>
concept ScheduleFor = Tensor<T> && ScheduleHasSize<S> && ScheduleHasTime<S> && ScheduleHasForward<S, T> &&
                      ScheduleHasStep<S, T> && ScheduleHasRenoise<S, T>;

// ---- Combiner -----------------------------------------------------------------------------------
template <class K, class T>
concept CombinerHasInputs = requires(const K& k, const T& x) {
  k.inputs(x);  // std::vector<T>, or a std::span<const T> viewing x
  requires std::convertible_to<const decltype(k.inputs(x))&, std::span<const T>>;
};

template <class K>
concept CombinerHasConditions = requires(const K& k) {
  k.conditions()[0];
  k.conditions().size();
};

template <class K, class T>
concept CombinerHasCombine = requires(const K& k, std::vector<Prediction<T>> answers) {
  { k.combine(std::move(answers)) } -> std::same_as<Prediction<T>>;
};

template <class K, class T>
concept CombinerFor = CombinerHasInputs<K, T> && CombinerHasConditions<K> && CombinerHasCombine<K, T>;

/// The condition type a combiner hands to guidance (and so to the model).
template <CombinerHasConditions K>
using combiner_condition_t = std::remove_cvref_t<decltype(std::declval<const K&>().conditions()[0])>;

// ---- Guidance -----------------------------------------------------------------------------------
namespace detail {
/// A guidance policy that keeps state across the predictions of one run (APG's momentum) declares
/// `template <class T> using state_type = …;`; the sampler makes a fresh one per `sample` call
/// and passes it as a fourth argument. Stateless policies get NoGuidanceState (denoiser.hpp) and
/// never see it.
template <class G, class T>
struct guidance_state {
  using type = NoGuidanceState;
};
template <class G, class T>
  requires requires { typename G::template state_type<T>; }
struct guidance_state<G, T> {
  using type = typename G::template state_type<T>;
};
template <class G, class T>
using guidance_state_t = typename guidance_state<G, T>::type;

template <class G, class Call, class T, class C>
std::vector<Prediction<T>> invoke_guidance(const G& g, const Call& call, std::span<const T> xs,
                                           const std::vector<C>& conds, guidance_state_t<G, T>& state) {
  if constexpr (std::same_as<guidance_state_t<G, T>, NoGuidanceState>)
    return g(call, xs, conds);
  else
    return g(call, xs, conds, state);
}

/// The combiner's per-input guidance scales (`guidance_scales()`), or none.
template <class K>
std::vector<std::optional<double>> prompt_scales_of(const K& k) {
  if constexpr (requires { { k.guidance_scales() } -> std::convertible_to<std::vector<std::optional<double>>>; })
    return k.guidance_scales();
  else
    return {};
}
}  // namespace detail

/// Guidance gets the model only through the call the sampler builds (ModelCall, denoiser.hpp).
template <class G, class M, class T, class Time, class C>
concept GuidanceFor =
    (std::same_as<detail::guidance_state_t<G, T>, detail::NoGuidanceState> &&
     requires(const G& g, const ModelCall<M, T, Time, C>& call, std::span<const T> xs, const std::vector<C>& conds) {
       { g(call, xs, conds) } -> std::same_as<std::vector<Prediction<T>>>;
     }) ||
    requires(const G& g, const ModelCall<M, T, Time, C>& call, std::span<const T> xs, const std::vector<C>& conds,
             detail::guidance_state_t<G, T>& state) {
      { g(call, xs, conds, state) } -> std::same_as<std::vector<Prediction<T>>>;
    };

// ---- Constraint ---------------------------------------------------------------------------------
template <class K>
concept ConstraintHasPath = requires(const K& k, std::size_t n) {
  { k.path(n, n) } -> std::same_as<std::vector<std::size_t>>;
};

template <class K, class T>
concept ConstraintHasCheck = requires(const K& k, const T& x) { k.check(x); };

template <class K, class T, class Schedule>
concept ConstraintHasApply = requires(const K& k, T x, std::size_t i, const Schedule& schedule, Generator& gen) {
  { k.apply(std::move(x), i, schedule, gen) } -> std::same_as<T>;
};

template <class K, class T, class Schedule>
concept ConstraintFor = ConstraintHasPath<K> && ConstraintHasCheck<K, T> && ConstraintHasApply<K, T, Schedule>;

namespace detail {
/// Every member the loop calls, one static_assert each, so the first missing one is named.
template <class Schedule, class Guidance, class Combiner, class Constraint, class Model, class Start, class T>
consteval bool check_sampler_policies() {
  static_assert(Tensor<T>, "the start's tensor type has no scoreflow::tensor_traits specialisation "
                           "(see the customisation points in scoreflow/tensor/tensor.hpp)");
  static_assert(StartHasIndex<Start>, "Start must provide index(): the grid index sampling starts at");
  static_assert(StartHasInit<Start, Schedule, T>,
                "Start must provide init(schedule, gen) returning StartState<tensor_type>");
  static_assert(ScheduleHasSize<Schedule>, "Schedule must provide size(): the number of grid points");
  static_assert(ScheduleHasTime<Schedule>, "Schedule must provide time(i) returning its time_type");
  static_assert(ScheduleHasForward<Schedule, T>, "Schedule must provide forward(x, i, noise) returning the tensor type");
  static_assert(ScheduleHasStep<Schedule, T>,
                "Schedule must provide step(x, i, predict, gen, history) returning the tensor type (x at grid point "
                "i + 1; history: the loop's SolverHistory<T>)");
  static_assert(ScheduleHasRenoise<Schedule, T>,
                "Schedule must provide renoise(x, from, to, noise) returning the tensor type");
  using Time = typename Schedule::time_type;
  static_assert(CombinerHasInputs<Combiner, T>,
                "Combiner must provide inputs(x): a std::vector<T> or std::span<const T> of model inputs");
  static_assert(CombinerHasCombine<Combiner, T>,
                "Combiner must provide combine(answers): one Prediction<T> from one per input");
  using C = combiner_condition_t<Combiner>;
  static_assert(DenoiserFor<Model, T, Time, C>,
                "the model must be a scoreflow::Denoiser whose fn(x, time, condition) returns the tensor type; "
                "time is scoreflow::Timestep for diffusion schedules and scoreflow::FlowTime for flow schedules, "
                "condition is the combiner's condition type");
  static_assert(GuidanceFor<Guidance, Model, T, Time, C>,
                "Guidance must be callable as (call, inputs, conditions), call a scoreflow::ModelCall, and return "
                "one Prediction per input; check that its condition type matches the combiner's");
  static_assert(ConstraintHasPath<Constraint>,
                "Constraint must provide path(n, start) returning the grid indices to visit");
  static_assert(ConstraintHasCheck<Constraint, T>, "Constraint must provide check(x)");
  static_assert(ConstraintHasApply<Constraint, T, Schedule>,
                "Constraint must provide apply(x, i, schedule, gen) returning the tensor type");
  return true;
}
}  // namespace detail

}  // namespace scoreflow
