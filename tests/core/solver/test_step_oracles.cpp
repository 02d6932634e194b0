// The diffusion step rules against exact oracles: with the exact Gaussian denoiser every DDPM and
// DDIM step is affine in x_t plus independent Gaussian noise, so the mean and variance of x after
// each step follow in closed form (sftest::exact, tests/oracles.hpp: Ho et al. 2020 eq. 7 for
// DDPM, Song et al. 2021 eq. 12/16 for DDIM). The sampled moments must equal those of the
// recursion on the very grid the sampler walks, whatever the grid's discretisation error; where
// the closed form is itself the claim (thresholding, learned variance at v = ±1) the samples are
// compared elementwise.
//
// Tolerances: x is Gaussian with the closed-form moments (m, v), so over n i.i.d. draws the sample
// mean has standard error √(v/n) and the sample variance v√(2/(n − 1)); we allow 4 of them.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_step_oracles {

using namespace scoreflow;
using sftest::make;

namespace {
constexpr double kMu = 0.3, kS = 0.5;
constexpr std::int64_t kN = 2000;  // samples of 1×4×4: 32,000 i.i.d. draws per run

template <class T>
T prototype() { return sftest::zeros<T>({kN, 1, 4, 4}); }

/// Runs the per-step recursion over a diffusion grid; `step` maps (moments, ā, ā', t) → moments.
template <class Step>
sftest::Moments along_grid(const NoiseSchedule& table, const DiffusionGrid& grid, Step&& step) {
  sftest::Moments m{0.0, 1.0};  // PureNoise: x_T ~ N(0, 1)
  for (std::size_t i = 0; i + 1 < grid.size(); ++i)
    m = step(m, table.alpha_bar(grid[i].value), table.alpha_bar(grid[i + 1].value), grid[i].value);
  return m;
}

enum class Var { small, large, geometric };

/// DDPM on `grid` with σ² = β̃ (fixed_small), β (fixed_large) or √(β β̃) (learned_range, v = 0:
/// exp(½ log β + ½ log β̃), Nichol & Dhariwal 2021 eq. 15). No noise on a step from t = 0 (the
/// library follows diffusers there; the strided grid has no such step, spaced grids end 0 → −1).
sftest::Moments ddpm_moments(const NoiseSchedule& table, const DiffusionGrid& grid, Var var, double mu = kMu,
                             double s = kS) {
  return along_grid(table, grid, [&](sftest::Moments m, double a, double ap, int t) {
    namespace ex = sftest::exact;
    const double small = ex::beta_tilde(a, ap), large = ex::beta(a, ap);
    const double sigma2 = t <= 0 ? 0.0 : var == Var::small ? small : var == Var::large ? large : std::sqrt(small * large);
    return ex::ddpm_step(m, a, ap, sigma2, mu, s);
  });
}

struct Measured {
  sftest::Moments sample, exact;
  double n;
};

/// Sampled moments of all of x against the closed form, within 4 standard errors.
template <class T>
Measured check_moments(const T& x, sftest::Moments exact) {
  const auto m = sftest::moments(x);
  const double n = static_cast<double>(ops::to_vector(x).size());
  CHECK(std::abs(m.mean - exact.mean) < 4 * std::sqrt(exact.variance / n));
  CHECK(std::abs(m.variance - exact.variance) < 4 * exact.variance * std::sqrt(2 / (n - 1)));
  return {m, exact, n};
}

void report(const std::string& what, const Measured& r) {
  MESSAGE(what, ": sampled mean ", r.sample.mean, " var ", r.sample.variance, " | closed form mean ", r.exact.mean,
          " var ", r.exact.variance, " (std ", std::sqrt(r.exact.variance), "); 1 s.e. of var ",
          r.exact.variance * std::sqrt(2 / (r.n - 1)));
}
}  // namespace

