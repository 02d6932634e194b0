#pragma once
// The sampler: Sampler<Schedule, Guidance, Combiner, Constraint> walks the schedule's grid with
// any denoiser. DDPM/DDIM diffusion and flow-matching ODEs are instantiations of this one loop.
//
//   Sampler s{DiffusionSchedule{NoiseSchedule::cosine(), DiffusionGrid::strided(), DDPMStep{}},
//             ClassifierFree{7.0, null_prompt}, SinglePrompt{prompt}};
//   T image = s.sample(model, PureNoise<T>{prototype}, gen);
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "scoreflow/denoiser.hpp"
#include "scoreflow/errors.hpp"
#include "scoreflow/policy/combiners.hpp"
#include "scoreflow/policy/concepts.hpp"
#include "scoreflow/policy/constraints.hpp"
#include "scoreflow/policy/guidance.hpp"
#include "scoreflow/policy/schedule.hpp"
#include "scoreflow/policy/starts.hpp"
#include "scoreflow/tensor/random.hpp"

namespace scoreflow {

/// What a step callback sees after each step (and once before the first, with step = 0).
template <Tensor T>
struct StepInfo {
  std::size_t step;        ///< steps done so far
  std::size_t total;       ///< steps in this run
  std::size_t grid_index;  ///< where x now is on the grid
  double time;             ///< Timestep value or flow time at grid_index
  std::size_t model_calls; ///< predictions the step rule asked for so far (each is one batched model call
                           ///< covering all prompts and CFG branches when the condition concatenates)
  const T& x;
  const SolverHistory<T>& history;  ///< a multistep rule's state; FromState{x, grid_index, history} resumes
};

/// A callback may return void or StepControl.
enum class StepControl { proceed, stop };

struct NoCallback {
  template <class Info>
  void operator()(const Info&) const {}
};

struct SamplerOptions {
  bool check_finite = true;  ///< throw non_finite_error naming the step when NaN/inf appears
};

template <class Schedule, class Guidance = NoGuidance, class Combiner = SinglePrompt<NoCondition>,
          class Constraint = Unconstrained>
struct Sampler {
  Schedule schedule;
  Guidance guidance{};
  Combiner combiner{};
  Constraint constraint{};
  SamplerOptions options{};

  using time_type = typename Schedule::time_type;
  using condition_type = combiner_condition_t<Combiner>;

