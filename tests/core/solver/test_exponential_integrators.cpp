// The exponential-integrator family (solver/dpm_solver.hpp, unipc.hpp, deis.hpp, ipndm.hpp)
// against the exact probability-flow ODE solution for Gaussian data (sftest::exact::
// gaussian_ode_map) and the exact Gaussian marginal:
//   1. convergence order on all three paths (FlowSchedule, SigmaSchedule, DiffusionSchedule);
//   2. order 1 of DPMSolverPP is DDIM, order 1 of SDEDPMSolverPP is DDIM with η = 1;
//   3. SDE-DPM-Solver++(2M) samples the exact marginal;
//   4. both ends of a path (a first step from α = 0, a last step to σ = 0) give finite results
//      close to the exact map, for every option;
//   5. a multistep run cancelled and resumed from FromState{x, grid_index, history} continues
//      bit for bit; bad options are invalid_option naming the option.
// The agreement with diffusers' schedulers, step by step, is test_reference_diffusers.cpp.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_exponential_integrators {

using namespace scoreflow;

namespace {
using T = xt::xarray<double>;
constexpr double kMu = 0.3, kS = 0.5;  // data N(μ, s²) of GaussianData
const Shape kShape{1, 1, 2, 3};
const std::vector<double> kQuantiles = {-2.0, -1.0, -0.3, 0.4, 1.1, 2.2};  // start: these z of the marginal

auto gaussian_model(const sftest::GaussianData& oracle) {
  return denoiser([&oracle](const T& x, auto time, NoCondition c) { return oracle(x, time, c); },
                  Parameterization::sample);
}

// ---------------------------------------------------------------------------------------------
// 1. Convergence order.
//
// Setup: start at an interior level λ_a with six points of the exact marginal N(α μ, α² s² + σ²),
// integrate to an interior level λ_b (σ > 0, so no step is the special step onto clean data) on a
// grid uniform in λ (iPNDM: uniform in σ̃ = σ/α, its intended grid), with N = 64 … 512 steps, and
// measure max |x − x_exact|. Multistep rules are started with exact history: the grid extends
// three points before the start, and FromState carries (x, x̂) of the exact solution there. (With
// a lower-order warm-up the one first-order step's O(h²) local error would cap every method at
// order 2; the theorems' orders assume starting values of the method's order.)
//
// The asymptotic regime: over λ ∈ [−1, 2] the local slopes log₂(e_N / e_2N) settle by N = 128
// (printed below), except the highest orders which still drift by ≤ 0.12 per doubling there. We
// fit the slope of log e against log N by least squares over N = 128, 256, 512 and require it
// within 0.2 of the order: the remaining pre-asymptotic drift is O(h) (≤ 0.12 observed), roundoff
// is far below (errors ≥ 1e-11 at N = 512), and a wrong coefficient drops the slope by ≥ 1.
constexpr double kLambdaA = -1.0, kLambdaB = 2.0;
const std::vector<int> kSteps = {64, 128, 256, 512};
constexpr double kOrderTolerance = 0.2;
constexpr std::size_t kBefore = 3;  // exact history points before the start

enum class Family { flow, sigma, diffusion };
enum class Spacing { lambda, ve_sigma };  // uniform in λ, or uniform in σ̃ = σ/α

std::string name_of(Family f) {
  return f == Family::flow ? "FlowSchedule" : f == Family::sigma ? "SigmaSchedule" : "DiffusionSchedule";
}

/// Grid positions u_j, j = 0 … N + kBefore, the start at j = kBefore; in λ or in σ̃ = e^{−λ}.
std::vector<double> lambdas(int n, Spacing spacing) {
  std::vector<double> out;
  const double ra = std::exp(-kLambdaA), rb = std::exp(-kLambdaB);
  for (int j = 0; j <= n + static_cast<int>(kBefore); ++j) {
    const double u = static_cast<double>(j - static_cast<int>(kBefore)) / n;
    out.push_back(spacing == Spacing::lambda ? kLambdaA + u * (kLambdaB - kLambdaA) : -std::log(ra + u * (rb - ra)));
  }
  return out;
}

/// The linear β schedule refined to 20000 steps (β scaled by 1000/20000: the same continuous VP
/// process as linear(1000)), so that integer timesteps can sit within a few percent of a step of
/// the λ-uniform points; the integer timestep nearest each λ (by λ).
const NoiseSchedule& fine_table() {
  static const NoiseSchedule table = NoiseSchedule::linear(20000, 1e-4 / 20.0, 0.02 / 20.0);
  return table;
}
std::vector<int> timesteps_nearest(const std::vector<double>& lambda) {
  const auto& table = fine_table();
  std::vector<double> lam(static_cast<std::size_t>(table.size()));
  for (int t = 0; t < table.size(); ++t) lam[static_cast<std::size_t>(t)] = diffusion::level(table.alpha_bar(t)).lambda();
  std::vector<int> out;
  for (double l : lambda) {  // lam decreases with t
    const auto it = std::lower_bound(lam.begin(), lam.end(), l, [](double a, double b) { return a > b; });
    int t = static_cast<int>(it - lam.begin());
    if (t > 0 && (t == table.size() || std::abs(lam[t - 1] - l) < std::abs(lam[t] - l))) --t;
    out.push_back(t);
  }
  return out;
}

/// Runs `rule` from the exact marginal at grid index kBefore (with exact history) to the end.
template <class Schedule>
double final_error(const Schedule& schedule) {
  const sftest::GaussianData oracle{fine_table(), kMu, kS};
  auto model = gaussian_model(oracle);
  const NoiseLevel l0 = schedule.level(kBefore);
  std::vector<double> x0;
  for (double z : kQuantiles) x0.push_back(l0.alpha * kMu + std::sqrt(l0.alpha * l0.alpha * kS * kS + l0.sigma * l0.sigma) * z);
  const auto exact_at = [&](std::size_t j) {
    std::vector<double> v;
    for (double e : x0) v.push_back(sftest::exact::gaussian_ode_map(e, l0, schedule.level(j), kMu, kS));
    return ops::from_vector(v, kShape, T{});
  };
  SolverHistory<T> history;
  for (std::size_t j = 0; j < kBefore; ++j) {
    const T xj = exact_at(j);
    history.record(j, xj, oracle.answer(xj, schedule.level(j)), kBefore);
  }
  Generator gen(0);
  const T out = Sampler{schedule}.sample(model, FromState<T>{exact_at(kBefore), kBefore, history}, gen);
  return xt::amax(xt::abs(out - exact_at(schedule.size() - 1)))();
}

template <class Rule>
double final_error(Family family, const Rule& rule, int n, Spacing spacing) {
  const auto lam = lambdas(n, spacing);
  if (family == Family::flow) {
    std::vector<double> t;
    for (double l : lam) t.push_back(flow::time_of(flow::level_at_lambda(l)));
    return final_error(FlowSchedule{FlowGrid(t), rule});
  }
  if (family == Family::sigma) {
    std::vector<double> s;
    for (double l : lam) s.push_back(std::exp(-l));
    return final_error(SigmaSchedule{SigmaGrid(s), rule});
  }
  if constexpr (std::is_same_v<Rule, DPMSolverPP2S>) {
    FAIL("DPMSolverPP2S needs a ContinuousPath");
    return 0.0;
  } else {
    return final_error(DiffusionSchedule{fine_table(), DiffusionGrid(timesteps_nearest(lam)), rule});
  }
}

/// The measured order over the last three step counts (sftest::fitted_order).
double fitted_order(const std::vector<double>& errors) {
  const std::vector<int> steps(kSteps.end() - 3, kSteps.end());
  return sftest::fitted_order(steps, std::vector<double>(errors.end() - 3, errors.end()));
}

template <class Rule>
void check_order(const std::string& name, const Rule& rule, double expected, Family family,
                 Spacing spacing = Spacing::lambda) {
  std::vector<double> errors;
  std::string shown;
  for (int n : kSteps) {
    errors.push_back(final_error(family, rule, n, spacing));
    char text[64];
    std::snprintf(text, sizeof text, " N=%d: %.3e", n, errors.back());
    shown += text;
    if (errors.size() > 1) {
      std::snprintf(text, sizeof text, " (%.2f)", std::log2(errors[errors.size() - 2] / errors.back()));
      shown += text;
    }
  }
  const double order = fitted_order(errors);
  CHECK_MESSAGE(std::abs(order - expected) <= kOrderTolerance, name, " on ", name_of(family), ": order ", order,
                ", expected ", expected, ";", shown);
  MESSAGE(name, " on ", name_of(family), ": fitted order ", order, " (expected ", expected, "); errors (local slope)",
          shown);
}

const Family kFamilies[] = {Family::flow, Family::sigma, Family::diffusion};
}  // namespace