TEST_CASE_TEMPLATE("step oracle: the seed's strided DDPM loop (fixed_small, fixed_large) has the closed-form moments, not N(μ, s²)",
                   T, SCOREFLOW_BACKENDS) {
  const auto grid = DiffusionGrid::strided();  // 990, 960, …, 0: 34 points, 33 steps
  REQUIRE(grid.size() == 34);
  for (const auto& [name, table] : {std::pair{std::string("cosine"), NoiseSchedule::cosine()}, std::pair{std::string("linear"), NoiseSchedule::linear()}}) {
    CAPTURE(name);
    auto model = denoiser(sftest::GaussianDiffusion{table, kMu, kS}, Parameterization::noise);
    for (auto [variance, var] : {std::pair{StepVariance::fixed_small, Var::small}, std::pair{StepVariance::fixed_large, Var::large}}) {
      CAPTURE(static_cast<int>(variance));
      Generator gen(11);
      const T x = Sampler{DiffusionSchedule<DDPMStep>{table, grid, DDPMStep{variance}}}.sample(
          model, PureNoise<T>{prototype<T>()}, gen);
      const auto exact = ddpm_moments(table, grid, var);
      report(var == Var::small ? "strided DDPM fixed_small" : "strided DDPM fixed_large", check_moments(x, exact));
      // The loop ends at t = 0, where the data's marginal is N(√ā₀ μ, ā₀ s² + 1 − ā₀) ≈ N(μ, s²):
      // the final mean is that (to 1e-3), but 33 strided steps leave the spread off s by several
      // percent: fixed_small under-disperses (β̃ ignores the uncertainty of x̂₀; the README's
      // quickstart shows std 0.45 for s = 0.5), fixed_large over-disperses.
      CHECK(exact.mean == doctest::Approx(kMu).epsilon(1e-3));
      if (var == Var::small) CHECK(std::sqrt(exact.variance) < 0.93 * kS);
      else CHECK(std::sqrt(exact.variance) > 1.02 * kS);
    }
  }
  // The README's quickstart number (cosine, fixed_small, s = 0.5: "std 0.454"), from the recursion.
  // The quickstart's component mean (2, 1) does not matter: the variance recursion is free of μ.
  CHECK(std::sqrt(ddpm_moments(NoiseSchedule::cosine(), grid, Var::small, 2.0).variance) ==
        doctest::Approx(0.4548).epsilon(2e-4));
}

TEST_CASE_TEMPLATE("step oracle: DDIM with η = 0.5 on a spaced grid has the closed-form moments (Song et al. eq. 12)", T,
                   SCOREFLOW_BACKENDS) {
  const double eta = 0.5;
  const auto grid = DiffusionGrid::spaced(20);  // 950, 900, …, 0, −1
  for (const auto& [name, table] : {std::pair{std::string("cosine"), NoiseSchedule::cosine()}, std::pair{std::string("linear"), NoiseSchedule::linear()}}) {
    CAPTURE(name);
    auto model = denoiser(sftest::GaussianDiffusion{table, kMu, kS}, Parameterization::noise);
    Generator gen(12);
    const T x = Sampler{DiffusionSchedule<DDIMStep>{table, grid, DDIMStep{eta}}}.sample(model, PureNoise<T>{prototype<T>()}, gen);
    const auto exact = along_grid(table, grid, [&](sftest::Moments m, double a, double ap, int) {
      return sftest::exact::ddim_step(m, a, ap, eta, kMu, kS);
    });
    report("DDIM eta 0.5, 20 steps", check_moments(x, exact));
    // 20 steps: the closed form is visibly not N(μ, s²) (variance 15-20% low), so the check above
    // tells the recursion from the data distribution.
    CHECK(exact.variance < 0.9 * kS * kS);
  }
}

namespace {
/// |x| quantile with linear interpolation between order statistics (torch.quantile's default).
double abs_quantile(std::vector<double> v, double q) {
  for (auto& e : v) e = std::abs(e);
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}
}  // namespace

