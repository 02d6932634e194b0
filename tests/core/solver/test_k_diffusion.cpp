// The k-diffusion family (solver/k_diffusion.hpp) against three references:
//   1. k-diffusion itself: every step of its samplers, recorded by running its unchanged
//      k_diffusion/sampling.py in float64 (reference/kdiffusion_samplers.inc), reproduced on a
//      SigmaSchedule with the same denoiser, start and injected noise;
//   2. the exact probability-flow ODE solution for Gaussian data (sftest::exact::gaussian_ode_map):
//      each deterministic rule converges at its order;
//   3. the exact marginal N(μ, s² + σ²) of Gaussian data at σ: the stochastic rules (ancestral
//      Euler, Heun with churn) sample it, and follow the closed-form per-step moment recursion.
// Plus: on a FlowSchedule and a DiffusionSchedule each rule is the same method on the equivalent
// VE path (x = α x̃), and both ends of those paths (α = 0, σ = 0) give finite results.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"
#include "reference/kdiffusion_samplers.inc"

namespace test_k_diffusion {

using namespace scoreflow;

namespace {
using T = xt::xarray<double>;
constexpr double kMu = 0.3, kS = 0.5;  // the data N(μ, s²) of the recording and of GaussianData

/// One model for every family: GaussianData answers E[data | x] at the level its time denotes.
auto gaussian_model(const sftest::GaussianData& oracle) {
  return denoiser([&oracle](const T& x, auto time, NoCondition c) { return oracle(x, time, c); },
                  Parameterization::sample);
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

T row(const std::vector<double>& values) {
  return ops::from_vector(values, {1, static_cast<std::int64_t>(values.size())}, T{});
}

/// Karras et al. 2022, eq. 5: σ_i = (σ_max^{1/ρ} + i/N (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0 … N.
std::vector<double> karras(int n, double sigma_min, double sigma_max, double rho = 7.0) {
  std::vector<double> s;
  for (int i = 0; i <= n; ++i) {
    const double r = static_cast<double>(i) / n;
    s.push_back(std::pow(
        std::pow(sigma_max, 1 / rho) + r * (std::pow(sigma_min, 1 / rho) - std::pow(sigma_max, 1 / rho)), rho));
  }
  return s;
}

/// What the step callback saw after each step.
struct Trace {
  std::vector<std::vector<double>> x, data;  // x after step k; the data estimate the history holds
  std::vector<std::size_t> data_index;       // the grid index of that history entry
  std::size_t calls = 0;
  std::vector<double> final_x;
};

template <class Schedule, class Model>
Trace run(const Schedule& schedule, Model& model, const T& x0, std::size_t start = 0, SolverHistory<T> history = {},
          std::uint64_t seed = 7) {
  Trace trace;
  Generator gen(seed);
  const T out =
      Sampler{schedule}.sample(model, FromState<T>{x0, start, std::move(history)}, gen, [&](const StepInfo<T>& info) {
        if (info.step == 0) return;
        trace.x.push_back(ops::to_vector(info.x));
        trace.data.push_back(ops::to_vector(info.history.back().data));
        trace.data_index.push_back(info.history.back().index);
        trace.calls = info.model_calls;
      });
  trace.final_x = ops::to_vector(out);
  return trace;
}

/// max over rows k of max_j |a[k][j] − b[k][j]| / max_j |b[k][j]|.
template <std::size_t N>
double max_row_relative(const std::vector<std::vector<double>>& a, const double (&b)[N][6]) {
  REQUIRE(a.size() == N);
  double worst = 0.0;
  for (std::size_t k = 0; k < N; ++k) {
    double scale = 0.0, dev = 0.0;
    for (std::size_t j = 0; j < 6; ++j) {
      scale = std::max(scale, std::abs(b[k][j]));
      dev = std::max(dev, std::abs(a[k][j] - b[k][j]));
    }
    worst = std::max(worst, dev / scale);
  }
  return worst;
}

/// The recorded noise: k-diffusion's k-th draw is kNoise20[k], and it happened at step k (asserted
/// against the recording where it has draws), i.e. on the step leaving grid index k.
RecordedNoise<T> recorded_noise(std::size_t steps) {
  RecordedNoise<T> noise;
  for (std::size_t k = 0; k < steps; ++k)
    noise.noise.push_back(row(std::vector<double>(sfref::kNoise20[k], sfref::kNoise20[k] + 6)));
  return noise;
}
template <std::size_t D>
void check_draw_steps(const int (&draw_step)[D]) {
  for (std::size_t k = 0; k < D; ++k) CHECK(draw_step[k] == static_cast<int>(k));
}

/// Runs `rule` on the recording's σ grid from x₀ = σ₀ z and compares every step's x and the data
/// estimate of the step (k-diffusion's callback 'denoised') with the recording.
template <class Rule, std::size_t G, std::size_t N>
double agree_with_kdiffusion(const std::string& name, const Rule& rule, const double (&sigmas)[G],
                             const double (&steps)[N][6], const double (&denoised)[N][6], int model_evals) {
  static_assert(G == N + 1);
  sftest::GaussianData oracle{NoiseSchedule::linear(), kMu, kS};
  auto model = gaussian_model(oracle);
  std::vector<double> x0(6);
  for (std::size_t j = 0; j < 6; ++j) x0[j] = sigmas[0] * sfref::kZ[j];
  const Trace t = run(SigmaSchedule{SigmaGrid(std::vector<double>(sigmas, sigmas + G)), rule}, model, row(x0));
  const double dev_x = max_row_relative(t.x, steps), dev_data = max_row_relative(t.data, denoised);
  for (std::size_t k = 0; k < N; ++k) CHECK(t.data_index[k] == k);
  CHECK(t.calls == static_cast<std::size_t>(model_evals));
  MESSAGE(name, ": max deviation from k-diffusion, relative to each step's largest |x|: x ", dev_x, ", denoised ",
          dev_data, "; model calls ", t.calls, " (k-diffusion ", model_evals, ")");
  // Both sides are float64 evaluations of the same formulas in a different association order
  // (D + σ' d for x + (σ' − σ) d, exp(−λ) for σ, exact Lagrange integrals for scipy's quad), each
  // a few ulps (~1e-16) of the step's largest term. The VE flow of Gaussian data contracts
  // (|∂x̃'/∂x̃| ≤ 1 per step), so over ≤ 20 steps the deviation stays near 1e-15; 1e-10 leaves
  // five orders of margin and still fails at once for any wrong coefficient (those show ≥ 1e-4).
  CHECK(dev_x < 1e-10);
  CHECK(dev_data < 1e-10);
  return std::max(dev_x, dev_data);
}

const std::vector<double> kZ6 = {0.8, -1.3, 0.25, 1.9, -0.45, 0.05};

/// Max error at σ_end of `rule` on `sigmas` against the exact ODE map, from x₀ on the exact
/// marginal at σ₀. With `exact_history` > 0 the run starts at grid index `exact_history`, with the
/// exact solution there and at the earlier points in its SolverHistory (as a resumed run).
template <class Rule>
double ode_error(const Rule& rule, const std::vector<double>& sigmas, std::size_t exact_history = 0) {
  sftest::GaussianData oracle{NoiseSchedule::linear(), kMu, kS};
  auto model = gaussian_model(oracle);
  const NoiseLevel first{1.0, sigmas.front()}, last{1.0, sigmas.back()};
  std::vector<double> x0(6);
  for (std::size_t j = 0; j < 6; ++j) x0[j] = kMu + std::sqrt(kS * kS + sigmas[0] * sigmas[0]) * kZ6[j];
  const auto exact_at = [&](std::size_t i) {
    std::vector<double> xi(6);
    for (std::size_t j = 0; j < 6; ++j)
      xi[j] = sftest::exact::gaussian_ode_map(x0[j], first, {1.0, sigmas[i]}, kMu, kS);
    return row(xi);
  };
  SolverHistory<T> history;
  for (std::size_t k = 0; k < exact_history; ++k) {
    const T xk = exact_at(k);
    history.record(k, xk, oracle(xk, Sigma{sigmas[k]}, NoCondition{}), exact_history);
  }
  const Trace t = run(SigmaSchedule{SigmaGrid(sigmas), rule}, model, exact_at(exact_history), exact_history, history);
  double e = 0;
  for (std::size_t j = 0; j < 6; ++j)
    e = std::max(e, std::abs(t.final_x[j] - sftest::exact::gaussian_ode_map(x0[j], first, last, kMu, kS)));
  return e;
}

template <class Rule>
double measured_order(const std::string& name, const Rule& rule, const std::vector<int>& steps, double sigma_min,
                      double sigma_max, std::size_t exact_history = 0) {
  std::vector<double> errors;
  std::string line;
  for (int n : steps) {
    errors.push_back(ode_error(rule, karras(n, sigma_min, sigma_max), exact_history));
    line += " N=" + std::to_string(n) + ": " + fmt(errors.back());
  }
  const double p = sftest::fitted_order(steps, errors);
  MESSAGE(name, " on Karras ρ = 7, σ ", sigma_max, " → ", sigma_min, ":", line, " → order ", p);
  return p;
}
}  // namespace

TEST_CASE("k-diffusion agreement: every step of each k-diffusion sampler equals k_diffusion.sampling's own run") {
  double worst = 0;
#define SF_KD_REF(tag, n)                                                                                    \
  sfref::kKarras##n##_sigmas, sfref::kKd_##tag##_karras##n##_steps, sfref::kKd_##tag##_karras##n##_denoised, \
      sfref::kKd_##tag##_karras##n##_model_evals
  check_draw_steps(sfref::kKd_Euler_karras10_noise_draw_step);
  check_draw_steps(sfref::kKd_EulerAncestral_karras10_noise_draw_step);
  check_draw_steps(sfref::kKd_HeunChurn_karras10_noise_draw_step);
  check_draw_steps(sfref::kKd_EulerAncestral_karras20_noise_draw_step);
  check_draw_steps(sfref::kKd_HeunChurn_karras20_noise_draw_step);

  worst = std::max(worst, agree_with_kdiffusion("sample_euler, 10 steps", KEuler{}, SF_KD_REF(Euler, 10)));
  worst = std::max(worst, agree_with_kdiffusion("sample_euler, 20 steps", KEuler{}, SF_KD_REF(Euler, 20)));
  worst = std::max(worst, agree_with_kdiffusion("sample_euler_ancestral(eta=1), 10 steps",
                                                KEulerAncestral<RecordedNoise<T>>{1.0, 1.0, recorded_noise(10)},
                                                SF_KD_REF(EulerAncestral, 10)));
  worst = std::max(worst, agree_with_kdiffusion("sample_euler_ancestral(eta=1), 20 steps",
                                                KEulerAncestral<RecordedNoise<T>>{1.0, 1.0, recorded_noise(20)},
                                                SF_KD_REF(EulerAncestral, 20)));
  worst = std::max(worst, agree_with_kdiffusion("sample_heun, 10 steps", KHeun<>{}, SF_KD_REF(Heun, 10)));
  worst = std::max(worst, agree_with_kdiffusion("sample_heun, 20 steps", KHeun<>{}, SF_KD_REF(Heun, 20)));
  worst =
      std::max(worst, agree_with_kdiffusion("sample_heun(s_churn=40, s_tmin=0.05, s_tmax=50, s_noise=1.003), 10 steps",
                                            KHeun<RecordedNoise<T>>{40.0, 0.05, 50.0, 1.003, recorded_noise(10)},
                                            SF_KD_REF(HeunChurn, 10)));
  worst =
      std::max(worst, agree_with_kdiffusion("sample_heun(s_churn=40, s_tmin=0.05, s_tmax=50, s_noise=1.003), 20 steps",
                                            KHeun<RecordedNoise<T>>{40.0, 0.05, 50.0, 1.003, recorded_noise(20)},
                                            SF_KD_REF(HeunChurn, 20)));
  worst = std::max(worst, agree_with_kdiffusion("sample_dpm_2, 10 steps", KDPM2{}, SF_KD_REF(Dpm2, 10)));
  worst = std::max(worst, agree_with_kdiffusion("sample_dpm_2, 20 steps", KDPM2{}, SF_KD_REF(Dpm2, 20)));
  worst = std::max(worst, agree_with_kdiffusion("sample_lms(order=4), 10 steps", KLMS{4}, SF_KD_REF(Lms4, 10)));
  worst = std::max(worst, agree_with_kdiffusion("sample_lms(order=4), 20 steps", KLMS{4}, SF_KD_REF(Lms4, 20)));
  worst = std::max(worst, agree_with_kdiffusion("sample_dpmpp_2m, 10 steps", KDPMPP2M{}, SF_KD_REF(DpmPP2M, 10)));
  worst = std::max(worst, agree_with_kdiffusion("sample_dpmpp_2m, 20 steps", KDPMPP2M{}, SF_KD_REF(DpmPP2M, 20)));
#undef SF_KD_REF
  MESSAGE("largest deviation from k-diffusion over all 14 runs: ", worst);
}

TEST_CASE("k-diffusion order: each deterministic rule converges at its order to the exact Gaussian ODE solution") {
  // σ from 10 to an interior σ_end = 0.5 (the error is measured before any step to σ = 0) on
  // Karras' ρ = 7 grid, N = 8 … 64. The fitted slope includes the next error term h^{p+1}; the
  // measured values lie within 0.14 of p, so ±0.2 accepts them and still rejects a rule one order
  // off (a slope near p ± 1).
  const std::vector<int> steps{8, 16, 32, 64};
  CHECK(std::abs(measured_order("KEuler", KEuler{}, steps, 0.5, 10.0) - 1.0) < 0.2);
  CHECK(std::abs(measured_order("KHeun", KHeun<>{}, steps, 0.5, 10.0) - 2.0) < 0.2);
  CHECK(std::abs(measured_order("KDPM2", KDPM2{}, steps, 0.5, 10.0) - 2.0) < 0.2);
  CHECK(std::abs(measured_order("KDPMPP2M", KDPMPP2M{}, steps, 0.5, 10.0) - 2.0) < 0.2);

  // LMS (Adams–Bashforth in σ̃) of order 4: its first three steps run at order 1, 2, 3 (fewer
  // earlier points are known), and the first step's O(h²) local error does not shrink with the
  // rest, so a fresh run is asymptotically only second order on any fixed grid shape. Given the
  // exact earlier points in its SolverHistory (FromState at grid index 3, as a resumed run), every
  // step is fourth order. AB4's large error constant makes the asymptote slow to reach (3.4 over
  // 8 … 64), so N = 32 … 256: measured 3.9, within 0.25 of 4; order 3 or 5 would fail.
  const std::vector<int> fine{32, 64, 128, 256};
  CHECK(std::abs(measured_order("KLMS(4), exact history", KLMS{4}, fine, 0.5, 10.0, 3) - 4.0) < 0.25);
  // A fresh run (how k-diffusion runs it) from σ = 80 ≫ s: there x̃(σ) ∝ √(s² + σ²) is almost a
  // straight line (x̃'' ∝ s²/σ³), so the warm-up's low-order errors are tiny and the slope is 3.6
  // over N = 16 … 256 (3.9 between the last two); the warm-up term takes over only at larger N.
  // (Started at σ = 10 instead, the fresh run's slope already falls to 2.9 between 128 and 256.)
  const double fresh = measured_order("KLMS(4), fresh run", KLMS{4}, {16, 32, 64, 128, 256}, 0.2, 80.0);
  CHECK(fresh > 3.3);
  CHECK(fresh < 4.2);
  // order = 1 is KEuler exactly.
  const auto grid = karras(12, 0.5, 10.0);
  CHECK(ode_error(KLMS{1}, grid) == doctest::Approx(ode_error(KEuler{}, grid)).epsilon(1e-12));
}

namespace {
/// Closed-form moments of one coordinate after the stochastic rules with the exact Gaussian
/// denoiser D = μ + k(σ)(x̃ − μ), k = s²/(s² + σ²): each step is y' = A y + noise with y = x̃ − μ,
/// so mean' − μ = A (mean − μ) and var' = A² var + (added noise)². Written from the formulas of the
/// papers (k-diffusion's get_ancestral_step, EDM Alg. 2), not from the library's code.
double slope_k(double sigma) { return kS * kS / (kS * kS + sigma * sigma); }

sftest::Moments ancestral_moments(const std::vector<double>& sig, double eta) {
  sftest::Moments m{kMu, kS * kS + sig[0] * sig[0]};
  for (std::size_t i = 0; i + 1 < sig.size(); ++i) {
    const double a = sig[i], b = sig[i + 1], k = slope_k(a);
    const double up = std::min(b, eta * std::sqrt(b * b * (a * a - b * b) / (a * a)));
    const double down = std::sqrt(b * b - up * up);
    const double A = k + down / a * (1 - k);  // x̃_down = D + σ_down (x̃ − D)/σ
    m = {kMu + A * (m.mean - kMu), A * A * m.variance + up * up};
  }
  return m;
}

sftest::Moments churn_heun_moments(const std::vector<double>& sig, double churn, double tmin, double tmax) {
  sftest::Moments m{kMu, kS * kS + sig[0] * sig[0]};
  const double n = static_cast<double>(sig.size() - 1);
  for (std::size_t i = 0; i + 1 < sig.size(); ++i) {
    const double a = sig[i], b = sig[i + 1];
    const double g = tmin <= a && a <= tmax ? std::min(churn / n, std::sqrt(2.0) - 1) : 0.0;
    const double hat = a * (1 + g);
    m.variance += hat * hat - a * a;  // x̃̂ = x̃ + √(σ̂² − σ²) z
    const double kh = slope_k(hat), dt = b - hat;
    const double euler = 1 + dt * (1 - kh) / hat;  // y_e = euler · y, d = (1 − k̂) y/σ̂
    const double A = b == 0 ? kh : 1 + dt / 2 * ((1 - kh) / hat + (1 - slope_k(b)) / b * euler);
    m = {kMu + A * (m.mean - kMu), A * A * m.variance};
  }
  return m;
}

/// Samples the rule from x̃₀ ~ N(μ, s² + σ₀²), 32,000 draws; returns the sample moments.
template <class Rule>
sftest::Moments sampled(const Rule& rule, const std::vector<double>& sig, std::uint64_t seed) {
  sftest::GaussianData oracle{NoiseSchedule::linear(), kMu, kS};
  auto model = gaussian_model(oracle);
  Generator start_gen(seed);
  const T z = ops::randn_like(T(xt::zeros<double>({2000, 16})), start_gen);
  const T x0 = ops::add_scalar(ops::scale(std::sqrt(kS * kS + sig[0] * sig[0]), z), kMu);
  Generator gen(seed + 1);
  return sftest::moments(Sampler{SigmaSchedule{SigmaGrid(sig), rule}}.sample(model, FromState<T>{x0, 0}, gen));
}

/// |sample − expected| within 4 standard errors for mean and variance (n = 32,000 Gaussian draws:
/// s.e. √(v/n) and v √(2/(n − 1))).
void check_within_4_se(const std::string& what, sftest::Moments got, sftest::Moments want) {
  const double n = 32000;
  const double se_mean = std::sqrt(want.variance / n), se_var = want.variance * std::sqrt(2 / (n - 1));
  MESSAGE(what, ": sampled mean ", got.mean, " var ", got.variance, " | expected mean ", want.mean, " var ",
          want.variance, " | deviation ", (got.mean - want.mean) / se_mean, " and ",
          (got.variance - want.variance) / se_var, " s.e.");
  CHECK(std::abs(got.mean - want.mean) < 4 * se_mean);
  CHECK(std::abs(got.variance - want.variance) < 4 * se_var);
}
}  // namespace

TEST_CASE(
    "k-diffusion stochastic rules: ancestral Euler and Heun with churn sample the exact marginal N(μ, s² + σ_end²)") {
  const double sigma_end = 1.0, marginal = kS * kS + sigma_end * sigma_end;
  // (a) 10 steps: the sampled moments follow the closed-form recursion of the discrete rule (which
  // is not yet the marginal: its discretisation bias is many standard errors), so the amount of
  // noise each step adds is checked exactly.
  {
    const auto sig = karras(10, sigma_end, 80.0);
    check_within_4_se("KEulerAncestral η = 1, 10 steps vs its recursion", sampled(KEulerAncestral<>{}, sig, 11),
                      ancestral_moments(sig, 1.0));
    check_within_4_se("KEulerAncestral η = 0.5, 10 steps vs its recursion",
                      sampled(KEulerAncestral<>{0.5, 1.0}, sig, 13), ancestral_moments(sig, 0.5));
    check_within_4_se("KHeun s_churn = 40, 10 steps vs its recursion", sampled(KHeun<>{40.0, 0.05, 50.0}, sig, 17),
                      churn_heun_moments(sig, 40.0, 0.05, 50.0));
  }
  // (a') η and s_noise beyond k-diffusion's recorded η = 1: with recorded noise z_i every step is
  // exactly x̃' − μ = A (x̃ − μ) + s_noise σ_up z_i (A and σ_up as in ancestral_moments), checked
  // elementwise along the whole run (the moments above are too coarse to tell η = 0.5 from 0.25).
  {
    const auto sig = karras(10, sigma_end, 80.0);
    RecordedNoise<T> noise;
    for (std::size_t k = 0; k < 10; ++k)
      noise.noise.push_back(row(std::vector<double>(sfref::kNoise20[k], sfref::kNoise20[k] + 6)));
    for (const double eta : {0.0, 0.5, 1.0}) {
      const double s_noise = 0.9;
      sftest::GaussianData oracle{NoiseSchedule::linear(), kMu, kS};
      auto model = gaussian_model(oracle);
      std::vector<double> x(6);
      for (std::size_t j = 0; j < 6; ++j) x[j] = kMu + std::sqrt(kS * kS + sig[0] * sig[0]) * kZ6[j];
      const Trace t =
          run(SigmaSchedule{SigmaGrid(sig), KEulerAncestral<RecordedNoise<T>>{eta, s_noise, noise}}, model, row(x));
      double worst = 0;
      for (std::size_t i = 0; i + 1 < sig.size(); ++i) {
        const double a = sig[i], b = sig[i + 1], k = slope_k(a);
        const double up = std::min(b, eta * std::sqrt(b * b * (a * a - b * b) / (a * a)));
        const double A = k + std::sqrt(b * b - up * up) / a * (1 - k);
        for (std::size_t j = 0; j < 6; ++j) {
          x[j] = kMu + A * (x[j] - kMu) + s_noise * up * sfref::kNoise20[i][j];
          worst = std::max(worst, std::abs(t.x[i][j] - x[j]) / std::max(1.0, std::abs(x[j])));
        }
      }
      MESSAGE("KEulerAncestral η = ", eta, ", s_noise = 0.9 with recorded noise: max deviation from the scalar step ",
              worst);
      CHECK(worst < 1e-12);
    }
  }
  // (b) 400 steps: the recursion's bias from the marginal is below half a standard error of the
  // variance (asserted), so the samples must match N(μ, s² + σ_end²) itself within 4 s.e.
  {
    const auto sig = karras(400, sigma_end, 80.0);
    const double se_var = marginal * std::sqrt(2 / (32000.0 - 1));
    const auto anc = ancestral_moments(sig, 1.0), heun = churn_heun_moments(sig, 40.0, 0.05, 50.0);
    MESSAGE("400 steps: recursion bias of the variance, ancestral ", (anc.variance - marginal) / se_var,
            " s.e., Heun with churn ", (heun.variance - marginal) / se_var, " s.e.");
    CHECK(std::abs(anc.variance - marginal) < 0.5 * se_var);
    CHECK(std::abs(heun.variance - marginal) < 0.5 * se_var);
    check_within_4_se("KEulerAncestral η = 1, 400 steps vs N(μ, s² + σ_end²)", sampled(KEulerAncestral<>{}, sig, 19),
                      {kMu, marginal});
    check_within_4_se("KHeun s_churn = 40, 400 steps vs N(μ, s² + σ_end²)", sampled(KHeun<>{40.0, 0.05, 50.0}, sig, 23),
                      {kMu, marginal});
  }
}

namespace {
/// Runs `rule` on `path` (a flow or diffusion schedule) from x₀ at grid index `start`, and on the
/// SigmaSchedule of the same points' VE σ̃ = σ/α from x̃₀ = x₀/α₀; returns the largest deviation of
/// x_i from α_i x̃_i over all steps, relative to each step's largest |x|.
template <class Rule, class PathSchedule>
double path_vs_ve(const Rule& rule, const PathSchedule& path, std::size_t start) {
  sftest::GaussianData oracle{NoiseSchedule::linear(), kMu, kS};
  auto model = gaussian_model(oracle);
  std::vector<double> sig;
  for (std::size_t i = start; i < path.size(); ++i) sig.push_back(path.level(i).ve_sigma());
  const NoiseLevel l0 = path.level(start);
  std::vector<double> x0(6), xt0(6);
  for (std::size_t j = 0; j < 6; ++j) {
    x0[j] = l0.alpha * kMu + std::sqrt(l0.alpha * l0.alpha * kS * kS + l0.sigma * l0.sigma) * kZ6[j];
    xt0[j] = x0[j] / l0.alpha;
  }
  const Trace on_path = run(path, model, row(x0), start);
  const Trace on_ve = run(SigmaSchedule{SigmaGrid(sig), rule}, model, row(xt0));
  REQUIRE(on_path.x.size() == on_ve.x.size());
  CHECK(on_path.calls == on_ve.calls);
  double worst = 0;
  for (std::size_t k = 0; k < on_path.x.size(); ++k) {
    const double alpha = path.level(start + k + 1).alpha;
    double scale = 0, dev = 0;
    for (std::size_t j = 0; j < 6; ++j) {
      scale = std::max(scale, std::abs(on_path.x[k][j]));
      dev = std::max(dev, std::abs(on_path.x[k][j] - alpha * on_ve.x[k][j]));
    }
    worst = std::max(worst, dev / scale);
  }
  return worst;
}
}  // namespace

TEST_CASE(
    "k-diffusion on other paths: on a FlowSchedule and a DiffusionSchedule each rule is the same method on the "
    "equivalent VE path") {
  // x = α x̃ at every step, up to rounding: the flow and diffusion runs evaluate the same data
  // estimates at the same σ̃ (GaussianData is E[data | x] on each path), only scaled by α. The
  // tolerance 1e-12 covers the different rounding of x/α·α and of the levels (λ ↔ t round trips).
  const FlowGrid flow({0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.97});
  const auto noise = [](std::size_t n) {
    RecordedNoise<T> r;
    for (std::size_t k = 0; k < n; ++k)
      r.noise.push_back(row(std::vector<double>(sfref::kNoise20[k], sfref::kNoise20[k] + 6)));
    return r;
  };
  const auto table = NoiseSchedule::linear();
  const DiffusionGrid diff = DiffusionGrid::spaced(12);  // 996 … 0, then −1 (clean data)
  double worst = 0;
  const auto both = [&](const std::string& name, const auto& rule) {
    const double f = path_vs_ve(rule, FlowSchedule{flow, rule}, 0);
    const double d = path_vs_ve(rule, DiffusionSchedule{table, diff, rule}, 0);
    MESSAGE(name, ": flow vs VE ", f, ", diffusion vs VE ", d);
    CHECK(f < 1e-12);
    CHECK(d < 1e-12);
    worst = std::max({worst, f, d});
  };
  both("KEuler", KEuler{});
  both("KEulerAncestral", KEulerAncestral<RecordedNoise<T>>{1.0, 1.0, noise(20)});
  both("KHeun", KHeun<>{});
  both("KLMS(4)", KLMS{4});
  both("KDPMPP2M", KDPMPP2M{});
  // Between grid points: flow only (a DiffusionSchedule's model takes integer timesteps).
  const double dpm2 = path_vs_ve(KDPM2{}, FlowSchedule{flow, KDPM2{}}, 0);
  const KHeun<RecordedNoise<T>> churn{40.0, 0.0, 100.0, 1.0, noise(20)};
  const double heun_churn = path_vs_ve(churn, FlowSchedule{flow, churn}, 0);
  MESSAGE("KDPM2: flow vs VE ", dpm2, "; KHeun with churn: flow vs VE ", heun_churn);
  CHECK(dpm2 < 1e-12);
  CHECK(heun_churn < 1e-12);

  // KEuler is DDIM (module comment): on the diffusion path it equals DDIMStep (η = 0).
  sftest::GaussianData oracle{table, kMu, kS};
  auto model = gaussian_model(oracle);
  Generator g1(3), g2(3);
  const T proto = xt::zeros<double>({4, 1, 2, 2});
  const T a = Sampler{DiffusionSchedule{table, diff, KEuler{}}}.sample(model, PureNoise<T>{proto}, g1);
  const T b = Sampler{DiffusionSchedule{table, diff, DDIMStep{}}}.sample(model, PureNoise<T>{proto}, g2);
  CHECK(sftest::max_abs_diff(a, b) < 1e-12);
}

TEST_CASE(
    "k-diffusion at the ends of a path: a step from α = 0 is the first-order limit, a step to σ = 0 gives x̂; no NaN") {
  sftest::GaussianData oracle{NoiseSchedule::linear(), kMu, kS};
  auto model = gaussian_model(oracle);
  RecordedNoise<T> noise;
  for (std::size_t k = 0; k < 20; ++k)
    noise.noise.push_back(row(std::vector<double>(sfref::kNoise20[k], sfref::kNoise20[k] + 6)));
  const T x0 = row(kZ6);
  const auto finite = [](const Trace& t) {
    for (const auto& r : t.x)
      for (double v : r)
        if (!std::isfinite(v)) return false;
    return true;
  };
  // Flow t = 0 … 1: σ̃ = ∞ at t = 0, where x̂ = μ; the first step lands on x₁ = σ₁ x₀ + α₁ μ
  // (= (σ'/σ) x + (α' − α σ'/σ) x̂ with α = 0, σ = 1), and the last (σ = 0) on x̂ at t_{N−1}.
  const FlowGrid flow = FlowGrid::uniform(10);
  const auto check_flow = [&](const std::string& name, const auto& rule, bool deterministic) {
    const Trace t = run(FlowSchedule{flow, rule}, model, x0);
    CAPTURE(name);
    CHECK(finite(t));
    const NoiseLevel l1 = flow::level(flow[1].value);
    for (std::size_t j = 0; j < 6; ++j) {
      // ancestral, η = 1: σ_up = σ̃₁, σ_down = 0, so x₁ = α₁ μ + σ₁ z₀
      const double want =
          deterministic ? l1.sigma * kZ6[j] + l1.alpha * kMu : l1.alpha * kMu + l1.sigma * sfref::kNoise20[0][j];
      CHECK(t.x[0][j] == doctest::Approx(want).epsilon(1e-13));
    }
    // The last step ends at σ = 0 on the data estimate at t_{N−1}, except LMS (a multistep integral to 0).
    if (name != "KLMS")
      for (std::size_t j = 0; j < 6; ++j) CHECK(t.final_x[j] == doctest::Approx(t.data.back()[j]).epsilon(1e-13));
  };
  check_flow("KEuler", KEuler{}, true);
  check_flow("KEulerAncestral", KEulerAncestral<RecordedNoise<T>>{1.0, 1.0, noise}, false);
  check_flow("KHeun", KHeun<>{}, true);
  check_flow("KHeun with churn", KHeun<RecordedNoise<T>>{40.0, 0.0, 100.0, 1.0, noise}, true);
  check_flow("KDPM2", KDPM2{}, true);
  check_flow("KLMS", KLMS{4}, true);
  check_flow("KDPMPP2M", KDPMPP2M{}, true);

  // Diffusion: a zero-terminal-SNR table (ᾱ = 0 at its last entry, Lin et al. 2024) walked from
  // t = 999 (pure noise) down to −1 (clean data).
  std::vector<double> bars;
  const auto linear = NoiseSchedule::linear();
  for (int t = 0; t < linear.size(); ++t) bars.push_back(linear.alpha_bar(t));
  bars.back() = 0.0;
  const NoiseSchedule zsnr(bars);
  const DiffusionGrid grid = DiffusionGrid::spaced(10, 1000, DiffusionGrid::Spacing::trailing);
  REQUIRE(grid[0].value == 999);
  sftest::GaussianData zoracle{zsnr, kMu, kS};
  auto zmodel = gaussian_model(zoracle);
  const auto check_diffusion = [&](const std::string& name, const auto& rule) {
    const Trace t = run(DiffusionSchedule{zsnr, grid, rule}, zmodel, x0);
    CAPTURE(name);
    CHECK(finite(t));
    const NoiseLevel l1 = diffusion::level(zsnr.alpha_bar(grid[1].value));
    if (name != "KEulerAncestral")
      for (std::size_t j = 0; j < 6; ++j)
        CHECK(t.x[0][j] == doctest::Approx(l1.sigma * kZ6[j] + l1.alpha * kMu).epsilon(1e-13));
    if (name != "KLMS")
      for (std::size_t j = 0; j < 6; ++j) CHECK(t.final_x[j] == doctest::Approx(t.data.back()[j]).epsilon(1e-13));
  };
  check_diffusion("KEuler", KEuler{});
  check_diffusion("KEulerAncestral", KEulerAncestral<RecordedNoise<T>>{1.0, 1.0, noise});
  check_diffusion("KHeun", KHeun<>{});
  check_diffusion("KLMS", KLMS{4});
  check_diffusion("KDPMPP2M", KDPMPP2M{});
}

TEST_CASE("k-diffusion options: bad values are rejected by name") {
  sftest::GaussianData oracle{NoiseSchedule::linear(), kMu, kS};
  auto model = gaussian_model(oracle);
  const SigmaGrid grid({10.0, 1.0, 0.0});
  const auto sample = [&](const auto& schedule) {
    Generator gen(1);
    return Sampler{schedule}.sample(model, FromState<T>{row(kZ6), 0}, gen);
  };
  using doctest::Contains;
  CHECK_THROWS_WITH_AS(sample(SigmaSchedule{grid, KEulerAncestral<>{-1.0}}), Contains("k_euler_ancestral.eta = -1"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(sample(SigmaSchedule{grid, KEulerAncestral<>{1.0, std::nan("")}}),
                       Contains("k_euler_ancestral.s_noise = nan"), invalid_option);
  CHECK_THROWS_WITH_AS(sample(SigmaSchedule{grid, KHeun<>{-2.0}}), Contains("k_heun.s_churn = -2"), invalid_option);
  CHECK_THROWS_WITH_AS(sample(SigmaSchedule{grid, KHeun<>{1.0, 5.0, 1.0}}),
                       Contains("k_heun.s_tmax = 1: must be at least s_tmin"), invalid_option);
  CHECK_THROWS_WITH_AS(sample(SigmaSchedule{grid, KLMS{0}}), Contains("k_lms.order = 0"), invalid_option);
  // Churn asks the model between grid points: refused on a DiffusionSchedule, by name.
  const auto table = NoiseSchedule::linear();
  CHECK_THROWS_WITH_AS(sample(DiffusionSchedule{table, DiffusionGrid::spaced(5), KHeun<>{1.0}}),
                       Contains("k_heun.s_churn = 1: churn asks the model"), invalid_option);
  CHECK_NOTHROW(sample(DiffusionSchedule{table, DiffusionGrid::spaced(5), KHeun<>{}}));
}

TEST_CASE_TEMPLATE(
    "k-diffusion on every backend: each rule's final sample matches k-diffusion's within the backend's precision", B,
    SCOREFLOW_BACKENDS) {
  // float backends round each step at ~1e-7 of its largest term; 1e-5 relative leaves room for the
  // 10 steps (the double backend is held to 1e-10 in the agreement test above).
  const double tolerance = std::is_same_v<B, xt::xarray<double>> ? 1e-10 : 1e-5;
  sftest::GaussianData oracle{NoiseSchedule::linear(), kMu, kS};
  auto model = denoiser([&oracle](const B& x, Sigma time, NoCondition c) { return oracle(x, time, c); },
                        Parameterization::sample);
  const std::vector<double> sigmas(sfref::kKarras10_sigmas, sfref::kKarras10_sigmas + 11);
  std::vector<double> x0(6);
  for (std::size_t j = 0; j < 6; ++j) x0[j] = sigmas[0] * sfref::kZ[j];
  RecordedNoise<B> noise;
  for (std::size_t k = 0; k < 10; ++k)
    noise.noise.push_back(sftest::make<B>(std::vector<double>(sfref::kNoise20[k], sfref::kNoise20[k] + 6), {1, 6}));
  const auto check = [&](const std::string& name, const auto& rule, const double(&reference)[10][6]) {
    Generator gen(1);
    const auto out = ops::to_vector(Sampler{SigmaSchedule{SigmaGrid(sigmas), rule}}.sample(
        model, FromState<B>{sftest::make<B>(x0, {1, 6}), 0}, gen));
    double scale = 0, dev = 0;
    for (std::size_t j = 0; j < 6; ++j) {
      scale = std::max(scale, std::abs(reference[9][j]));
      dev = std::max(dev, std::abs(out[j] - reference[9][j]));
    }
    CAPTURE(name);
    CHECK(dev / scale < tolerance);
  };
  check("KEuler", KEuler{}, sfref::kKd_Euler_karras10_steps);
  check("KEulerAncestral", KEulerAncestral<RecordedNoise<B>>{1.0, 1.0, noise},
        sfref::kKd_EulerAncestral_karras10_steps);
  check("KHeun", KHeun<>{}, sfref::kKd_Heun_karras10_steps);
  check("KHeun with churn", KHeun<RecordedNoise<B>>{40.0, 0.05, 50.0, 1.003, noise},
        sfref::kKd_HeunChurn_karras10_steps);
  check("KDPM2", KDPM2{}, sfref::kKd_Dpm2_karras10_steps);
  check("KLMS", KLMS{4}, sfref::kKd_Lms4_karras10_steps);
  check("KDPMPP2M", KDPMPP2M{}, sfref::kKd_DpmPP2M_karras10_steps);
}
}  // namespace test_k_diffusion