TEST_CASE("exponential integrators: DPM-Solver++ 1M/2M converge at order 1/2; diffusers' 3M formula at order 2, the Taylor-weighted 3M at 3") {
  // diffusers' (and the DPM-Solver reference code's) third-order multistep update weights
  // D2 = (D1_0 − D1_1)/(r0 + r1) ≈ h² x̂''/2 with −α_t ((e^{−h} − 1 + h)/h² − ½), the coefficient
  // of h² x̂'': its second-derivative term is half the Taylor term α_t h³ φ₃(h) x̂'', so its local
  // error is O(h³) and the method is second order. We reproduce diffusers exactly
  // (test_reference_diffusers.cpp), so we measure order 2 here; the true third-order exponential
  // Adams–Bashforth in data prediction is UniPC{.order = 3, .corrector = false} (order 3 below),
  // and DPMSolverPP with third_order = taylor (the D2 weight doubled) is third order.
  for (Family f : kFamilies) {
    check_order("DPMSolverPP order 1", DPMSolverPP{.order = 1, .lower_order_final = false}, 1.0, f);
    check_order("DPMSolverPP order 2 midpoint", DPMSolverPP{.order = 2, .lower_order_final = false}, 2.0, f);
    check_order("DPMSolverPP order 2 heun",
                DPMSolverPP{.order = 2, .variant = DPMSolverVariant::heun, .lower_order_final = false}, 2.0, f);
    check_order("DPMSolverPP order 3 (diffusers' 3M)", DPMSolverPP{.order = 3, .lower_order_final = false}, 2.0, f);
    check_order("DPMSolverPP order 3 (Taylor weight)",
                DPMSolverPP{.order = 3, .lower_order_final = false, .third_order = DPMSolverThirdOrder::taylor}, 3.0, f);
  }
}