TEST_CASE_TEMPLATE("step oracle: dynamic thresholding is exact where inactive and where active (Saharia et al. 2022, §2.3)", T,
                   SCOREFLOW_BACKENDS) {
  const auto table = NoiseSchedule::cosine();
  SUBCASE("inactive: every |x̂₀| ≤ 1, so thresholded DDIM equals plain DDIM for the same seed") {
    // Data N(0.3, 0.1²): E[x₀ | x_t] spreads by at most about s = 0.1 around 0.3, so |x̂₀| < 1 (7
    // standard deviations) for all 32,000 draws at every step; then s = clamp(quantile, 1, max) = 1
    // and clamp(x̂₀, −1, 1)/1 = x̂₀. η = 0.5 also checks that the threshold draws no noise (the
    // step noise stays aligned). (With data N(0.95, 0.1²) the clamp is active: the runs differ by 0.25.)
    auto model = denoiser(sftest::GaussianDiffusion{table, 0.3, 0.1}, Parameterization::noise);
    const auto grid = DiffusionGrid::spaced(20);
    Generator g1(13), g2(13);
    const T plain = Sampler{DiffusionSchedule<DDIMStep>{table, grid, DDIMStep{0.5}}}.sample(model, PureNoise<T>{prototype<T>()}, g1);
    const T thresholded = Sampler{DiffusionSchedule<DDIMStep>{table, grid, DDIMStep{0.5, DynamicThreshold(0.95, 1.5)}}}.sample(
        model, PureNoise<T>{prototype<T>()}, g2);
    const double diff = sftest::max_abs_diff(plain, thresholded);
    MESSAGE("inactive threshold: max |thresholded − plain| = ", diff);
    // ε̂ is re-derived from x̂₀ as (x_t − √ā x̂₀)/√(1 − ā), which amplifies float rounding of x̂₀ by
    // √(ā/(1 − ā)) near t = 0; measured 2e-7 (float) and 4e-16 (double), allowed 10× tolerance<T>.
    CHECK(diff <= 10 * sftest::tolerance<T>());
    // And the data really are far inside: the final x never leaves [−1, 1].
    const auto v = ops::to_vector(thresholded);
    CHECK(*std::max_element(v.begin(), v.end()) < 1.0);
    CHECK(*std::min_element(v.begin(), v.end()) > -1.0);
  }
  SUBCASE("active: a constant x̂₀ image is thresholded to clamp(c, −s, s)/s, s = clamp(quantile(|c|, r), 1, M)") {
    // Three samples of 4×4, magnitudes 0.1 + 0.06 j (j < 15) and 1.8, scaled 1, 1.5, 3 and placed
    // at pixel 5j mod 16 with alternating sign. With r = 0.9 (position 13.5 of 16 sorted) and
    // M = 2: sample 0 has quantile 0.91 → s = 1 (only 1.8 clamps to 1); sample 1 has 1.365 → s = q;
    // sample 2 has 2.73 → s = M = 2.
    const double ratio = 0.9, max_value = 2.0;
    const std::vector<double> scales = {1.0, 1.5, 3.0};
    std::vector<double> c(3 * 16);
    for (std::size_t b = 0; b < 3; ++b)
      for (std::size_t j = 0; j < 16; ++j) {
        const double magnitude = j < 15 ? 0.1 + 0.06 * static_cast<double>(j) : 1.8;
        c[b * 16 + (5 * j) % 16] = (j % 2 == 0 ? 1.0 : -1.0) * scales[b] * magnitude;
      }
    std::vector<double> thresholded(c.size());
    std::vector<double> bounds;
    for (std::size_t b = 0; b < 3; ++b) {
      const std::vector<double> sample(c.begin() + static_cast<std::ptrdiff_t>(b * 16),
                                       c.begin() + static_cast<std::ptrdiff_t>(b * 16 + 16));
      const double s = std::clamp(abs_quantile(sample, ratio), 1.0, max_value);
      bounds.push_back(s);
      for (std::size_t j = 0; j < 16; ++j) thresholded[b * 16 + j] = std::clamp(sample[j], -s, s) / s;
    }
    CHECK(bounds[0] == 1.0);
    CHECK(bounds[1] == doctest::Approx(1.365));
    CHECK(bounds[2] == max_value);

    const T target = make<T>(c, {3, 1, 4, 4});
    auto model = denoiser([&](const T&, Timestep, NoCondition) { return target; }, Parameterization::sample);
    std::vector<double> start(c.size());
    Generator noise(14);
    for (auto& v : start) v = noise.normal();
    const T x_start = make<T>(start, {3, 1, 4, 4});
    const auto grid = DiffusionGrid::strided();  // ends at t = 0, so the map below is not just x = x̂₀
    const DynamicThreshold threshold(ratio, max_value);

    // DDIM η = 0 with a constant x̂₀ = c': ε̂_k = (x_k − √ā_k c')/√(1 − ā_k) and
    // x_{k+1} = √ā_{k+1} c' + √(1 − ā_{k+1}) ε̂_k, so ε̂ never changes and
    //   x_final = √ā_N c' + √(1 − ā_N) (x_start − √ā_0 c')/√(1 − ā_0)   (exact, any grid).
    Generator g1(15);
    const T ddim = Sampler{DiffusionSchedule<DDIMStep>{table, grid, DDIMStep{0.0, threshold}}}.sample(
        model, FromState<T>{x_start, 0}, g1);
    const double a0 = table.alpha_bar(grid[0].value), aN = table.alpha_bar(grid[grid.size() - 1].value);
    std::vector<double> expected(c.size());
    for (std::size_t i = 0; i < c.size(); ++i)
      expected[i] = std::sqrt(aN) * thresholded[i] + std::sqrt(1 - aN) * (start[i] - std::sqrt(a0) * thresholded[i]) / std::sqrt(1 - a0);
    CHECK(sftest::max_abs_diff(ddim, make<T>(expected, {3, 1, 4, 4})) <= 10 * sftest::tolerance<T>());
    // Without the threshold the same map holds with c itself (so the threshold is what moved x).
    Generator g2(15);
    const T raw = Sampler{DiffusionSchedule<DDIMStep>{table, grid, DDIMStep{0.0}}}.sample(model, FromState<T>{x_start, 0}, g2);
    std::vector<double> expected_raw(c.size());
    for (std::size_t i = 0; i < c.size(); ++i)
      expected_raw[i] = std::sqrt(aN) * c[i] + std::sqrt(1 - aN) * (start[i] - std::sqrt(a0) * c[i]) / std::sqrt(1 - a0);
    CHECK(sftest::max_abs_diff(raw, make<T>(expected_raw, {3, 1, 4, 4})) <= 10 * sftest::tolerance<T>());
    CHECK(sftest::max_abs_diff(raw, ddim) > 0.5);

    // DDPM (variance none) thresholds x̂₀ alike: x' = c_x0 c' + c_xt x (Ho et al. eq. 7 mean), per step.
    Generator g3(16);
    const T ddpm = Sampler{DiffusionSchedule<DDPMStep>{table, grid, DDPMStep{StepVariance::none, threshold}}}.sample(
        model, FromState<T>{x_start, 0}, g3);
    std::vector<double> x = start;
    for (std::size_t k = 0; k + 1 < grid.size(); ++k) {
      const double a = table.alpha_bar(grid[k].value), ap = table.alpha_bar(grid[k + 1].value);
      const double c_x0 = std::sqrt(ap) * (1 - a / ap) / (1 - a), c_xt = std::sqrt(a / ap) * (1 - ap) / (1 - a);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] = c_x0 * thresholded[i] + c_xt * x[i];
    }
    CHECK(sftest::max_abs_diff(ddpm, make<T>(x, {3, 1, 4, 4})) <= 10 * sftest::tolerance<T>());
  }
}

