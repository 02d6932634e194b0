// Multistep solvers under inpainting (README, "Multistep solvers and constraints").
//
// The loop's SolverHistory keeps the data estimates the model gave *before* the constraint
// rewrote x. Every rule's update is elementwise in (x, history), and GaussianData answers each
// pixel from that pixel alone, so with this oracle inpainting must leave the generated pixels
// exactly as the unconstrained run produced them (the constraint draws from its own stream), the
// known pixels must end exactly on the original (the last replacement is at clean data), and an
// all-zero mask must return the original. A RePaint jump back must clear the history.
#include <cmath>
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_multistep_constraints {

using namespace scoreflow;

namespace {
constexpr std::int64_t kB = 4, kH = 4, kW = 4;

template <class T>
struct Setup {
  T original = sftest::make<T>([] {
    std::vector<double> v(static_cast<std::size_t>(kB * kH * kW));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.3 + 0.4 * std::sin(1.3 * static_cast<double>(i));
    return v;
  }(), {kB, 1, kH, kW});
  /// 1 = generate (the right half), 0 = keep.
  T mask = sftest::make<T>([] {
    std::vector<double> v(static_cast<std::size_t>(kB * kH * kW));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = (i % kW) >= kW / 2 ? 1.0 : 0.0;
    return v;
  }(), {kB, 1, kH, kW});
};

/// max |a − b| over pixels with mask value `where`.
template <class T>
double masked_diff(const T& a, const T& b, const T& mask, double where) {
  const auto va = ops::to_vector(a), vb = ops::to_vector(b), vm = ops::to_vector(mask);
  double m = 0;
  for (std::size_t i = 0; i < va.size(); ++i)
    if (vm[i] == where) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

template <class T, class Schedule, class Model>
void check_inpainting(const Schedule& schedule, Model& model) {
  const Setup<T> s;
  Generator g1(7), g2(7), g3(7);
  const T free = Sampler{schedule}.sample(model, PureNoise<T>{s.original}, g1);
  const T inpainted =
      Sampler{schedule, NoGuidance{}, SinglePrompt<NoCondition>{}, Inpaint<T>{s.original, s.mask}}.sample(
          model, PureNoise<T>{s.original}, g2);
  CHECK(masked_diff(inpainted, free, s.mask, 1.0) <= sftest::tolerance<T>());
  CHECK(masked_diff(inpainted, s.original, s.mask, 0.0) <= sftest::tolerance<T>());
  // All-zero mask: the original, exactly.
  const T kept = Sampler{schedule, NoGuidance{}, SinglePrompt<NoCondition>{},
                         Inpaint<T>{s.original, ops::scale(0.0, s.mask)}}
                     .sample(model, PureNoise<T>{s.original}, g3);
  CHECK(sftest::max_abs_diff(kept, s.original) <= sftest::tolerance<T>());
}
}  // namespace

TEST_CASE_TEMPLATE("multistep rules under inpainting: the generated region equals the free run", T, SCOREFLOW_BACKENDS) {
  sftest::GaussianData oracle;
  auto flow = denoiser([&](const T& x, FlowTime t, NoCondition c) { return oracle(x, t, c); }, Parameterization::sample);
  auto diff = denoiser([&](const T& x, Timestep t, NoCondition c) { return oracle(x, t, c); }, Parameterization::sample);
  const auto grid = DiffusionGrid::spaced(12, 1000, DiffusionGrid::Spacing::linspace);
  // Multistep rules evaluate the model at grid points before the last only, so a data-predicting
  // oracle may run to t = 1 (where its velocity would be undefined).
  const FlowGrid fgrid = FlowGrid::uniform(12);

  SUBCASE("DPM-Solver++(3M)") {
    DPMSolverPP rule;
    rule.order = 3;
    check_inpainting<T>(DiffusionSchedule{oracle.table, grid, rule}, diff);
    check_inpainting<T>(FlowSchedule{fgrid, rule}, flow);
  }
  SUBCASE("UniPC bh2 order 3 with its corrector") {
    UniPC rule;
    rule.order = 3;
    check_inpainting<T>(DiffusionSchedule{oracle.table, grid, rule}, diff);
    check_inpainting<T>(FlowSchedule{fgrid, rule}, flow);
  }
  SUBCASE("iPNDM order 4") {
    check_inpainting<T>(DiffusionSchedule{oracle.table, grid, IPNDM{}}, diff);
    check_inpainting<T>(FlowSchedule{fgrid, IPNDM{}}, flow);
  }
  SUBCASE("k-diffusion LMS order 4") {
    check_inpainting<T>(DiffusionSchedule{oracle.table, grid, KLMS{}}, diff);
    check_inpainting<T>(FlowSchedule{fgrid, KLMS{}}, flow);
  }
}

TEST_CASE_TEMPLATE("a RePaint jump back clears the multistep history", T, SCOREFLOW_BACKENDS) {
  // After a re-noising jump the history is empty (the next step runs at first order, as at the
  // start), and one step later it holds exactly the one point evaluated since.
  sftest::GaussianData oracle;
  auto diff = denoiser([&](const T& x, Timestep t, NoCondition c) { return oracle(x, t, c); }, Parameterization::sample);
  const auto grid = DiffusionGrid::spaced(10, 1000, DiffusionGrid::Spacing::linspace);
  const Setup<T> s;
  DPMSolverPP rule;
  rule.order = 2;
  const Sampler sampler{DiffusionSchedule{oracle.table, grid, rule}, NoGuidance{}, SinglePrompt<NoCondition>{},
                        Inpaint<T>{s.original, s.mask, RePaint{2, 2}}};
  std::size_t previous_index = 0, checked = 0;
  bool after_jump = false;
  Generator gen(3);
  sampler.sample(diff, PureNoise<T>{s.original}, gen, [&](const StepInfo<T>& info) {
    if (info.step > 0 && info.grid_index < previous_index) {
      CHECK(info.history.empty());
      after_jump = true;
    } else if (after_jump) {
      CHECK(info.history.size() == 1);  // the one point evaluated since the jump
      after_jump = false;
      ++checked;
    }
    previous_index = info.grid_index;
  });
  CHECK(checked > 0);
}
}  // namespace test_multistep_constraints
