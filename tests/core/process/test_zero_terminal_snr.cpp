// Zero terminal SNR (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are
// Flawed"): the rescaled table (Alg. 1) against diffusers' rescale_zero_terminal_snr in float64
// (reference/zsnr_linear1000.inc), the table's ᾱ = 0 end accepted and nothing else, and sampling
// from that end: a v- or x₀-predicting model gives finite samples with the exact moments of the
// step recursion; an ε-predicting model is refused by name (§3.2).
//
// Moment tolerances as in tests/core/solver/test_step_oracles.cpp: 4 standard errors of the
// sample mean √(v/n) and of the sample variance v√(2/(n − 1)).
#include <cmath>
#include <string>
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"
#include "reference/zsnr_linear1000.inc"

namespace test_zero_terminal_snr {

using namespace scoreflow;

namespace {
constexpr double kMu = 0.3, kS = 0.5;
constexpr std::int64_t kN = 2000;  // 2000 samples of 1×4×4: 32,000 draws

/// Data N(μ, s² I) answered as a v-prediction: from the exact x̂₀ of sftest::GaussianData,
/// ε̂ = (x − α x̂₀)/σ and v = α ε̂ − σ x̂₀ (Salimans & Ho 2022, §4), α = √ᾱ, σ = √(1 − ᾱ).
/// At ᾱ = 0: x̂₀ = μ (zero SNR: the posterior mean is the data mean), ε̂ = x, v = −μ.
struct GaussianVelocity {
  sftest::GaussianData data;