TEST_CASE("exponential integrators: UniPC-p converges at order p, and at p + 1 with the corrector (Zhao et al. Thm 3.1)") {
  for (Family f : kFamilies)
    for (UniPCVariant v : {UniPCVariant::bh1, UniPCVariant::bh2})
      for (int p = 1; p <= 3; ++p)
        for (bool corrector : {false, true}) {
          const std::string name = std::string("UniPC ") + (v == UniPCVariant::bh1 ? "bh1" : "bh2") + " p=" +
                                   std::to_string(p) + (corrector ? " with UniC" : " UniP only");
          check_order(name, UniPC{.order = p, .variant = v, .corrector = corrector, .lower_order_final = false},
                      p + (corrector ? 1.0 : 0.0), f);
        }
}

TEST_CASE("exponential integrators: DEIS (tAB, log ρ) converges at orders 1, 2, 3") {
  for (Family f : kFamilies)
    for (int p = 1; p <= 3; ++p)
      check_order("DEIS order " + std::to_string(p), DEIS{.order = p, .lower_order_final = false}, p, f);
}

TEST_CASE("exponential integrators: DPM-Solver++(2S) converges at order 2") {
  for (Family f : {Family::flow, Family::sigma}) check_order("DPMSolverPP2S", DPMSolverPP2S{}, 2.0, f);
}

TEST_CASE("exponential integrators: iPNDM converges at orders 1-4 on grids uniform in σ/α, and at ≤ 2 on λ-uniform ones") {
  // Its equal-step Adams–Bashforth coefficients are exact only on σ̃-uniform grids (ipndm.hpp).
  for (Family f : {Family::flow, Family::sigma})
    for (int p = 1; p <= 4; ++p) check_order("iPNDM order " + std::to_string(p), IPNDM{.order = p}, p, f, Spacing::ve_sigma);
  // On a smoothly graded grid orders 3 and 4 fall to 2 (the O(h·Δh) first-derivative defect).
  for (int p = 3; p <= 4; ++p)
    check_order("iPNDM order " + std::to_string(p) + " on a λ-uniform grid", IPNDM{.order = p}, 2.0, Family::flow);
}

