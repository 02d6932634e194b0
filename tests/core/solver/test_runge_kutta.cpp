// RK4 and the adaptive Dormand–Prince 5(4) (solver/runge_kutta.hpp) against the exact solution of
// the flow ODE for Gaussian data N(μ, s²) (sftest::exact::gaussian_ode_map), with two models:
// GaussianData's data estimate x̂₁ on an interior interval (a velocity converted from x̂₁ divides by
// 1 − t, so it stays away from t = 1), and GaussianFlow's true velocity over all of [0, 1].
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_runge_kutta {

using namespace scoreflow;

namespace {
using T = xt::xarray<double>;
constexpr double kMu = 0.3, kS = 0.5;
const std::vector<double> kZ6 = {0.8, -1.3, 0.25, 1.9, -0.45, 0.05};

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

T row(const std::vector<double>& v) { return ops::from_vector(v, {1, static_cast<std::int64_t>(v.size())}, T{}); }

struct Result {
  double error;             ///< max |x − exact| at the end
  double scale;             ///< max |exact| at the end
  std::size_t model_calls;  ///< as the sampler's StepInfo reports them
};

/// Integrates from the exact marginal at grid[0] (x = α μ + √(α² s² + σ²) z) and compares the end
/// with the exact ODE map. `velocity_model`: GaussianFlow (true velocity); else GaussianData (x̂₁).
template <class Rule>
Result integrate(const Rule& rule, const FlowGrid& grid, bool velocity_model) {
  const sftest::GaussianData data_oracle{NoiseSchedule::linear(), kMu, kS};
  const sftest::GaussianFlow flow_oracle{kMu, kS};
  const NoiseLevel from = flow::level(grid.times().front()), to = flow::level(grid.times().back());
  std::vector<double> x0(kZ6.size());
  for (std::size_t j = 0; j < x0.size(); ++j)
    x0[j] = from.alpha * kMu + std::sqrt(from.alpha * from.alpha * kS * kS + from.sigma * from.sigma) * kZ6[j];
  Generator gen(1);
  std::size_t calls = 0;
  const auto count = [&](const StepInfo<T>& info) { calls = info.model_calls; };
  const auto sample = [&](auto& model) {
    return Sampler{FlowSchedule{grid, rule}}.sample(model, FromState<T>{row(x0), 0}, gen, count);
  };
  auto data_model =
      denoiser([&](const T& x, FlowTime t, NoCondition c) { return data_oracle(x, t, c); }, Parameterization::sample);
  auto velocity =
      denoiser([&](const T& x, FlowTime t, NoCondition c) { return flow_oracle(x, t, c); }, Parameterization::velocity);
  const std::vector<double> out = ops::to_vector(velocity_model ? sample(velocity) : sample(data_model));
  Result r{0.0, 0.0, calls};
  for (std::size_t j = 0; j < out.size(); ++j) {
    const double exact = sftest::exact::gaussian_ode_map(x0[j], from, to, kMu, kS);
    r.error = std::max(r.error, std::abs(out[j] - exact));
    r.scale = std::max(r.scale, std::abs(exact));
  }
  return r;
}

FlowGrid uniform_on(double t0, double t1, int steps) {
  std::vector<double> t;
  for (int i = 0; i <= steps; ++i) t.push_back(t0 + (t1 - t0) * i / steps);
  return FlowGrid(std::move(t));
}

double rk4_order(const std::string& what, double t0, double t1, const std::vector<int>& steps, bool velocity_model) {
  std::vector<double> errors;
  std::string line;
  for (int n : steps) {
    const Result r = integrate(RK4{}, uniform_on(t0, t1, n), velocity_model);
    CHECK(r.model_calls == static_cast<std::size_t>(4 * n));
    errors.push_back(r.error);
    line += " N=" + std::to_string(n) + ": " + fmt(r.error);
  }
  const double p = sftest::fitted_order(steps, errors);
  MESSAGE("RK4, ", what, ":", line, " → order ", p);
  return p;
}
}  // namespace

TEST_CASE("runge-kutta: RK4 converges at order 4 to the exact Gaussian flow") {
  // The fitted slope over a finite range includes the next error term (h⁵); measured 4.16 on the
  // interior interval over N = 8 … 64. Over [0, 1] the velocity's slope turns from −1 at t = 0 to
  // +1 at t = 1, most steeply near t = 1/(1 + s²) = 0.8, and RK4's error constant changes sign
  // below N = 16 there (N = 8 and 16 give equal errors), so that fit uses N = 32 … 256 (measured
  // 3.85, approaching 4 from below: the last pair gives 3.9). ±0.25 accepts both and rejects
  // orders 3 and 5.
  CHECK(std::abs(rk4_order("GaussianData (x̂₁ model) on [0.1, 0.9]", 0.1, 0.9, {8, 16, 32, 64}, false) - 4.0) < 0.25);
  CHECK(std::abs(rk4_order("GaussianFlow (true velocity) on [0, 1]", 0.0, 1.0, {32, 64, 128, 256}, true) - 4.0) < 0.25);
}

TEST_CASE(
    "runge-kutta: one Dormand-Prince step has local error O(h^6), and its estimate is the error of the embedded "
    "4th-order solution") {
  // From the exact solution at t = 0.3, one step of size h: the fifth-order x' has local error
  // O(h⁶), the embedded fourth-order x' − estimate C h⁵, and the estimate equals the latter's
  // error to leading order (ratio → 1; measured 0.14 % off at h = 1/40). A wrong tableau entry
  // breaks one of the three (a stage matrix entry: the orders; an error weight e_i: the ratio).
  const sftest::GaussianFlow oracle{kMu, kS};
  int calls = 0;
  auto predict = [&](const T& x, FlowTime t) {
    ++calls;
    return Prediction<T>{oracle(x, t, NoCondition{}), Parameterization::velocity};
  };
  const double t0 = 0.3;
  const NoiseLevel l0 = flow::level(t0);
  std::vector<double> x0(kZ6.size());
  for (std::size_t j = 0; j < x0.size(); ++j)
    x0[j] = l0.alpha * kMu + std::sqrt(l0.alpha * l0.alpha * kS * kS + l0.sigma * l0.sigma) * kZ6[j];
  const std::vector<int> inverse_h{5, 10, 20, 40};
  std::vector<double> err5, err4;
  std::string line;
  for (int n : inverse_h) {
    const double h = 1.0 / n;
    const T x = row(x0);
    calls = 0;
    const T k1 = scoreflow::detail::velocity(predict, x, t0);
    const auto step = scoreflow::detail::dormand_prince_step(x, t0, h, k1, predict);
    CHECK(calls == 1 + 6);
    const auto fifth = ops::to_vector(step.x), estimate = ops::to_vector(step.error);
    double e5 = 0, e4 = 0, ratio_dev = 0;
    for (std::size_t j = 0; j < x0.size(); ++j) {
      const double exact = sftest::exact::gaussian_ode_map(x0[j], l0, flow::level(t0 + h), kMu, kS);
      const double fourth_error = fifth[j] - estimate[j] - exact;
      e5 = std::max(e5, std::abs(fifth[j] - exact));
      e4 = std::max(e4, std::abs(fourth_error));
      ratio_dev = std::max(ratio_dev, std::abs(-estimate[j] / fourth_error - 1.0));
    }
    err5.push_back(e5), err4.push_back(e4);
    line += " h=1/" + std::to_string(n) + ": " + fmt(e5) + ", " + fmt(e4) + " (estimate off by " + fmt(ratio_dev) + ")";
    if (n == inverse_h.back()) CHECK(ratio_dev < 0.05);
  }
  const double p5 = sftest::fitted_order(inverse_h, err5), p4 = sftest::fitted_order(inverse_h, err4);
  MESSAGE("Dormand-Prince local errors (5th, embedded 4th):", line, " → orders ", p5, ", ", p4);
  // The embedded solution's local error scales as h⁵ (measured 5.03; ±0.3 for the next terms).
  // The fifth-order solution's falls faster than h⁶ over this range (slopes 8.2, 7.6, 6.8 between
  // neighbours: this flow's h⁶ coefficient is small next to the h⁷ one) and reaches rounding
  // (~1e-15) below h = 1/40, so only "at least 6" is asserted; a wrong stage entry drops it to ≤ 5.
  CHECK(std::abs(p4 - 5.0) < 0.3);
  CHECK(p5 > 5.7);
}

TEST_CASE("runge-kutta: Dopri5 meets its tolerance, and needs fewer model calls the looser it is") {
  // One adaptive solve over the whole interval (a two-point grid). Each accepted step has a local
  // error of RMS at most atol + rtol·|x| (HNW I, §II.4); the global error is the sum of a few of
  // them carried by a contracting flow, so it stays a small multiple of that bound: we allow 5×
  // (measured at most 3.5×, interior at 1e-5, where five accepted steps each use much of the
  // bound; the other solves stay below 0.3×).
  const std::vector<double> tolerances{1e-9, 1e-7, 1e-5, 1e-3};
  for (const bool velocity_model : {false, true}) {
    const FlowGrid grid = velocity_model ? FlowGrid({0.0, 1.0}) : FlowGrid({0.1, 0.9});
    std::string line;
    std::size_t previous_calls = 0;
    for (const double tol : tolerances) {
      Dopri5 d;
      d.rtol = d.atol = tol;
      const Result r = integrate(d, grid, velocity_model);
      const double bound = tol + tol * r.scale;
      line += " tol " + fmt(tol) + ": error " + fmt(r.error) + " (" + fmt(r.error / bound) + " × bound), " +
              std::to_string(r.model_calls) + " calls;";
      CHECK(r.error < 5 * bound);
      if (previous_calls > 0) CHECK(r.model_calls < previous_calls);  // strictly fewer as tol loosens
      previous_calls = r.model_calls;
    }
    MESSAGE("Dopri5, ", std::string(velocity_model ? "GaussianFlow on [0, 1]" : "GaussianData on [0.1, 0.9]"), ":",
            line);
  }
  // A grid of several points: each interval is its own adaptive solve, and the result is as good.
  Dopri5 d;
  d.rtol = d.atol = 1e-8;
  const Result split = integrate(d, FlowGrid({0.1, 0.3, 0.6, 0.9}), false);
  CHECK(split.error < 5 * (1e-8 + 1e-8 * split.scale));
  // A given first step replaces Hairer's starting-step estimate (which costs one call).
  const Result automatic = integrate(d, FlowGrid({0.1, 0.9}), false);
  d.h_initial = 0.01;
  const Result given = integrate(d, FlowGrid({0.1, 0.9}), false);
  CHECK(given.error < 5 * (1e-8 + 1e-8 * given.scale));
  MESSAGE("Dopri5 tol 1e-8 on [0.1, 0.9]: one interval ", automatic.model_calls, " calls (error ", fmt(automatic.error),
          "); 3 intervals ", split.model_calls, " calls (error ", fmt(split.error),
          "); h_initial = 0.01: ", given.model_calls, " calls (error ", fmt(given.error), ")");
}

TEST_CASE("runge-kutta: Dopri5 rejects bad options by name, and running out of max_steps is an error naming it") {
  using doctest::Contains;
  const auto with = [](auto change) {
    Dopri5 d;
    change(d);
    return d;
  };
  const FlowGrid grid({0.1, 0.9});
  const auto solve = [&](const Dopri5& d) { return integrate(d, grid, false); };
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) { d.rtol = 0; })),
                       Contains("dopri5.rtol = 0: must be finite and positive"), invalid_option);
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) { d.rtol = INFINITY; })), Contains("dopri5.rtol = inf"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) { d.atol = -1e-6; })), Contains("dopri5.atol = -1e-06"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) { d.atol = NAN; })), Contains("dopri5.atol = nan"), invalid_option);
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) { d.max_steps = 0; })),
                       Contains("dopri5.max_steps = 0: must be positive"), invalid_option);
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) { d.h_initial = -0.1; })), Contains("dopri5.h_initial = -0.1"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) { d.safety = 1.5; })), Contains("dopri5.safety = 1.5"), invalid_option);
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) { d.min_factor = 0; })), Contains("dopri5.min_factor = 0"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) { d.max_factor = 0.5; })), Contains("dopri5.max_factor = 0.5"),
                       invalid_option);
  // A tight tolerance needs more than 5 steps here (about 20 at 1e-10).
  CHECK_THROWS_WITH_AS(solve(with([](Dopri5& d) {
                         d.rtol = d.atol = 1e-10;
                         d.max_steps = 5;
                       })),
                       Contains("dopri5.max_steps = 5: exceeded at t = 0."), invalid_option);
  CHECK_NOTHROW(solve(with([](Dopri5& d) {
    d.rtol = d.atol = 1e-10;
    d.max_steps = 200;
  })));
}