  template <class T>
  T operator()(const T& x, Timestep t, NoCondition) const {
    const NoiseLevel l = diffusion::level(data.table.alpha_bar(t.value));
    const T x0 = data.answer(x, l);
    const T eps = ops::axpby(1.0 / l.sigma, x, -l.alpha / l.sigma, x0);
    return ops::axpby(l.alpha, eps, -l.sigma, x0);
  }
};

template <class Step>
sftest::Moments along_grid(const NoiseSchedule& table, const DiffusionGrid& grid, Step&& step) {
  sftest::Moments m{0.0, 1.0};  // PureNoise: x_T ~ N(0, 1), the exact marginal at ᾱ = 0
  for (std::size_t i = 0; i + 1 < grid.size(); ++i)
    m = step(m, table.alpha_bar(grid[i].value), table.alpha_bar(grid[i + 1].value), grid[i].value);
  return m;
}

template <class T>
void check_moments(const std::string& what, const T& x, sftest::Moments exact) {
  const auto v = ops::to_vector(x);
  for (double e : v) REQUIRE(std::isfinite(e));
  const auto m = sftest::moments(x);
  const double n = static_cast<double>(v.size());
  MESSAGE(what, ": sampled mean ", m.mean, " var ", m.variance, " | recursion mean ", exact.mean, " var ", exact.variance,
          " | data mean ", kMu, " var ", kS * kS);
  CHECK(std::abs(m.mean - exact.mean) < 4 * std::sqrt(exact.variance / n));
  CHECK(std::abs(m.variance - exact.variance) < 4 * exact.variance * std::sqrt(2 / (n - 1)));
}
}  // namespace

TEST_CASE("rescale_zero_terminal_snr equals diffusers' (Lin et al. 2024, Alg. 1) on the linear table") {
  const auto linear = NoiseSchedule::linear();
  const auto zsnr = linear.rescale_zero_terminal_snr();
  REQUIRE(zsnr.size() == 1000);
  double worst = 0;
  int exact = 0;
  for (int t = 0; t < 1000; ++t) {
    const double theirs = sfref_zsnr::kZsnrLinear1000_ac[t], ours = zsnr.alpha_bar(t);
    if (ours == theirs) ++exact;
    if (theirs > 0) worst = std::max(worst, std::abs(ours - theirs) / theirs);
  }
  MESSAGE("rescaled linear table vs diffusers: ", exact, " of 1000 entries bit-identical, max relative difference ", worst);
  // Same correctly rounded float64 operations in the same order (√, shift, scale, square, ratio,
  // 1 − ·, 1 − ·, running product), none of them contractible into an FMA: bit for bit.
  CHECK(exact == 1000);
  CHECK(worst == 0.0);
  CHECK(zsnr.alpha_bar(999) == 0.0);                       // zero terminal SNR, exactly
  CHECK(sfref_zsnr::kZsnrLinear1000_ac[999] == 0.0);
  CHECK(std::abs(zsnr.alpha_bar(0) / linear.alpha_bar(0) - 1) <= 4e-16);  // first kept (to the β round trip's ulps)
  // Alg. 1 itself, written here from the paper: √ᾱ' is affine in √ᾱ, through (√ᾱ_T, 0) and
  // (√ᾱ_0, √ᾱ_0). The β round trip costs a few ulps (measured 4.4e-16 relative at worst).
  const double r0 = std::sqrt(linear.alpha_bar(0)), rT = std::sqrt(linear.alpha_bar(999));
  double alg1 = 0, again = 0;
  for (int t = 0; t < 999; ++t) {
    const double expected = (std::sqrt(linear.alpha_bar(t)) - rT) * r0 / (r0 - rT);
    alg1 = std::max(alg1, std::abs(std::sqrt(zsnr.alpha_bar(t)) / expected - 1));
  }
  CHECK(alg1 <= 2e-15);
  // Already zero at the end: rescaling again changes nothing but those ulps.
  const auto twice = zsnr.rescale_zero_terminal_snr();
  for (int t = 0; t < 999; ++t) again = std::max(again, std::abs(twice.alpha_bar(t) / zsnr.alpha_bar(t) - 1));
  MESSAGE("Alg. 1 closed form vs the table: ", alg1, "; rescaled twice vs once: ", again, " (max relative)");
  CHECK(again <= 2e-15);
  CHECK(twice.alpha_bar(999) == 0.0);
  // The cosine table too ends at exactly 0 (its ᾱ_999 = 2.4e-9 is small, not zero).
  CHECK(NoiseSchedule::cosine().rescale_zero_terminal_snr().alpha_bar(999) == 0.0);
}

TEST_CASE("NoiseSchedule accepts ᾱ = 0 as its last entry only") {
  using doctest::Contains;
  CHECK_NOTHROW(NoiseSchedule({0.9, 0.5, 0.0}));
  CHECK(NoiseSchedule({0.9, 0.5, 0.0}).alpha_bar(2) == 0.0);
  CHECK_THROWS_WITH_AS(NoiseSchedule({0.9, 0.0, 0.0}), Contains("alphas_cumprod[1] = 0: only the last entry (t = 2) may be 0"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(NoiseSchedule({0.0, 0.0}), Contains("alphas_cumprod[0] = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(NoiseSchedule({0.9, -0.1}), Contains("alphas_cumprod[1] = -0.1: must lie in (0, 1]"), invalid_option);
  CHECK_THROWS_WITH_AS(NoiseSchedule({1.2, 0.0}), Contains("alphas_cumprod[0] = 1.2"), invalid_option);
  CHECK_THROWS_WITH_AS(NoiseSchedule({0.5, 0.0, 0.1}), Contains("alphas_cumprod[1] = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(NoiseSchedule({0.5, 0.6, 0.0}), Contains("must not exceed the previous entry"), invalid_option);
  CHECK_THROWS_AS(NoiseSchedule({0.5, std::nan("")}), invalid_option);
  SUBCASE("tables that cannot be rescaled say why") {
    CHECK_THROWS_WITH_AS(NoiseSchedule({0.5, 0.5}).rescale_zero_terminal_snr(), Contains("a constant table cannot be rescaled"),
                         invalid_option);
    CHECK_THROWS_WITH_AS(NoiseSchedule({0.9, 0.5, 0.5}).rescale_zero_terminal_snr(),
                         Contains("alphas_cumprod[1] = 0.5 equals the last entry"), invalid_option);
    CHECK_THROWS_WITH_AS(NoiseSchedule({0.9}).rescale_zero_terminal_snr(), Contains("alphas_cumprod.size() = 1"), invalid_option);
  }
}

TEST_CASE_TEMPLATE("at ᾱ = 0 an ε-prediction is refused by name; v and x₀ give x̂₀, and ε̂ = x_t", T, SCOREFLOW_BACKENDS) {
  const T x = sftest::make<T>({0.5, -1.0, 2.0, 0.25}, {1, 1, 2, 2});
  const T v = sftest::make<T>({0.1, 0.2, -0.3, 0.4}, {1, 1, 2, 2});
  using doctest::Contains;
  const Prediction<T> eps{v, Parameterization::noise};
  CHECK_THROWS_WITH_AS(diffusion::to_sample(eps, x, 0.0), Contains("a noise (ε) prediction at ᾱ = 0 determines no x̂₀"), invalid_option);
  CHECK_THROWS_WITH_AS(diffusion::to_sample(eps, x, 0.0), Contains("use a v- or x₀-predicting model (Lin et al. 2024 §3.2)"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(diffusion::sample_from_noise(x, v, 0.0), Contains("determines no x̂₀"), invalid_option);
  CHECK_THROWS_WITH_AS(diffusion::data_estimate(eps, x, diffusion::level(0.0)), Contains("determines no x̂₀"), invalid_option);
  // v = α ε − σ x₀ is −x₀ at α = 0; ε̂ = x_t from every kind.
  CHECK(sftest::max_abs_diff(diffusion::to_sample(Prediction<T>{v, Parameterization::velocity}, x, 0.0), ops::scale(-1.0, v)) == 0.0);
  CHECK(sftest::max_abs_diff(diffusion::to_sample(Prediction<T>{v, Parameterization::sample}, x, 0.0), v) == 0.0);
  CHECK(sftest::max_abs_diff(diffusion::to_noise(Prediction<T>{v, Parameterization::velocity}, x, 0.0), x) == 0.0);
  CHECK(sftest::max_abs_diff(diffusion::to_noise(Prediction<T>{v, Parameterization::sample}, x, 0.0), x) == 0.0);
  CHECK(sftest::max_abs_diff(diffusion::to_noise(eps, x, 0.0), v) == 0.0);
}

TEST_CASE_TEMPLATE("DDPM and DDIM steps from ᾱ = 0 are finite, and equal their closed forms", T, SCOREFLOW_BACKENDS) {
  const auto table = NoiseSchedule::linear().rescale_zero_terminal_snr();
  const GaussianVelocity oracle{sftest::GaussianData{table, kMu, kS}};
  const T x = sftest::make<T>({0.5, -1.0, 2.0, 0.25}, {1, 1, 2, 2});
  const auto predict = [&](const T& in, Timestep t) { return Prediction<T>{oracle(in, t, NoCondition{}), Parameterization::velocity}; };
  const DiffusionStepContext c{{999}, {899}, table.alpha_bar(999), table.alpha_bar(899)};
  REQUIRE(c.alpha_bar == 0.0);
  const double ap = c.alpha_bar_prev;
  // The step's own coefficients at ᾱ = 0: α = 0, β = 1, β̃ = 1 − ᾱ'.
  CHECK(c.alpha() == 0.0);
  CHECK(c.beta() == 1.0);
  CHECK(c.posterior_variance() == doctest::Approx(1.0 - ap).epsilon(1e-15));
  // x̂₀ = μ at zero SNR; DDIM η = 0: √ᾱ' x̂₀ + √(1 − ᾱ') ε̂ with ε̂ = x; DDPM mean: √ᾱ' x̂₀ (no x_t term).
  std::vector<double> ddim_expected, ddpm_expected;
  for (double e : ops::to_vector(x)) {
    ddim_expected.push_back(std::sqrt(ap) * kMu + std::sqrt(1.0 - ap) * e);
    ddpm_expected.push_back(std::sqrt(ap) * kMu);
  }
  Generator gen(3);
  const T ddim = DDIMStep{}(x, c, predict, gen);
  CHECK(sftest::max_abs_diff(ddim, sftest::make<T>(ddim_expected, {1, 1, 2, 2})) <= sftest::tolerance<T>());
  const T ddpm_mean = DDPMStep{StepVariance::none}(x, c, predict, gen);
  CHECK(sftest::max_abs_diff(ddpm_mean, sftest::make<T>(ddpm_expected, {1, 1, 2, 2})) <= sftest::tolerance<T>());
  for (auto variance : {StepVariance::fixed_small, StepVariance::fixed_large}) {
    for (double e : ops::to_vector(DDPMStep{variance}(x, c, predict, gen))) CHECK(std::isfinite(e));
  }
  for (double e : ops::to_vector(DDIMStep{1.0}(x, c, predict, gen))) CHECK(std::isfinite(e));
}

TEST_CASE_TEMPLATE("sampling from the ᾱ = 0 end of a zero-terminal-SNR table on a trailing grid has the closed-form moments", T,
                   SCOREFLOW_BACKENDS) {
  const auto table = NoiseSchedule::linear().rescale_zero_terminal_snr();
  const T prototype = sftest::zeros<T>({kN, 1, 4, 4});
  const auto velocity_model = denoiser(GaussianVelocity{sftest::GaussianData{table, kMu, kS}}, Parameterization::velocity);
  const auto sample_model = denoiser(sftest::GaussianData{table, kMu, kS}, Parameterization::sample);
  for (int steps : {10, 50}) {
    CAPTURE(steps);
    const auto grid = DiffusionGrid::spaced(steps, 1000, DiffusionGrid::Spacing::trailing);
    REQUIRE(table.alpha_bar(grid[0].value) == 0.0);  // the first step starts from pure noise
    const auto ddim_exact = along_grid(table, grid, [](sftest::Moments m, double a, double ap, int) {
      return sftest::exact::ddim_step(m, a, ap, 0.0, kMu, kS);
    });
    Generator g1(21), g2(21), g3(22);
    const T v_ddim = Sampler{DiffusionSchedule<DDIMStep>{table, grid, DDIMStep{}}}.sample(velocity_model, PureNoise<T>{prototype}, g1);
    check_moments("DDIM η = 0, v-prediction, " + std::to_string(steps) + " trailing steps", v_ddim, ddim_exact);
    const T x0_ddim = Sampler{DiffusionSchedule<DDIMStep>{table, grid, DDIMStep{}}}.sample(sample_model, PureNoise<T>{prototype}, g2);
    CHECK(sftest::max_abs_diff(v_ddim, x0_ddim) <= 100 * sftest::tolerance<T>());  // the same x̂₀, the same path
    const auto ddpm_exact = along_grid(table, grid, [](sftest::Moments m, double a, double ap, int t) {
      const double noise = t <= 0 ? 0.0 : sftest::exact::beta_tilde(a, ap);
      return sftest::exact::ddpm_step(m, a, ap, noise, kMu, kS);
    });
    const T v_ddpm = Sampler{DiffusionSchedule<DDPMStep>{table, grid, DDPMStep{}}}.sample(velocity_model, PureNoise<T>{prototype}, g3);
    check_moments("DDPM fixed_small, v-prediction, " + std::to_string(steps) + " trailing steps", v_ddpm, ddpm_exact);
    // The start N(0, 1) is the exact marginal at ᾱ = 0, so the mean is the data's after any number
    // of steps (the first step sets it to √ᾱ' μ, the marginal's), and the spread approaches s.
    CHECK(std::abs(ddim_exact.mean - kMu) < 1e-12);
  }
  // The recursion's std on trailing grids (measured 0.3694, 0.4713, 0.4985 for 10, 50, 1000 steps):
  // DDIM's discretisation error shrinks to 0.3% of s when every timestep is visited.
  std::vector<double> spread;
  for (int steps : {10, 50, 1000}) {
    const auto grid = DiffusionGrid::spaced(steps, 1000, DiffusionGrid::Spacing::trailing);
    spread.push_back(std::sqrt(along_grid(table, grid, [](sftest::Moments m, double a, double ap, int) {
                                 return sftest::exact::ddim_step(m, a, ap, 0.0, kMu, kS);
                               }).variance));
  }
  CHECK(spread[0] < spread[1]);
  CHECK(spread[1] < spread[2]);
  CHECK(std::abs(spread[2] - kS) < 0.005 * kS);
}

TEST_CASE_TEMPLATE("an ε-predicting model at ᾱ = 0 stops the sampler with an invalid_option naming the problem", T,
                   SCOREFLOW_BACKENDS) {
  const auto table = NoiseSchedule::linear().rescale_zero_terminal_snr();
  const auto grid = DiffusionGrid::spaced(10, 1000, DiffusionGrid::Spacing::trailing);
  auto model = denoiser(sftest::GaussianDiffusion{table, kMu, kS}, Parameterization::noise);
  const T prototype = sftest::zeros<T>({4, 1, 2, 2});
  const auto sample_with = [&](auto step) {
    Generator gen(1);
    return Sampler{DiffusionSchedule<decltype(step)>{table, grid, step}}.sample(model, PureNoise<T>{prototype}, gen);
  };
  CHECK_THROWS_WITH_AS(sample_with(DDIMStep{}), doctest::Contains("a noise (ε) prediction at ᾱ = 0 determines no x̂₀"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(sample_with(DDPMStep{}), doctest::Contains("Lin et al. 2024 §3.2"), invalid_option);
  // The same model on a grid that avoids the terminal timestep (leading spacing) samples.
  Generator g3(1);
  const T x = Sampler{DiffusionSchedule<DDIMStep>{table, DiffusionGrid::spaced(10), DDIMStep{}}}.sample(model, PureNoise<T>{prototype}, g3);
  for (double e : ops::to_vector(x)) CHECK(std::isfinite(e));
}
}  // namespace test_zero_terminal_snr