  /// Runs the loop and returns the final x. Throws `cancelled` if the callback returns stop.
  template <class Model, class Start, class Callback = NoCallback>
  typename Start::tensor_type sample(Model& model, const Start& start, Generator& gen, Callback&& on_step = {}) const {
    using T = typename Start::tensor_type;
    static_assert(detail::check_sampler_policies<Schedule, Guidance, Combiner, Constraint, Model, Start, T>());
    // The start, and policies that draw noise outside the steps (constraints, re-noising), get
    // streams of their own split off `gen`, so changing them never shifts the noise the steps see:
    // SDEdit from i equals the plain loop from forward(x, t_i), inpainting with m = 1 equals no
    // inpainting, for the same seed.
    const std::size_t n = schedule.size();
    if (start.index() + 1 >= n)
      throw invalid_option(detail::concat("i_start = ", start.index(), ": must be below the last grid index ", n - 1));
    Generator start_gen = gen.split();
    Generator policy_gen = gen.split();
    StartState<T> state = start.init(schedule, start_gen);
    constraint.check(state.x);
    const auto path = constraint.path(n, state.index);

    std::size_t step = 0, calls = 0, step_from = path[0];
    const std::size_t total = path.size() - 1;
    detail::guidance_state_t<Guidance, T> guidance_state{};  // this run's, e.g. APG's momentum
    // The combiner's conditions and per-prompt scales are fixed for the run: built once here, not
    // per prediction (a condition may be a whole image: copying it each call is a pass over it).
    // A combiner that alternates hands each step's part over instead (its own conditions).
    const auto run_conditions = combiner.conditions();
    const auto run_scales = detail::prompt_scales_of(combiner);
    const auto guided = [&](const auto& parts, const auto& conditions, const auto& prompt_scales, const T& x,
                            time_type time) -> Prediction<T> {
      GuidanceContext context{step, total, calls, std::nullopt, std::nullopt, std::nullopt, prompt_scales};
      if constexpr (requires { schedule.level_at(time); }) {
        context.level = schedule.level_at(time);
        context.step_level = schedule.level_at(schedule.time(step_from));
        if constexpr (requires { schedule.data_map(model.prediction, *context.level); })
          context.data_map = schedule.data_map(model.prediction, *context.level);
      }
      ++calls;
      const ModelCall<Model, T, time_type, condition_type> call(model, time, CallSite{step, detail::time_value(time)},
                                                                 options.check_finite, context);
      const auto inputs = parts.inputs(x);  // kept alive across the guidance call
      return parts.combine(
          detail::invoke_guidance(guidance, call, std::span<const T>(inputs), conditions, guidance_state));
    };
    auto predict = [&](const T& x, time_type time) -> Prediction<T> {
      if constexpr (requires { combiner.alternates(); combiner.at_step(step); }) {
        if (combiner.alternates()) {
          const auto part = combiner.at_step(step);
          return guided(part, part.conditions(), detail::prompt_scales_of(part), x, time);
        }
      }
      return guided(combiner, run_conditions, run_scales, x, time);
    };
    T x = std::move(state.x);
    SolverHistory<T> history = std::move(state.history);
    if (report(on_step, StepInfo<T>{0, total, path[0], detail::time_value(schedule.time(path[0])), calls, x, history}))
      throw cancelled("sampling cancelled by the step callback before step 1");
    for (std::size_t k = 0; k + 1 < path.size(); ++k) {
      step = k + 1;
      const std::size_t from = path[k], to = path[k + 1];
      step_from = from;
      if (to == from + 1) {
        // A constraint rewrites x after the step; the history keeps the answers the model gave
        // before (inpainting: README, "Multistep solvers and constraints").
        x = schedule.step(x, from, predict, gen, history);
        x = constraint.apply(std::move(x), to, schedule, policy_gen);
      } else {
        x = schedule.renoise(x, from, to, ops::randn_like(x, policy_gen));
        history.clear();  // answers at later points no longer lie on x's path
      }
      if (options.check_finite && !ops::all_finite(x))
        throw non_finite_error(detail::concat("sampler step ", step, " (grid index ", from, " -> ", to,
                                              ", t = ", detail::time_value(schedule.time(to)),
                                              ") produced non-finite values"));
      if (report(on_step, StepInfo<T>{step, total, to, detail::time_value(schedule.time(to)), calls, x, history}))
        throw cancelled(detail::concat("sampling cancelled by the step callback after step ", step, " of ", total));
    }
    return x;
  }

 private:
  template <class Callback, class Info>
  static bool report(Callback& cb, const Info& info) {
    if constexpr (std::is_same_v<std::invoke_result_t<Callback&, const Info&>, StepControl>) {
      return cb(info) == StepControl::stop;
    } else {
      cb(info);
      return false;
    }
  }
};

template <class S>
Sampler(S) -> Sampler<S>;
template <class S, class G>
Sampler(S, G) -> Sampler<S, G>;
template <class S, class G, class C>
Sampler(S, G, C) -> Sampler<S, G, C>;
template <class S, class G, class C, class K>
Sampler(S, G, C, K) -> Sampler<S, G, C, K>;
template <class S, class G, class C, class K>
Sampler(S, G, C, K, SamplerOptions) -> Sampler<S, G, C, K>;

/// A callback that keeps x every k steps (and the last), as the seed shows for §1.4.
template <Tensor T>
struct RecordEvery {
  std::size_t every;
  std::vector<T>* frames;
  void operator()(const StepInfo<T>& info) const {
    if (info.step % every == 0 || info.step == info.total) frames->push_back(info.x);
  }
};

}  // namespace scoreflow