TEST_CASE_TEMPLATE("runge-kutta: RK4 and Dopri5 on every backend", B, SCOREFLOW_BACKENDS) {
  // float backends round at ~1e-7, so a loose tolerance; the same exact flow as above.
  const sftest::GaussianFlow oracle{kMu, kS};
  auto model =
      denoiser([&](const B& x, FlowTime t, NoCondition c) { return oracle(x, t, c); }, Parameterization::velocity);
  const B x0 = sftest::make<B>(kZ6, {1, 6});
  const auto check = [&](const auto& schedule, const std::string& name) {
    Generator gen(1);
    const auto out = ops::to_vector(Sampler{schedule}.sample(model, FromState<B>{x0, 0}, gen));
    double e = 0;
    for (std::size_t j = 0; j < out.size(); ++j)
      e = std::max(e, std::abs(out[j] - sftest::exact::gaussian_ode_map(kZ6[j], {0, 1}, {1, 0}, kMu, kS)));
    CAPTURE(name);
    CHECK(e < 1e-4);
  };
  check(FlowSchedule{FlowGrid::uniform(32), RK4{}}, "RK4, 32 steps");
  Dopri5 d;
  d.rtol = d.atol = 1e-6;
  check(FlowSchedule{FlowGrid({0.0, 1.0}), d}, "Dopri5, tol 1e-6");
}
}  // namespace test_runge_kutta