namespace {
/// The exact Gaussian denoiser's ε̂ plus a learned-range channel block holding v everywhere
/// ([B, 2C, H, W]: per sample, the C prediction channels, then the C variance channels).
template <class T>
struct WithVariance {
  sftest::GaussianDiffusion oracle;
  double v;
  T operator()(const T& x, Timestep t, NoCondition) const {
    const auto eps = ops::to_vector(oracle(x, t, NoCondition{}));
    const auto shape = ops::shape(x);
    const std::size_t n = static_cast<std::size_t>(shape[0]), per = eps.size() / n;
    std::vector<double> out;
    out.reserve(2 * eps.size());
    for (std::size_t b = 0; b < n; ++b) {
      out.insert(out.end(), eps.begin() + static_cast<std::ptrdiff_t>(b * per), eps.begin() + static_cast<std::ptrdiff_t>(b * per + per));
      out.insert(out.end(), per, v);
    }
    return ops::from_vector(out, {shape[0], 2 * shape[1], shape[2], shape[3]}, x);
  }
};
}  // namespace

TEST_CASE_TEMPLATE("step oracle: learned-range variance is β̃ at v = −1, β at v = +1, √(β β̃) at v = 0 (Nichol & Dhariwal eq. 15)", T,
                   SCOREFLOW_BACKENDS) {
  const auto table = NoiseSchedule::cosine();
  const auto grid = DiffusionGrid::strided();
  const T proto = sftest::zeros<T>({kN / 2, 3, 4, 4});  // 3 channels: the variance half must be matched per channel
  const sftest::GaussianDiffusion oracle{table, kMu, kS};
  auto run = [&](StepVariance variance, std::optional<double> v) {
    Generator gen(17);
    const DiffusionSchedule<DDPMStep> schedule{table, grid, DDPMStep{variance}};
    if (!v) {
      auto model = denoiser(oracle, Parameterization::noise);
      return Sampler{schedule}.sample(model, PureNoise<T>{proto}, gen);
    }
    auto model = denoiser(WithVariance<T>{oracle, *v}, Parameterization::noise, VarianceOutput::learned_range);
    return Sampler{schedule}.sample(model, PureNoise<T>{proto}, gen);
  };
  // σ = exp(½ (log β̃ + (v + 1)/2 (log β − log β̃))): the endpoints are the fixed variances exactly,
  // drawn from the same noise stream, so the samples agree elementwise (float rounding of exp/log).
  const T small = run(StepVariance::fixed_small, std::nullopt), large = run(StepVariance::fixed_large, std::nullopt);
  const double d_small = sftest::max_abs_diff(run(StepVariance::learned_range, -1.0), small);
  const double d_large = sftest::max_abs_diff(run(StepVariance::learned_range, 1.0), large);
  MESSAGE("learned_range v = -1 vs fixed_small: ", d_small, "; v = +1 vs fixed_large: ", d_large);
  CHECK(d_small <= 10 * sftest::tolerance<T>());
  CHECK(d_large <= 10 * sftest::tolerance<T>());
  // v = 0: the geometric mean √(β β̃) per step, through the closed-form recursion.
  const T mid = run(StepVariance::learned_range, 0.0);
  const auto exact = ddpm_moments(table, grid, Var::geometric);
  report("learned_range v = 0", check_moments(mid, exact));
  // It lies strictly between the two fixed variances' closed forms, far enough from both
  // (≥ 10 standard errors) that the check above tells them apart.
  const double se = exact.variance * std::sqrt(2.0 / (static_cast<double>(ops::to_vector(mid).size()) - 1));
  CHECK(exact.variance > ddpm_moments(table, grid, Var::small).variance + 10 * se);
  CHECK(exact.variance < ddpm_moments(table, grid, Var::large).variance - 10 * se);
}
}  // namespace test_step_oracles