// ---------------------------------------------------------------------------------------------
// 2. First orders are DDIM.

TEST_CASE("exponential integrators: DPMSolverPP order 1 is DDIMStep{} and SDEDPMSolverPP order 1 is DDIMStep{η = 1}") {
  const auto table = NoiseSchedule::linear();
  const sftest::GaussianDiffusion oracle{table, kMu, kS};
  auto model = denoiser([&](const T& x, Timestep t, NoCondition c) { return oracle(x, t, c); }, Parameterization::noise);
  const T proto = sftest::zeros<T>({8, 1, 4, 4});
  for (auto grid : {DiffusionGrid::spaced(10), DiffusionGrid::spaced(25, 1000, DiffusionGrid::Spacing::linspace),
                    DiffusionGrid::strided()}) {
    const auto sample = [&](auto rule) {
      Generator gen(11);
      return Sampler{DiffusionSchedule{table, grid, rule}}.sample(model, PureNoise<T>{proto}, gen);
    };
    const double ode = xt::amax(xt::abs(sample(DPMSolverPP{.order = 1}) - sample(DDIMStep{})))();
    CHECK(ode <= 1e-12);
    // The same seed gives the same draws: DDIM draws one tensor per step with σ > 0, the SDE
    // solver one per step, the last of which (onto σ = 0, coefficient 0) comes after the others.
    const double sde = xt::amax(xt::abs(sample(SDEDPMSolverPP<>{.order = 1}) - sample(DDIMStep{.eta = 1.0})))();
    CHECK(sde <= 1e-12);
    MESSAGE("|DPMSolverPP(1) − DDIM| = ", ode, ", |SDEDPMSolverPP(1) − DDIM(η = 1)| = ", sde);
  }
}

// ---------------------------------------------------------------------------------------------
// 3. The SDE solver samples the exact marginal.

