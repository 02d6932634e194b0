// Noise-level grids (process/sigma_grids.hpp), the flow shifts and DiffusionGrid::from_sigmas
// (process/time_grid.hpp): their properties, and agreement with the reference implementations'
// own numbers (k-diffusion's get_sigmas_*, diffusers' FlowMatchEulerDiscreteScheduler and
// EulerDiscreteScheduler, ComfyUI's AlignYourStepsScheduler), recorded in float64 by running that
// code (reference/grids.inc, provenance at its top).
//
// Tolerance against the references: 1e-12 relative. Both sides evaluate the same formula in
// float64 with a handful of correctly rounded operations (a linspace ramp, one or two pow/exp/log),
// so they agree to a few ulps: pow(·, ρ) multiplies a relative error by ρ ≤ 7, giving ≲ 1e-14.
// The looser bound leaves room for the two known wider gaps, each measured and printed below:
// the VP grid's last level, where k-diffusion's exp(x) − 1 at x ≈ 1e-4 keeps only ~12 digits and
// we use expm1; and σ = 1 − t of a flow grid near t = 1, where the subtraction costs
// ulp(1)/σ ≈ 1e-13 relative at σ = 1e-3.
#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "backends.hpp"
#include "reference/grids.inc"

namespace test_grids {

using namespace scoreflow;
namespace ref = sfref_grids;

namespace {
constexpr double kRelTol = 1e-12;

/// Largest |a_i − b_i| / |b_i| (absolute where b_i = 0), after checking the sizes agree.
double max_rel_diff(const std::vector<double>& ours, std::span<const double> theirs) {
  REQUIRE(ours.size() == theirs.size());
  double worst = 0;
  for (std::size_t i = 0; i < ours.size(); ++i) {
    const double d = std::abs(ours[i] - theirs[i]);
    worst = std::max(worst, theirs[i] == 0.0 ? d : d / std::abs(theirs[i]));
  }
  return worst;
}

void check_against(const char* what, const std::vector<double>& ours, std::span<const double> theirs,
                   double tolerance = kRelTol) {
  const double d = max_rel_diff(ours, theirs);
  MESSAGE(std::string(what), ": max relative difference ", d);
  CHECK(d <= tolerance);
}

bool strictly_decreasing(const std::vector<double>& v) {
  return std::adjacent_find(v.begin(), v.end(), std::less_equal<>()) == v.end();
}

/// σ_t = √((1 − ᾱ_t)/ᾱ_t) of a table entry.
double table_sigma(const NoiseSchedule& table, int t) {
  const double a = table.alpha_bar(t);
  return std::sqrt((1.0 - a) / a);
}

/// diffusers' FlowMatchEulerDiscreteScheduler.set_timesteps(n) default grid before its shift, in
/// our time t = 1 − σ: σ_k = np.linspace(1000 σ_max, 1000 σ_min, n)[k] / 1000 (NumPy's linspace:
/// start + k·step, the last exactly the stop), then t = 1 (its appended σ = 0).
FlowGrid diffusers_flow_match_base(int n, double sigma_min) {
  const double start = 1000.0, stop = sigma_min * 1000.0, step = (stop - start) / (n - 1);
  std::vector<double> t;
  for (int k = 0; k < n; ++k) t.push_back(1.0 - (k == n - 1 ? stop : start + k * step) / 1000.0);
  t.push_back(1.0);
  return FlowGrid(std::move(t));
}

/// σ = 1 − t of a flow grid, in diffusers' order (noise first), ending with its σ = 0.
std::vector<double> flow_sigmas(const FlowGrid& g) {
  std::vector<double> s;
  for (double t : g.times()) s.push_back(1.0 - t);
  return s;
}
}  // namespace

TEST_CASE("sigma grids equal k-diffusion's get_sigmas_* (Karras eq. 5, exponential, polyexponential, VP)") {
  const double lo = 0.002, hi = 80.0;
  check_against("karras n=1 rho=7", karras_sigmas(1, lo, hi).sigmas(), ref::kKdKarras_n1_rho7);
  check_against("karras n=5 rho=7", karras_sigmas(5, lo, hi).sigmas(), ref::kKdKarras_n5_rho7);
  check_against("karras n=10 rho=7", karras_sigmas(10, lo, hi).sigmas(), ref::kKdKarras_n10_rho7);
  check_against("karras n=25 rho=7", karras_sigmas(25, lo, hi).sigmas(), ref::kKdKarras_n25_rho7);
  check_against("karras n=1 rho=3", karras_sigmas(1, lo, hi, 3.0).sigmas(), ref::kKdKarras_n1_rho3);
  check_against("karras n=5 rho=3", karras_sigmas(5, lo, hi, 3.0).sigmas(), ref::kKdKarras_n5_rho3);
  check_against("karras n=10 rho=3", karras_sigmas(10, lo, hi, 3.0).sigmas(), ref::kKdKarras_n10_rho3);
  check_against("karras n=25 rho=3", karras_sigmas(25, lo, hi, 3.0).sigmas(), ref::kKdKarras_n25_rho3);
  check_against("exponential n=10", exponential_sigmas(10, lo, hi).sigmas(), ref::kKdExponential_n10);
  check_against("polyexponential n=10 rho=1", polyexponential_sigmas(10, lo, hi).sigmas(), ref::kKdPolyExponential_n10_rho1);
  check_against("polyexponential n=10 rho=2", polyexponential_sigmas(10, lo, hi, 2.0).sigmas(),
                ref::kKdPolyExponential_n10_rho2);
  check_against("vp n=10", vp_sigmas(10).sigmas(), ref::kKdVp_n10);
  // Karras with the table's σ range, as diffusers' EulerDiscreteScheduler(use_karras_sigmas) builds it.
  const auto table = NoiseSchedule::linear();
  check_against("diffusers EulerDiscrete karras, linear table", karras_sigmas(10, table_sigma(table, 0), table_sigma(table, 999)).sigmas(),
                ref::kEulerKarras10_sigmas);
}

TEST_CASE("sigma grids: ends exact, decreasing, and the shapes their formulas promise") {
  const double lo = 0.002, hi = 80.0;
  for (int n : {1, 2, 7, 40}) {
    CAPTURE(n);
    for (const SigmaGrid& g : {karras_sigmas(n, lo, hi), karras_sigmas(n, lo, hi, 1.0), exponential_sigmas(n, lo, hi),
                               polyexponential_sigmas(n, lo, hi, 2.5), logsnr_uniform_sigmas(n, lo, hi)}) {
      const auto& s = g.sigmas();
      REQUIRE(s.size() == static_cast<std::size_t>(n) + 1);  // n levels, then clean data
      CHECK(s.front() == hi);
      CHECK(s.back() == 0.0);
      if (n > 1) CHECK(s[s.size() - 2] == lo);
      CHECK(strictly_decreasing(s));
    }
  }
  const int n = 12;
  SUBCASE("Karras with rho = 1 is linear in σ") {
    const auto s = karras_sigmas(n, lo, hi, 1.0).sigmas();
    std::vector<double> line;
    for (int i = 0; i + 1 < n; ++i) line.push_back(hi + (lo - hi) * i / (n - 1));
    line.push_back(lo);  // hi + (lo − hi) itself cancels to 0.00199999999999534
    line.push_back(0.0);
    CHECK(max_rel_diff(s, line) <= 1e-13);
  }
  SUBCASE("exponential is uniform in log σ; polyexponential rho = 1 and the λ-uniform VE grid are the same grid") {
    const auto s = exponential_sigmas(n, lo, hi).sigmas();
    const double ratio = std::log(lo / hi) / (n - 1);
    for (int i = 0; i + 1 < n; ++i)
      CHECK(std::log(s[static_cast<std::size_t>(i) + 1] / s[static_cast<std::size_t>(i)]) == doctest::Approx(ratio).epsilon(1e-12));
    CHECK(max_rel_diff(polyexponential_sigmas(n, lo, hi, 1.0).sigmas(), s) <= 1e-14);
    CHECK(max_rel_diff(logsnr_uniform_sigmas(n, lo, hi).sigmas(), s) <= 1e-14);
  }
  SUBCASE("Karras tends to exponential as rho grows (a^(1/ρ) interpolation → log interpolation)") {
    const double d = max_rel_diff(karras_sigmas(n, lo, hi, 1e6).sigmas(), exponential_sigmas(n, lo, hi).sigmas());
    MESSAGE("karras rho = 1e6 vs exponential: ", d);
    CHECK(d < 1e-4);
    CHECK(max_rel_diff(karras_sigmas(n, lo, hi, 7.0).sigmas(), exponential_sigmas(n, lo, hi).sigmas()) > 0.1);
  }
  SUBCASE("polyexponential with rho > 1 spends more levels at low noise than exponential") {
    const auto p = polyexponential_sigmas(n, lo, hi, 2.0).sigmas(), e = exponential_sigmas(n, lo, hi).sigmas();
    for (int i = 1; i + 1 < n; ++i) CHECK(p[static_cast<std::size_t>(i)] < e[static_cast<std::size_t>(i)]);
  }
}

TEST_CASE("λ-uniform grids for any path: VE σ, the seed's flow t = sigmoid(λ)") {
  const auto lambdas = logsnr_uniform_lambdas(9, -4.0, 4.0);
  REQUIRE(lambdas.size() == 9);
  CHECK(lambdas.front() == -4.0);
  CHECK(lambdas.back() == 4.0);
  for (std::size_t i = 0; i < lambdas.size(); ++i) CHECK(lambdas[i] == doctest::Approx(-4.0 + static_cast<double>(i)).epsilon(1e-15));

  SUBCASE("flow grid: t_i = sigmoid(λ_i), then t = 1; with from_pure_noise t = 0 first") {
    const auto g = logsnr_uniform_flow_grid(9, -4.0, 4.0);
    REQUIRE(g.size() == 10);
    CHECK(g.times().back() == 1.0);
    for (std::size_t i = 0; i < 9; ++i) {
      CHECK(g[i].value == doctest::Approx(1.0 / (1.0 + std::exp(-lambdas[i]))).epsilon(1e-15));
      CHECK(flow::level(g[i].value).lambda() == doctest::Approx(lambdas[i]).epsilon(1e-12));  // λ = log(t/(1 − t)) back
    }
    const auto from_noise = logsnr_uniform_flow_grid(9, -4.0, 4.0, true);
    REQUIRE(from_noise.size() == 11);
    CHECK(from_noise[0].value == 0.0);
    CHECK(flow::level(from_noise[0].value).lambda() == -std::numeric_limits<double>::infinity());
    CHECK(std::vector<double>(from_noise.times().begin() + 1, from_noise.times().end()) == g.times());
    // symmetric λ range: t ↔ 1 − t
    CHECK(g[0].value + g[8].value == doctest::Approx(1.0).epsilon(1e-15));
  }
  SUBCASE("levels through a path's own λ map") {
    const auto flow_levels = logsnr_uniform_levels(9, -4.0, 4.0, flow::level_at_lambda);
    const auto ve_levels = logsnr_uniform_levels(9, -4.0, 4.0, [](double l) { return NoiseLevel{1.0, std::exp(-l)}; });
    for (std::size_t i = 0; i < 9; ++i) {
      CHECK(flow_levels[i].lambda() == doctest::Approx(lambdas[i]).epsilon(1e-12));
      CHECK(ve_levels[i].lambda() == doctest::Approx(lambdas[i]).epsilon(1e-12));
    }
    // VE: the exponential grid between e^{-4} and e^{4} (λ rising from noise is σ falling), its 0 aside.
    const auto e = exponential_sigmas(9, std::exp(-4.0), std::exp(4.0)).sigmas();
    for (std::size_t i = 0; i < 9; ++i) CHECK(ve_levels[i].sigma == doctest::Approx(e[i]).epsilon(1e-14));
  }
}

TEST_CASE("Align Your Steps equals ComfyUI's AlignYourStepsScheduler (Sabour et al. 2024)") {
  // The published tables, as ComfyUI's NOISE_LEVELS holds them.
  const auto table_of = [](AysModel m) { const auto& t = align_your_steps_table(m); return std::vector<double>(t.begin(), t.end()); };
  CHECK(table_of(AysModel::sd15) == std::vector<double>(std::begin(ref::kAys_SD1_table), std::end(ref::kAys_SD1_table)));
  CHECK(table_of(AysModel::sdxl) == std::vector<double>(std::begin(ref::kAys_SDXL_table), std::end(ref::kAys_SDXL_table)));
  CHECK(table_of(AysModel::svd) == std::vector<double>(std::begin(ref::kAys_SVD_table), std::end(ref::kAys_SVD_table)));

  // 10 steps: the table itself with its last level replaced by 0; other counts: log-linear interpolation.
  CHECK(align_your_steps_sigmas(AysModel::sd15, 10).sigmas() == std::vector<double>(std::begin(ref::kAys_SD1_10_f64), std::end(ref::kAys_SD1_10_f64)));
  check_against("AYS SD1 20 steps", align_your_steps_sigmas(AysModel::sd15, 20).sigmas(), ref::kAys_SD1_20_f64);
  check_against("AYS SD1 6 steps", align_your_steps_sigmas(AysModel::sd15, 6).sigmas(), ref::kAys_SD1_6_f64);
  check_against("AYS SDXL 15 steps", align_your_steps_sigmas(AysModel::sdxl, 15).sigmas(), ref::kAys_SDXL_15_f64);
  // ComfyUI returns torch.FloatTensor: its output is our float64 grid rounded to float32.
  const auto as_float = [](const SigmaGrid& g) {
    std::vector<double> out;
    for (double s : g.sigmas()) out.push_back(static_cast<double>(static_cast<float>(s)));
    return out;
  };
  CHECK(as_float(align_your_steps_sigmas(AysModel::sd15, 20)) == std::vector<double>(std::begin(ref::kAys_SD1_20_f32), std::end(ref::kAys_SD1_20_f32)));
  CHECK(as_float(align_your_steps_sigmas(AysModel::sdxl, 15)) == std::vector<double>(std::begin(ref::kAys_SDXL_15_f32), std::end(ref::kAys_SDXL_15_f32)));

  SUBCASE("interpolation keeps every published level when the step count is a multiple: 20 steps hit the table at even indices") {
    const auto s = align_your_steps_sigmas(AysModel::sd15, 20).sigmas();
    const auto& t = align_your_steps_table(AysModel::sd15);
    for (std::size_t j = 0; j + 1 < t.size(); ++j) CHECK(s[2 * j] == doctest::Approx(t[j]).epsilon(1e-14));
    CHECK(strictly_decreasing(s));
  }
  SUBCASE("denoise < 1 keeps the last round(steps · denoise) steps (ComfyUI)") {
    const auto s = align_your_steps_sigmas(AysModel::sd15, 10, 0.5).sigmas();
    const std::vector<double> tail(std::end(ref::kAys_SD1_10_f64) - 6, std::end(ref::kAys_SD1_10_f64));
    CHECK(s == tail);
    CHECK(align_your_steps_sigmas(AysModel::svd, 10, 0.25).size() == 3);  // round(2.5) = 2 (half to even)
  }
}

TEST_CASE("flow shift (SD3, Esser et al. 2024 §5.3.2) and the dynamic shift equal diffusers' FlowMatchEulerDiscreteScheduler") {
  SUBCASE("properties: s = 1 is the identity, t = 0 and t = 1 stay, monotone, shifts compose by multiplying") {
    const auto g = FlowGrid::uniform(16);
    const auto same = FlowGrid::shifted(g, 1.0);
    for (std::size_t i = 0; i < g.size(); ++i) CHECK(same[i].value == doctest::Approx(g[i].value).epsilon(1e-16));
    for (double s : {0.25, 1.0, 3.0, 10.0}) {
      CAPTURE(s);
      const auto h = FlowGrid::shifted(g, s);  // the FlowGrid constructor itself re-checks that h increases
      CHECK(h[0].value == 0.0);
      CHECK(h[16].value == 1.0);
      // s > 1 moves every interior point towards noise (t smaller), s < 1 towards data.
      for (std::size_t i = 1; i + 1 < g.size(); ++i) {
        if (s > 1) CHECK(h[i].value < g[i].value);
        if (s < 1) CHECK(h[i].value > g[i].value);
      }
      const auto composed = FlowGrid::shifted(FlowGrid::shifted(g, s), 2.0), direct = FlowGrid::shifted(g, 2.0 * s);
      for (std::size_t i = 0; i < g.size(); ++i) CHECK(composed[i].value == doctest::Approx(direct[i].value).epsilon(1e-14));
    }
    // σ' = sσ/(1 + (s − 1)σ) at σ = 1 − t = 0.5, s = 3: σ' = 0.75, t' = 0.25.
    CHECK(FlowGrid::shifted(FlowGrid({0.0, 0.5, 1.0}), 3.0)[1].value == doctest::Approx(0.25).epsilon(1e-15));
    // The exponential time shift with exponent 1 is the plain shift with s = e^μ; ends stay for any exponent.
    for (double mu : {-0.7, 0.5, 1.15}) {
      const auto a = FlowGrid::time_shifted(g, mu), b = FlowGrid::shifted(g, std::exp(mu));
      for (std::size_t i = 0; i < g.size(); ++i) CHECK(a[i].value == doctest::Approx(b[i].value).epsilon(1e-14));
      const auto c = FlowGrid::time_shifted(g, mu, 0.6);
      CHECK(c[0].value == 0.0);
      CHECK(c[16].value == 1.0);
    }
  }
  SUBCASE("against diffusers' set_timesteps(10) sigmas (float64)") {
    // shift = 1: σ_min = 1/1000 and the map is the identity.
    check_against("flow match shift 1", flow_sigmas(FlowGrid::shifted(diffusers_flow_match_base(10, 0.001), 1.0)),
                  ref::kFlowMatch_shift1_n10_sigmas_f64);
    // shift = 3: __init__ has already shifted σ_min (the reference's own value is checked), and
    // set_timesteps shifts the whole linspace again, so its low-noise end is shifted twice.
    const double s = 3.0, sigma_min = s * 0.001 / (1 + (s - 1) * 0.001);
    CHECK(sigma_min == ref::kFlowMatch_shift3_sigma_min_f64);
    check_against("flow match shift 3", flow_sigmas(FlowGrid::shifted(diffusers_flow_match_base(10, sigma_min), s)),
                  ref::kFlowMatch_shift3_n10_sigmas_f64);
    // use_dynamic_shifting, time_shift_type exponential: σ_min stays 1/1000, μ passed to set_timesteps.
    check_against("flow match dynamic mu 0.5", flow_sigmas(FlowGrid::time_shifted(diffusers_flow_match_base(10, 0.001), 0.5)),
                  ref::kFlowMatch_dyn_mu0p5_n10_sigmas_f64);
    check_against("flow match dynamic mu 1.15", flow_sigmas(FlowGrid::time_shifted(diffusers_flow_match_base(10, 0.001), 1.15)),
                  ref::kFlowMatch_dyn_mu1p15_n10_sigmas_f64);
  }
  SUBCASE("μ from the image sequence length (diffusers' calculate_shift: Flux, SD3 pipelines)") {
    const ResolutionShift flux;
    CHECK(flux.mu(256) == doctest::Approx(0.5).epsilon(1e-15));
    CHECK(flux.mu(4096) == doctest::Approx(1.15).epsilon(1e-15));
    CHECK(flux.mu(2176) == doctest::Approx(0.825).epsilon(1e-15));  // halfway
    CHECK(flux.mu(64 * 64) == flux.mu(4096));                        // a 1024² Flux image: (1024/16)² tokens
    CHECK(ResolutionShift{.base_shift = 0.0, .max_shift = 2.0}.mu(256 + 3840 / 4) == doctest::Approx(0.5).epsilon(1e-14));
  }
}

TEST_CASE("DiffusionGrid::from_sigmas: nearest table timestep in log σ, σ = 0 → −1, collisions rejected") {
  const auto table = NoiseSchedule::linear();
  std::vector<double> log_sigma;
  for (int t = 0; t < table.size(); ++t) log_sigma.push_back(std::log(table_sigma(table, t)));

  SUBCASE("Karras on the linear table: diffusers' fractional _sigma_to_t timesteps, rounded") {
    const auto sigmas = karras_sigmas(10, table_sigma(table, 0), table_sigma(table, 999));
    const auto grid = DiffusionGrid::from_sigmas(table, sigmas);
    REQUIRE(grid.size() == 11);
    CHECK(grid.timesteps().back() == -1);
    for (std::size_t i = 0; i < 10; ++i) {
      CAPTURE(i);
      CHECK(grid[i].value == static_cast<int>(std::lround(ref::kEulerKarras10_timesteps[i])));
    }
    CHECK(grid.timesteps() == std::vector<int>{999, 937, 864, 775, 663, 511, 301, 102, 18, 0, -1});
  }
  SUBCASE("Align Your Steps' σ tables on Stable Diffusion's scaled-linear table: diffusers' published AYS timesteps") {
    // SD 1.5 / SDXL train on β = linspace(√0.00085, √0.012, 1000)² (diffusers' "scaled_linear");
    // their σ range is the AYS tables' own (σ_999 = 14.6146412293, σ_0 = 0.0291671582).
    std::vector<double> betas;
    for (int i = 0; i < 1000; ++i) {
      const double root = std::sqrt(0.00085) + (std::sqrt(0.012) - std::sqrt(0.00085)) * i / 999;
      betas.push_back(root * root);
    }
    const auto sd = NoiseSchedule::from_betas(betas);
    CHECK(table_sigma(sd, 999) == doctest::Approx(14.6146412293).epsilon(1e-10));
    const auto on_table = [&](AysModel m) {
      const auto& t = align_your_steps_table(m);
      auto steps = DiffusionGrid::from_sigmas(sd, SigmaGrid(std::vector<double>(t.begin(), t.end()))).timesteps();
      CHECK(steps.back() == 0);  // the table's σ_min is σ_0
      steps.pop_back();
      return steps;
    };
    CHECK(on_table(AysModel::sd15) == std::vector<int>(std::begin(ref::kDiffusersAys_StableDiffusionTimesteps),
                                                        std::end(ref::kDiffusersAys_StableDiffusionTimesteps)));
    CHECK(on_table(AysModel::sdxl) == std::vector<int>(std::begin(ref::kDiffusersAys_StableDiffusionXLTimesteps),
                                                        std::end(ref::kDiffusersAys_StableDiffusionXLTimesteps)));
  }
  SUBCASE("every grid's σ goes to a timestep no other timestep beats in |log σ − log σ_t|") {
    for (const SigmaGrid& g : {karras_sigmas(30, 0.02, 150.0), exponential_sigmas(25, 0.01, 100.0),
                               align_your_steps_sigmas(AysModel::sd15, 10)}) {
      const auto grid = DiffusionGrid::from_sigmas(table, g);
      REQUIRE(grid.size() == g.size());
      CHECK(grid.timesteps().back() == -1);
      for (std::size_t i = 0; i + 1 < g.size(); ++i) {
        const double target = std::log(g[i].value);
        const double mine = std::abs(target - log_sigma[static_cast<std::size_t>(grid[i].value)]);
        for (double l : log_sigma) CHECK_FALSE(std::abs(target - l) < mine);
      }
    }
    // Beyond the table's range (σ_999 = 157.4, σ_0 = 0.0100): the ends.
    CHECK(DiffusionGrid::from_sigmas(table, SigmaGrid({1000.0, 1e-4})).timesteps() == std::vector<int>{999, 0});
  }
  SUBCASE("more steps than the table resolves: an invalid_option naming the σ and the timestep") {
    CHECK_THROWS_WITH_AS(DiffusionGrid::from_sigmas(table, SigmaGrid({5.0, 4.9999, 0.0})),
                         doctest::Contains("sigmas[1] = 4.9999 maps to timestep"), invalid_option);
    // Karras crowds its levels at low noise: 200 of them collide near t = 0 on a 1000-entry table.
    CHECK_THROWS_WITH_AS(DiffusionGrid::from_sigmas(table, karras_sigmas(200, table_sigma(table, 0), table_sigma(table, 999))),
                         doctest::Contains("too many steps for the 1000-entry table"), invalid_option);
  }
  SUBCASE("a zero-terminal-SNR table's σ = ∞ entry is never nearest to a finite σ") {
    const auto zsnr = table.rescale_zero_terminal_snr();
    const auto grid = DiffusionGrid::from_sigmas(zsnr, SigmaGrid({1e6, 1.0, 0.0}));
    CHECK(grid[0].value == 998);
    CHECK(grid[2].value == -1);
  }
}

TEST_CASE("trailing spacing starts at the terminal timestep T − 1 (Lin et al. 2024 §3.3)") {
  for (int n : {1, 3, 7, 10, 25, 50, 999, 1000}) {
    CAPTURE(n);
    const auto g = DiffusionGrid::spaced(n, 1000, DiffusionGrid::Spacing::trailing);
    CHECK(g[0].value == 999);
    CHECK(g.timesteps().back() == -1);
  }
  // leading (diffusers' default for SD) never reaches it for n > 1: the flaw §3.3 names.
  CHECK(DiffusionGrid::spaced(10, 1000, DiffusionGrid::Spacing::leading)[0].value == 900);
  const auto zsnr = NoiseSchedule::linear().rescale_zero_terminal_snr();
  CHECK(zsnr.alpha_bar(DiffusionGrid::spaced(10, 1000, DiffusionGrid::Spacing::trailing)[0].value) == 0.0);
}

TEST_CASE("grid builders name each bad option") {
  using doctest::Contains;
  CHECK_THROWS_WITH_AS(karras_sigmas(0, 0.1, 10), Contains("n = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(karras_sigmas(5, 0.0, 10), Contains("sigma_min = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(karras_sigmas(5, -1.0, 10), Contains("sigma_min = -1"), invalid_option);
  CHECK_THROWS_WITH_AS(karras_sigmas(5, 10, 1.0), Contains("sigma_max = 1"), invalid_option);
  CHECK_THROWS_WITH_AS(karras_sigmas(5, 1.0, 1.0), Contains("sigma_max = 1"), invalid_option);
  CHECK_THROWS_WITH_AS(karras_sigmas(5, 0.1, std::numeric_limits<double>::infinity()), Contains("sigma_max = inf"), invalid_option);
  CHECK_THROWS_WITH_AS(karras_sigmas(5, std::nan(""), 1.0), Contains("sigma_min = nan"), invalid_option);
  CHECK_THROWS_WITH_AS(karras_sigmas(5, 0.1, 10, -1), Contains("rho = -1: must be positive"), invalid_option);
  CHECK_THROWS_WITH_AS(karras_sigmas(5, 0.1, 10, 0), Contains("rho = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(exponential_sigmas(-2, 0.1, 10), Contains("n = -2"), invalid_option);
  CHECK_THROWS_WITH_AS(exponential_sigmas(5, 0.1, 0.05), Contains("sigma_max = 0.05"), invalid_option);
  CHECK_THROWS_WITH_AS(polyexponential_sigmas(5, 0.1, 10, -1), Contains("rho = -1: must be positive"), invalid_option);
  CHECK_THROWS_WITH_AS(polyexponential_sigmas(5, 0.0, 10), Contains("sigma_min = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(vp_sigmas(0), Contains("n = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(vp_sigmas(5, -1.0), Contains("beta_d = -1"), invalid_option);
  CHECK_THROWS_WITH_AS(vp_sigmas(5, 19.9, -0.1), Contains("beta_min = -0.1"), invalid_option);
  CHECK_THROWS_WITH_AS(vp_sigmas(5, 19.9, 0.1, 1.0), Contains("eps_s = 1"), invalid_option);
  CHECK_THROWS_WITH_AS(logsnr_uniform_sigmas(0, 0.1, 10), Contains("n = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(logsnr_uniform_sigmas(5, 10, 0.1), Contains("sigma_max = 0.1"), invalid_option);
  CHECK_THROWS_WITH_AS(logsnr_uniform_lambdas(5, 1.0, -1.0), Contains("lambda_max = -1"), invalid_option);
  CHECK_THROWS_WITH_AS(logsnr_uniform_lambdas(5, -std::numeric_limits<double>::infinity(), 1.0), Contains("lambda_min = -inf"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(logsnr_uniform_flow_grid(5, -4.0, 40.0), Contains("lambda_max = 40"), invalid_option);
  CHECK_THROWS_WITH_AS(logsnr_uniform_flow_grid(5, -800.0, 4.0), Contains("lambda_min = -800"), invalid_option);
  CHECK_THROWS_WITH_AS(align_your_steps_sigmas(AysModel::sd15, 0), Contains("steps = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(align_your_steps_sigmas(AysModel::sd15, 10, 0.0), Contains("denoise = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(align_your_steps_sigmas(AysModel::sd15, 10, 1.5), Contains("denoise = 1.5"), invalid_option);
  CHECK_THROWS_WITH_AS(align_your_steps_sigmas(AysModel::sd15, 1, 0.4), Contains("denoise = 0.4: leaves no step"), invalid_option);
  CHECK_THROWS_WITH_AS(align_your_steps_table(static_cast<AysModel>(7)), Contains("model"), invalid_option);
  const auto g = FlowGrid::uniform(4);
  CHECK_THROWS_WITH_AS(FlowGrid::shifted(g, 0.0), Contains("shift = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(FlowGrid::shifted(g, -3.0), Contains("shift = -3"), invalid_option);
  CHECK_THROWS_WITH_AS(FlowGrid::shifted(g, std::nan("")), Contains("shift = nan"), invalid_option);
  CHECK_THROWS_WITH_AS(FlowGrid::time_shifted(g, std::numeric_limits<double>::infinity()), Contains("mu = inf"), invalid_option);
  CHECK_THROWS_WITH_AS(FlowGrid::time_shifted(g, 0.5, 0.0), Contains("exponent = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(static_cast<void>(ResolutionShift{}.mu(0)), Contains("image_seq_len = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(static_cast<void>(ResolutionShift{.max_seq_len = 100}.mu(64)), Contains("max_seq_len = 100"), invalid_option);
  CHECK_THROWS_WITH_AS(static_cast<void>(ResolutionShift{.base_shift = std::nan("")}.mu(64)), Contains("base_shift = nan"), invalid_option);
  CHECK_THROWS_WITH_AS(static_cast<void>(ResolutionShift{.max_shift = std::nan("")}.mu(64)), Contains("max_shift = nan"), invalid_option);
}
}  // namespace test_grids
