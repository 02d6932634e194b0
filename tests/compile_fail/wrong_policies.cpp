// Compile-failure cases for the sampler's policy concepts (scoreflow/policy/concepts.hpp).
// Each SCOREFLOW_CASE_* builds a sampler call with one policy missing one member; the test
// (check_compile_fail.cmake) compiles it and requires the diagnostic to name that member. With
// no case defined the file must compile: that keeps the harness itself honest.
#include "scoreflow/core.hpp"

using namespace scoreflow;
using Array = xt::xarray<double>;

namespace {

auto model_fn = [](const Array& x, FlowTime, NoCondition) -> Array { return x; };

// Starts with one member taken away (the library's PureNoise has them all).
struct StartWithoutInit {
  using tensor_type = Array;
  [[nodiscard]] std::size_t index() const { return 0; }
};

struct StartWithoutIndex {
  using tensor_type = Array;
  template <class Schedule>
  StartState<Array> init(const Schedule&, Generator&) const { return {Array::from_shape({1, 1}), 0}; }
};

// A schedule forwarding to a real flow schedule, minus one member per case.
using Real = FlowSchedule<Euler>;
struct ScheduleBase {
  using time_type = FlowTime;
  Real real{FlowGrid::uniform(4)};
  [[nodiscard]] std::size_t size() const { return real.size(); }
  [[nodiscard]] FlowTime time(std::size_t i) const { return real.time(i); }
  Array forward(const Array& x, std::size_t i, const Array& e) const { return real.forward(x, i, e); }
};

struct ScheduleWithoutStep : ScheduleBase {
  Array renoise(const Array& x, std::size_t f, std::size_t t, const Array& e) const { return real.renoise(x, f, t, e); }
};

struct ScheduleWithoutRenoise : ScheduleBase {
  template <class P>
  Array step(const Array& x, std::size_t i, P&& p, Generator& g, SolverHistory<Array>& h) const {
    return real.step(x, i, p, g, h);
  }
};

struct ConstraintWithoutApply {
  [[nodiscard]] std::vector<std::size_t> path(std::size_t n, std::size_t s) const { return straight_path(n, s); }
  void check(const Array&) const {}
};

struct ConstraintWithoutCheck {
  [[nodiscard]] std::vector<std::size_t> path(std::size_t n, std::size_t s) const { return straight_path(n, s); }
  template <class Schedule>
  Array apply(Array x, std::size_t, const Schedule&, Generator&) const { return x; }
};

struct ConstraintWithoutPath {
  void check(const Array&) const {}
  template <class Schedule>
  Array apply(Array x, std::size_t, const Schedule&, Generator&) const { return x; }
};

struct CombinerWithoutCombine {
  std::span<const Array> inputs(const Array& x) const { return {&x, 1}; }
  std::vector<NoCondition> conditions() const { return {NoCondition{}}; }
};

struct GuidanceWithWrongSignature {  // forgets the call site and check_finite arguments
  template <class M, class Xs, class Time, class C>
  std::vector<Prediction<Array>> operator()(M&, const Xs&, Time, const std::vector<C>&) const { return {}; }
};

}  // namespace

int main() {
  Generator gen(1);
  auto model = denoiser(model_fn, Parameterization::velocity);
  const Array shape = Array::from_shape({2, 1});
  [[maybe_unused]] const FlowSchedule<Euler> schedule{FlowGrid::uniform(4)};
#if defined(SCOREFLOW_CASE_START_WITHOUT_INIT)
  Sampler{schedule}.sample(model, StartWithoutInit{}, gen);
#elif defined(SCOREFLOW_CASE_START_WITHOUT_INDEX)
  Sampler{schedule}.sample(model, StartWithoutIndex{}, gen);
#elif defined(SCOREFLOW_CASE_SCHEDULE_WITHOUT_STEP)
  Sampler{ScheduleWithoutStep{}}.sample(model, PureNoise<Array>{shape}, gen);
#elif defined(SCOREFLOW_CASE_SCHEDULE_WITHOUT_RENOISE)
  Sampler{ScheduleWithoutRenoise{}}.sample(model, PureNoise<Array>{shape}, gen);
#elif defined(SCOREFLOW_CASE_CONSTRAINT_WITHOUT_APPLY)
  Sampler{schedule, NoGuidance{}, SinglePrompt{}, ConstraintWithoutApply{}}.sample(model, PureNoise<Array>{shape}, gen);
#elif defined(SCOREFLOW_CASE_CONSTRAINT_WITHOUT_CHECK)
  Sampler{schedule, NoGuidance{}, SinglePrompt{}, ConstraintWithoutCheck{}}.sample(model, PureNoise<Array>{shape}, gen);
#elif defined(SCOREFLOW_CASE_CONSTRAINT_WITHOUT_PATH)
  Sampler{schedule, NoGuidance{}, SinglePrompt{}, ConstraintWithoutPath{}}.sample(model, PureNoise<Array>{shape}, gen);
#elif defined(SCOREFLOW_CASE_COMBINER_WITHOUT_COMBINE)
  Sampler{schedule, NoGuidance{}, CombinerWithoutCombine{}}.sample(model, PureNoise<Array>{shape}, gen);
#elif defined(SCOREFLOW_CASE_GUIDANCE_WRONG_SIGNATURE)
  Sampler{schedule, GuidanceWithWrongSignature{}}.sample(model, PureNoise<Array>{shape}, gen);
#elif defined(SCOREFLOW_CASE_MODEL_WRONG_TIME)
  auto diffusion_model = denoiser([](const Array& x, Timestep, NoCondition) { return x; }, Parameterization::velocity);
  Sampler{schedule}.sample(diffusion_model, PureNoise<Array>{shape}, gen);
#elif defined(SCOREFLOW_CASE_MIDPOINT_RULE_ON_INTEGER_TIMES)
  // A rule that evaluates the model between grid points, on a schedule whose model takes integer
  // timesteps (solver/path.hpp, ContinuousPath).
  auto diffusion_model = denoiser([](const Array& x, Timestep, NoCondition) { return x; }, Parameterization::sample);
  Sampler{DiffusionSchedule{NoiseSchedule::linear(), DiffusionGrid::spaced(4), KDPM2{}}}.sample(
      diffusion_model, PureNoise<Array>{shape}, gen);
#elif defined(SCOREFLOW_CASE_SINGLESTEP_RULE_ON_INTEGER_TIMES)
  auto diffusion_model = denoiser([](const Array& x, Timestep, NoCondition) { return x; }, Parameterization::sample);
  Sampler{DiffusionSchedule{NoiseSchedule::linear(), DiffusionGrid::spaced(4), DPMSolverPP2S{}}}.sample(
      diffusion_model, PureNoise<Array>{shape}, gen);
#else
  // The control: the good versions of every policy compile and run.
  const Array x = Sampler{schedule, NoGuidance{}, SinglePrompt{}, Unconstrained{}}.sample(model, PureNoise<Array>{shape}, gen);
  return x.shape(0) == 2 ? 0 : 1;
#endif
  return 0;
}