TEST_CASE("exponential integrators: SDE-DPM-Solver++(2M) samples the exact marginal N(α μ, α² s² + σ²)") {
  // From 64,000 draws of the exact marginal at λ = −3 to λ = 3 in 100 λ-uniform steps (both
  // interior: a last step onto σ = 0 is first order with infinite h and keeps an O(1/N) bias).
  // Tolerance 4 standard errors of the sample mean √(v/n) and variance v√(2/(n − 1)) (≈ 2 % of v).
  // The scheme's own bias here is 0.1 % of the variance (its closed-form moment recursion on this
  // grid gives 0.22935 against 0.22910 for midpoint; 0.0003 relative for heun): well inside.
  const int n_steps = 100;
  const std::int64_t batch = 4000;
  for (auto variant : {DPMSolverVariant::midpoint, DPMSolverVariant::heun}) {
    for (Family f : {Family::flow, Family::sigma}) {
      CAPTURE(static_cast<int>(variant));
      CAPTURE(name_of(f));
      std::vector<double> lam;
      for (int j = 0; j <= n_steps; ++j) lam.push_back(-3.0 + 6.0 * j / n_steps);
      const SDEDPMSolverPP<> rule{.order = 2, .variant = variant};
      const auto sample = [&](const auto& schedule) {
        const sftest::GaussianData oracle{};
        auto model = gaussian_model(oracle);
        const NoiseLevel a = schedule.level(0);
        Generator gen(3);
        const T z = ops::randn_like(sftest::zeros<T>({batch, 1, 4, 4}), gen);
        const T x0 = ops::add_scalar(ops::scale(std::sqrt(a.alpha * a.alpha * kS * kS + a.sigma * a.sigma), z), a.alpha * kMu);
        const T out = Sampler{schedule}.sample(model, FromState<T>{x0, 0}, gen);
        const NoiseLevel b = schedule.level(schedule.size() - 1);
        return std::pair{sftest::moments(out), sftest::Moments{b.alpha * kMu, b.alpha * b.alpha * kS * kS + b.sigma * b.sigma}};
      };
      std::pair<sftest::Moments, sftest::Moments> r;
      if (f == Family::flow) {
        std::vector<double> t;
        for (double l : lam) t.push_back(flow::time_of(flow::level_at_lambda(l)));
        r = sample(FlowSchedule{FlowGrid(t), rule});
      } else {
        std::vector<double> s;
        for (double l : lam) s.push_back(std::exp(-l));
        r = sample(SigmaSchedule{SigmaGrid(s), rule});
      }
      const auto [m, exact] = r;
      const double n = static_cast<double>(batch * 16);
      CHECK(std::abs(m.mean - exact.mean) < 4 * std::sqrt(exact.variance / n));
      CHECK(std::abs(m.variance - exact.variance) < 4 * exact.variance * std::sqrt(2 / (n - 1)));
      MESSAGE("SDE-DPM-Solver++(2M) on ", name_of(f), ": mean ", m.mean, " var ", m.variance, " | exact ", exact.mean,
              " ", exact.variance, " (4 s.e. of var ", 4 * exact.variance * std::sqrt(2 / (n - 1)), ")");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Both ends of a path.

namespace {
/// Every rule and option combination the ends test runs.
template <class F>
void for_each_rule(F&& f) {
  for (int o = 1; o <= 3; ++o)
    for (auto v : {DPMSolverVariant::midpoint, DPMSolverVariant::heun})
      for (bool lof : {true, false}) {
        f("DPMSolverPP o" + std::to_string(o), DPMSolverPP{.order = o, .variant = v, .lower_order_final = lof}, true);
        if (o <= 2)
          f("SDEDPMSolverPP o" + std::to_string(o), SDEDPMSolverPP<>{.order = o, .variant = v, .lower_order_final = lof}, false);
      }
  f("DPMSolverPP euler_at_final", DPMSolverPP{.order = 3, .euler_at_final = true}, true);
  for (int o = 1; o <= 3; ++o)
    for (auto v : {UniPCVariant::bh1, UniPCVariant::bh2})
      for (bool c : {true, false})
        for (bool lof : {true, false})
          f("UniPC o" + std::to_string(o) + (v == UniPCVariant::bh1 ? " bh1" : " bh2") + (c ? " C" : "") + (lof ? " lof" : ""),
            UniPC{.order = o, .variant = v, .corrector = c, .lower_order_final = lof}, true);
  for (int o = 1; o <= 3; ++o)
    for (bool lof : {true, false}) f("DEIS o" + std::to_string(o), DEIS{.order = o, .lower_order_final = lof}, true);
  for (int o = 1; o <= 4; ++o) f("IPNDM o" + std::to_string(o), IPNDM{.order = o}, true);
}

/// diffusers' DPM-Solver grid: round(linspace(0, 999, n + 1))[::-1][:-1], then σ = 0 (timestep −1).
DiffusionGrid dpm_grid(int n) {
  std::vector<int> t;
  for (int k = n; k >= 1; --k) t.push_back(static_cast<int>(std::nearbyint(999.0 * k / n)));
  t.push_back(-1);
  return DiffusionGrid(std::move(t));
}

/// max |x − x_exact| over the run from `x0` at grid index 0, and whether it is finite.
template <class Schedule, class Model>
double end_error(const Schedule& schedule, Model& model, const T& x0, std::uint64_t seed = 5) {
  Generator gen(seed);
  const T out = Sampler{schedule}.sample(model, FromState<T>{x0, 0}, gen);
  REQUIRE(ops::all_finite(out));
  const NoiseLevel a = schedule.level(0), b = schedule.level(schedule.size() - 1);
  double worst = 0.0;
  const auto xs = ops::to_vector(x0), ys = ops::to_vector(out);
  for (std::size_t j = 0; j < xs.size(); ++j)
    worst = std::max(worst, std::abs(ys[j] - sftest::exact::gaussian_ode_map(xs[j], a, b, kMu, kS)));
  return worst;
}
}  // namespace

TEST_CASE("exponential integrators at the ends of a path: from α = 0 (flow t = 0) to σ = 0 (t = 1, timestep −1, σ = 0) every rule is finite and close to the exact map") {
  // Finite is the claim at both grid sizes (the sampler throws non_finite_error otherwise). At 40
  // steps the distance to the exact map is also bounded, for the deterministic rules, by 0.15: the
  // largest observed is 0.079 (the first-order rules; DDIM's own error on these grids), while a
  // wrong end-point limit (x̂ or x dropped) errs by O(1). At 12 steps the large steps (h ≈ 1) make
  // some methods inaccurate (UniPC bh1 order 2 errs by 0.9 on the Karras grid, as its B(h) = h
  // form does for large h), so there only finiteness is checked. The diffusion grid is diffusers'
  // DPM-Solver grid ending at σ = 0, the flow grid uniform from t = 0 to 1, the σ grid Karras
  // (80 … 0.002) then 0.
  const sftest::GaussianData data_oracle{};
  auto sample_model = gaussian_model(data_oracle);
  const sftest::GaussianFlow flow_oracle{kMu, kS};
  auto velocity = denoiser([&](const T& x, FlowTime t, NoCondition c) { return flow_oracle(x, t, c); }, Parameterization::velocity);
  const auto table = NoiseSchedule::linear();
  const sftest::GaussianDiffusion eps_oracle{table, kMu, kS};
  auto eps = denoiser([&](const T& x, Timestep t, NoCondition c) { return eps_oracle(x, t, c); }, Parameterization::noise);
  const T z = ops::from_vector(kQuantiles, kShape, T{});
  double worst = 0.0;
  for (int n : {12, 40}) {  // below and above diffusers' 15-step lower_order_final threshold
    const double bound = n == 12 ? std::numeric_limits<double>::infinity() : 0.15;
    std::vector<double> karras;
    for (int i = 0; i < n; ++i) {
      const double r = static_cast<double>(i) / (n - 1);
      karras.push_back(std::pow(std::pow(80.0, 1 / 7.0) + r * (std::pow(0.002, 1 / 7.0) - std::pow(80.0, 1 / 7.0)), 7.0));
    }
    karras.push_back(0.0);
    for_each_rule([&](const std::string& name, const auto& rule, bool deterministic) {
      CAPTURE(name);
      CAPTURE(n);
      const double e_flow = end_error(FlowSchedule{FlowGrid::uniform(n), rule}, velocity, z);
      const double e_diff = end_error(DiffusionSchedule{table, dpm_grid(n), rule}, eps, z);
      const double e_sigma = end_error(SigmaSchedule{SigmaGrid(karras), rule}, sample_model, ops::scale(80.0, z));
      if (deterministic) {
        CHECK(e_flow < bound);
        CHECK(e_diff < bound);
        CHECK(e_sigma < bound);
        if (n == 40) worst = std::max({worst, e_flow, e_diff, e_sigma});
      }
    });
    {
      CAPTURE(n);
      CHECK(end_error(FlowSchedule{FlowGrid::uniform(n), DPMSolverPP2S{}}, velocity, z) < bound);
      CHECK(end_error(SigmaSchedule{SigmaGrid(karras), DPMSolverPP2S{}}, sample_model, ops::scale(80.0, z)) < bound);
    }
  }
  MESSAGE("largest distance to the exact map at 40 steps: ", worst);
}

TEST_CASE("exponential integrators at the ends: DPMSolverPP2S takes its first step (from t = 0) and its last (to t = 1) first order") {
  // Infinite h has no finite λ-midpoint; those steps are DDIM with one model call.
  int calls = 0;
  const sftest::GaussianFlow oracle{kMu, kS, &calls};
  auto velocity = denoiser([&](const T& x, FlowTime t, NoCondition c) { return oracle(x, t, c); }, Parameterization::velocity);
  const T z = ops::from_vector(kQuantiles, kShape, T{});
  Generator gen(0);
  const T out = Sampler{FlowSchedule{FlowGrid::uniform(10), DPMSolverPP2S{}}}.sample(velocity, FromState<T>{z, 0}, gen);
  CHECK(ops::all_finite(out));
  CHECK(calls == 2 * 10 - 2);
  calls = 0;
  std::vector<double> interior;
  for (int i = 0; i <= 10; ++i) interior.push_back(0.05 + 0.9 * i / 10.0);
  Sampler{FlowSchedule{FlowGrid(interior), DPMSolverPP2S{}}}.sample(velocity, FromState<T>{z, 0}, gen);
  CHECK(calls == 2 * 10);
}

TEST_CASE("exponential integrators at the ends: DPMSolverPP onto σ = 0 is first order whatever the options, as diffusers' final_sigmas_type=\"zero\"") {
  // The last step of a grid ending at σ = 0 is α_t x̂ at the last point: x_t = (σ_t/σ_s) x + α_t x̂.
  const auto table = NoiseSchedule::linear();
  const sftest::GaussianDiffusion oracle{table, kMu, kS};
  auto eps = denoiser([&](const T& x, Timestep t, NoCondition c) { return oracle(x, t, c); }, Parameterization::noise);
  for (int n : {10, 30})
    for (int o = 1; o <= 3; ++o) {
      CAPTURE(n);
      CAPTURE(o);
      T last_data;
      Generator gen(1);
      const T out = Sampler{DiffusionSchedule{table, DiffusionGrid::spaced(n, 1000, DiffusionGrid::Spacing::linspace),
                                              DPMSolverPP{.order = o, .lower_order_final = false}}}
                        .sample(eps, PureNoise<T>{sftest::zeros<T>({2, 1, 2, 2})}, gen, [&](const StepInfo<T>& info) {
                          if (!info.history.empty()) last_data = info.history.back().data;
                        });
      CHECK(ops::to_vector(out) == ops::to_vector(last_data));
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Cancel and resume; options.

TEST_CASE("exponential integrators: a multistep run cancelled after k steps and resumed from FromState{x, grid_index, history} ends identically") {
  const auto table = NoiseSchedule::linear();
  const sftest::GaussianDiffusion oracle{table, kMu, kS};
  auto eps = denoiser([&](const T& x, Timestep t, NoCondition c) { return oracle(x, t, c); }, Parameterization::noise);
  const auto grid = DiffusionGrid::spaced(20, 1000, DiffusionGrid::Spacing::linspace);
  const T x0 = ops::from_vector(kQuantiles, kShape, T{});
  RecordedNoise<T> noise;
  for (int k = 0; k < 20; ++k) {
    std::vector<double> v;
    for (int j = 0; j < 6; ++j) v.push_back(1.4 * std::sin(1.7 * k + 0.9 * j + 0.3));
    noise.noise.push_back(ops::from_vector(v, kShape, T{}));
  }
  const auto check = [&](const std::string& name, const auto& rule) {
    CAPTURE(name);
    const DiffusionSchedule schedule{table, grid, rule};
    Generator g0(0);
    const T whole = Sampler{schedule}.sample(eps, FromState<T>{x0, 0}, g0);
    for (std::size_t k : {1u, 2u, 3u, 7u, 18u}) {
      CAPTURE(k);
      std::optional<FromState<T>> resume;
      Generator g1(0);
      CHECK_THROWS_AS(Sampler{schedule}.sample(eps, FromState<T>{x0, 0}, g1,
                                               [&](const StepInfo<T>& info) {
                                                 if (info.step < k) return StepControl::proceed;
                                                 resume = FromState<T>{info.x, info.grid_index, info.history};
                                                 return StepControl::stop;
                                               }),
                      cancelled);
      REQUIRE(resume.has_value());
      Generator g2(1);  // another seed: nothing may depend on the generator
      const T resumed = Sampler{schedule}.sample(eps, *resume, g2);
      CHECK(ops::to_vector(resumed) == ops::to_vector(whole));
    }
  };
  check("DPMSolverPP order 3", DPMSolverPP{.order = 3});
  check("DPMSolverPP order 2 heun", DPMSolverPP{.order = 2, .variant = DPMSolverVariant::heun});
  check("UniPC order 3 bh2", UniPC{.order = 3});
  check("UniPC order 2 bh1", UniPC{.order = 2, .variant = UniPCVariant::bh1});
  check("DEIS order 3", DEIS{.order = 3});
  check("IPNDM order 4", IPNDM{.order = 4});
  check("SDEDPMSolverPP order 2 with recorded noise", SDEDPMSolverPP<RecordedNoise<T>>{.order = 2, .noise = noise});
}

TEST_CASE("exponential integrators: bad orders are invalid_option naming the option; a history without samples is named too") {
  const sftest::GaussianData oracle{};
  auto model = gaussian_model(oracle);
  const T x0 = ops::from_vector(kQuantiles, kShape, T{});
  const auto run = [&](const auto& rule) {
    Generator gen(0);
    return Sampler{FlowSchedule{FlowGrid::uniform(4), rule}}.sample(model, FromState<T>{x0, 1}, gen);
  };
  CHECK_THROWS_WITH_AS(run(DPMSolverPP{.order = 4}), doctest::Contains("dpmpp.order = 4"), invalid_option);
  CHECK_THROWS_WITH_AS(run(DPMSolverPP{.order = 0}), doctest::Contains("dpmpp.order = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(run(SDEDPMSolverPP<>{.order = 3}), doctest::Contains("sde_dpmpp.order = 3"), invalid_option);
  CHECK_THROWS_WITH_AS(run(UniPC{.order = 4}), doctest::Contains("unipc.order = 4"), invalid_option);
  CHECK_THROWS_WITH_AS(run(UniPC{.order = 0}), doctest::Contains("unipc.order = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(run(DEIS{.order = 4}), doctest::Contains("deis.order = 4"), invalid_option);
  CHECK_THROWS_WITH_AS(run(IPNDM{.order = 5}), doctest::Contains("ipndm.order = 5"), invalid_option);
  CHECK_THROWS_WITH_AS(run(IPNDM{.order = 0}), doctest::Contains("ipndm.order = 0"), invalid_option);
  // DEIS, iPNDM and UniPC's corrector need the earlier samples; DPMSolverPP records answers only.
  SolverHistory<T> answers_only;  // (an entry at flow t = 0 would be skipped: α = 0 answers are never used)
  answers_only.record(1, x0, 1);
  const auto resume_deis = [&] {
    Generator gen(0);
    return Sampler{FlowSchedule{FlowGrid::uniform(4), DEIS{.order = 2}}}.sample(model, FromState<T>{x0, 2, answers_only}, gen);
  };
  CHECK_THROWS_WITH_AS(resume_deis(), doctest::Contains("deis: history entry at grid index 1 holds no sample"),
                       invalid_option);
}

TEST_CASE_TEMPLATE("exponential integrators on every backend: finite, and float agrees with double", B, SCOREFLOW_BACKENDS) {
  const auto table = NoiseSchedule::linear();
  const sftest::GaussianDiffusion oracle{table, kMu, kS};
  auto eps = denoiser([&](const B& x, Timestep t, NoCondition c) { return oracle(x, t, c); }, Parameterization::noise);
  auto eps_double = denoiser([&](const T& x, Timestep t, NoCondition c) { return oracle(x, t, c); }, Parameterization::noise);
  const auto grid = DiffusionGrid::spaced(20, 1000, DiffusionGrid::Spacing::linspace);
  const auto check = [&](const std::string& name, const auto& rule) {
    CAPTURE(name);
    Generator g1(0), g2(0);
    const B x0 = sftest::make<B>(kQuantiles, kShape);
    const B out = Sampler{DiffusionSchedule{table, grid, rule}}.sample(eps, FromState<B>{x0, 0}, g1);
    const T ref = Sampler{DiffusionSchedule{table, grid, rule}}.sample(
        eps_double, FromState<T>{ops::from_vector(kQuantiles, kShape, T{}), 0}, g2);
    const auto a = ops::to_vector(out), b = ops::to_vector(ref);
    for (std::size_t j = 0; j < a.size(); ++j) CHECK(std::abs(a[j] - b[j]) <= 1e-4);
  };
  check("DPMSolverPP 3", DPMSolverPP{.order = 3});
  check("UniPC 3", UniPC{.order = 3});
  check("DEIS 3", DEIS{.order = 3});
  check("IPNDM 4", IPNDM{});
}
}  // namespace test_exponential_integrators
