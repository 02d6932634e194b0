// DPMSolverPP, SDEDPMSolverPP, UniPC and DEIS against diffusers' own schedulers, step by step.
//
// The numbers in reference/diffusers_*.inc were recorded (in float64, see their header comments)
// from DPMSolverMultistepScheduler, UniPCMultistepScheduler and DEISMultistepScheduler at the
// commit named there, on fixed inputs: the ᾱ table NoiseSchedule::linear(1000), data N(0.3, 0.5²)
// answered by its exact ε̂ (our GaussianDiffusion oracle computes the same closed form), x_T = kZ
// (six values, shaped 1×1×2×3 here: the rules are elementwise), diffusers' set_timesteps grid
// (recorded) ending at σ = 0 (final_sigmas_type="zero": our timestep −1) or at the σ of timestep 0
// ("sigma_min" and every DEIS grid: our timestep 0), and for the SDE solver the recorded
// variance_noise kNoise20[k] at step k (our RecordedNoise keyed by the grid index the step leaves).
//
// Tolerance: 1e-10 relative to the row's largest value. Both sides run in float64 and evaluate the
// same formulas in different but algebraically equal arrangements (λ from log α − log σ here, from
// diffusers' σ/α conversion there; expm1 here, exp − 1 there; coefficient order). Each differs by a
// few ulps, amplified by at most ~1/ᾱ_max^{1/2} ≈ 160 in the first x̂ = (x − σ ε̂)/α and by the
// multistep differences (1/r ~ 1, 1/h² ≤ 10 on these grids), and the ODE carries errors forward
// with a factor O(1) over ≤ 20 steps: we expect ≤ 1e-12, and 1e-10 leaves room for compilers'
// contraction choices while still catching any wrong coefficient (those move results by ≥ 1e-4).
//
// Where diffusers returns NaN/inf or raises (UniPC bh1 onto σ = 0: its B(h) = h is −∞ and the
// empty residual is ∞·0; UniPC order ≥ 2 onto σ = 0 without lower_order_final), we compare the
// steps before and require our result to be finite; the bh1 final step is checked against its
// limit separately.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"
#include "reference/diffusers_deis.inc"
#include "reference/diffusers_dpmsolver.inc"
#include "reference/diffusers_unipc.inc"

namespace test_reference_diffusers {

using namespace scoreflow;

namespace {
using T = xt::xarray<double>;
constexpr double kTolerance = 1e-10;
const Shape kShape{1, 1, 2, 3};

T tensor_of(const double (&v)[6]) { return ops::from_vector(std::vector<double>(v, v + 6), kShape, T{}); }

enum class End { zero, sigma_min };  // the grid's last point: σ = 0 (timestep −1) or timestep 0

template <std::size_t N>
DiffusionGrid grid_of(const int (&timesteps)[N], End end) {
  std::vector<int> t(timesteps, timesteps + N);
  t.push_back(end == End::zero ? -1 : 0);
  return DiffusionGrid(std::move(t));
}

/// Runs `rule` on the recorded grid from x_T = kZ and returns the sample after every step.
template <class Rule, std::size_t N>
std::vector<std::vector<double>> run(const Rule& rule, const int (&timesteps)[N], End end) {
  const auto table = NoiseSchedule::linear(1000);
  const sftest::GaussianDiffusion oracle{table, 0.3, 0.5};
  auto model = denoiser([&](const T& x, Timestep t, NoCondition c) { return oracle(x, t, c); }, Parameterization::noise);
  std::vector<std::vector<double>> rows;
  Generator gen(0);
  Sampler{DiffusionSchedule{table, grid_of(timesteps, end), rule}}.sample(
      model, FromState<T>{tensor_of(sfref::kZ), 0}, gen, [&](const StepInfo<T>& info) {
        if (info.step > 0) rows.push_back(ops::to_vector(info.x));
      });
  return rows;
}

/// Largest deviation over the recorded rows with finite values, relative to each row's scale;
/// rows diffusers left non-finite must be finite here.
template <std::size_t R>
double deviation(const std::string& name, const std::vector<std::vector<double>>& ours, const double (&reference)[R][6]) {
  REQUIRE(ours.size() >= R);
  double worst = 0.0;
  for (std::size_t k = 0; k < ours.size(); ++k) {
    CHECK_MESSAGE(std::all_of(ours[k].begin(), ours[k].end(), [](double v) { return std::isfinite(v); }), name,
                  " step ", k, " is not finite");
    if (k >= R) continue;
    const bool finite = std::all_of(reference[k], reference[k] + 6, [](double v) { return std::isfinite(v); });
    if (!finite) continue;
    double scale = 0.0;
    for (double v : reference[k]) scale = std::max(scale, std::abs(v));
    for (std::size_t j = 0; j < 6; ++j) worst = std::max(worst, std::abs(ours[k][j] - reference[k][j]) / scale);
  }
  CHECK_MESSAGE(worst <= kTolerance, name, ": largest relative deviation ", worst);
  return worst;
}

struct Worst {
  double value = 0.0;
  std::string name;
  void note(const std::string& n, double d) {
    if (d >= value) value = d, name = n;
  }
};
}  // namespace

#define SF_CASE(worst, rule, base, end)                                                    \
  worst.note(#base, deviation(#base, run(rule, sfref::base##_timesteps, end), sfref::base##_steps))

TEST_CASE("reference: DPMSolverPP equals diffusers' DPMSolverMultistepScheduler(dpmsolver++) at every step") {
  using V = DPMSolverVariant;
  Worst w;
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::midpoint}), kDpmSolverPP_o1_midpoint_lof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::midpoint}), kDpmSolverPP_o1_midpoint_lof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::midpoint, .lower_order_final = false}), kDpmSolverPP_o1_midpoint_nolof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::midpoint, .lower_order_final = false}), kDpmSolverPP_o1_midpoint_nolof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::heun}), kDpmSolverPP_o1_heun_lof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::heun}), kDpmSolverPP_o1_heun_lof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::heun, .lower_order_final = false}), kDpmSolverPP_o1_heun_nolof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::heun, .lower_order_final = false}), kDpmSolverPP_o1_heun_nolof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::midpoint}), kDpmSolverPP_o2_midpoint_lof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::midpoint}), kDpmSolverPP_o2_midpoint_lof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::midpoint, .lower_order_final = false}), kDpmSolverPP_o2_midpoint_nolof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::midpoint, .lower_order_final = false}), kDpmSolverPP_o2_midpoint_nolof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::heun}), kDpmSolverPP_o2_heun_lof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::heun}), kDpmSolverPP_o2_heun_lof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::heun, .lower_order_final = false}), kDpmSolverPP_o2_heun_nolof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::heun, .lower_order_final = false}), kDpmSolverPP_o2_heun_nolof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::midpoint}), kDpmSolverPP_o3_midpoint_lof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::midpoint}), kDpmSolverPP_o3_midpoint_lof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::midpoint, .lower_order_final = false}), kDpmSolverPP_o3_midpoint_nolof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::midpoint, .lower_order_final = false}), kDpmSolverPP_o3_midpoint_nolof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::heun}), kDpmSolverPP_o3_heun_lof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::heun}), kDpmSolverPP_o3_heun_lof_20, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::heun, .lower_order_final = false}), kDpmSolverPP_o3_heun_nolof_10, End::zero);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::heun, .lower_order_final = false}), kDpmSolverPP_o3_heun_nolof_20, End::zero);
  // final_sigmas_type="sigma_min", trailing spacing: the grid ends at timestep 0, so only
  // lower_order_final (N = 10 < 15) lowers the last steps.
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::midpoint}), kDpmSolverPP_o1_midpoint_lof_10_sigmamin_trailing, End::sigma_min);
  SF_CASE(w, (DPMSolverPP{.order = 1, .variant = V::heun}), kDpmSolverPP_o1_heun_lof_10_sigmamin_trailing, End::sigma_min);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::midpoint}), kDpmSolverPP_o2_midpoint_lof_10_sigmamin_trailing, End::sigma_min);
  SF_CASE(w, (DPMSolverPP{.order = 2, .variant = V::heun}), kDpmSolverPP_o2_heun_lof_10_sigmamin_trailing, End::sigma_min);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::midpoint}), kDpmSolverPP_o3_midpoint_lof_10_sigmamin_trailing, End::sigma_min);
  SF_CASE(w, (DPMSolverPP{.order = 3, .variant = V::heun}), kDpmSolverPP_o3_heun_lof_10_sigmamin_trailing, End::sigma_min);
  MESSAGE("DPMSolverPP: largest relative deviation from diffusers ", w.value, " (", w.name, ")");
}

TEST_CASE("reference: SDEDPMSolverPP with recorded noise equals diffusers' sde-dpmsolver++ at every step") {
  RecordedNoise<T> noise;
  for (const auto& row : sfref::kNoise20) noise.noise.push_back(tensor_of(row));
  using Sde = SDEDPMSolverPP<RecordedNoise<T>>;
  Worst w;
  SF_CASE(w, (Sde{.order = 2, .variant = DPMSolverVariant::midpoint, .noise = noise}), kSdeDpmSolverPP_o2_midpoint_lof_10, End::zero);
  SF_CASE(w, (Sde{.order = 2, .variant = DPMSolverVariant::heun, .noise = noise}), kSdeDpmSolverPP_o2_heun_lof_10, End::zero);
  MESSAGE("SDEDPMSolverPP: largest relative deviation from diffusers ", w.value, " (", w.name, ")");
}

TEST_CASE("reference: UniPC equals diffusers' UniPCMultistepScheduler(predict_x0) at every step diffusers finishes") {
  constexpr auto bh1 = UniPCVariant::bh1, bh2 = UniPCVariant::bh2;
  Worst w;
#define SF_UNIPC(var, o, c, l, base, end) \
  SF_CASE(w, (UniPC{.order = o, .variant = var, .corrector = c, .lower_order_final = l}), base, end)
  SF_UNIPC(bh1, 1, true, true, kUniPC_bh1_o1_corr_lof_10, End::zero);
  SF_UNIPC(bh1, 1, true, false, kUniPC_bh1_o1_corr_nolof_10, End::zero);
  SF_UNIPC(bh1, 1, false, true, kUniPC_bh1_o1_nocorr_lof_10, End::zero);
  SF_UNIPC(bh1, 1, false, false, kUniPC_bh1_o1_nocorr_nolof_10, End::zero);
  SF_UNIPC(bh1, 2, true, true, kUniPC_bh1_o2_corr_lof_10, End::zero);
  SF_UNIPC(bh1, 2, true, false, kUniPC_bh1_o2_corr_nolof_10, End::zero);
  SF_UNIPC(bh1, 2, false, true, kUniPC_bh1_o2_nocorr_lof_10, End::zero);
  SF_UNIPC(bh1, 2, false, false, kUniPC_bh1_o2_nocorr_nolof_10, End::zero);
  SF_UNIPC(bh1, 3, true, true, kUniPC_bh1_o3_corr_lof_10, End::zero);
  SF_UNIPC(bh1, 3, true, false, kUniPC_bh1_o3_corr_nolof_10, End::zero);
  SF_UNIPC(bh1, 3, false, true, kUniPC_bh1_o3_nocorr_lof_10, End::zero);
  SF_UNIPC(bh1, 3, false, false, kUniPC_bh1_o3_nocorr_nolof_10, End::zero);
  SF_UNIPC(bh2, 1, true, true, kUniPC_bh2_o1_corr_lof_10, End::zero);
  SF_UNIPC(bh2, 1, true, false, kUniPC_bh2_o1_corr_nolof_10, End::zero);
  SF_UNIPC(bh2, 1, false, true, kUniPC_bh2_o1_nocorr_lof_10, End::zero);
  SF_UNIPC(bh2, 1, false, false, kUniPC_bh2_o1_nocorr_nolof_10, End::zero);
  SF_UNIPC(bh2, 2, true, true, kUniPC_bh2_o2_corr_lof_10, End::zero);
  SF_UNIPC(bh2, 2, true, false, kUniPC_bh2_o2_corr_nolof_10, End::zero);
  SF_UNIPC(bh2, 2, false, true, kUniPC_bh2_o2_nocorr_lof_10, End::zero);
  SF_UNIPC(bh2, 2, false, false, kUniPC_bh2_o2_nocorr_nolof_10, End::zero);
  SF_UNIPC(bh2, 3, true, true, kUniPC_bh2_o3_corr_lof_10, End::zero);
  SF_UNIPC(bh2, 3, true, false, kUniPC_bh2_o3_corr_nolof_10, End::zero);
  SF_UNIPC(bh2, 3, false, true, kUniPC_bh2_o3_nocorr_lof_10, End::zero);
  SF_UNIPC(bh2, 3, false, false, kUniPC_bh2_o3_nocorr_nolof_10, End::zero);
  SF_UNIPC(bh1, 1, true, true, kUniPC_bh1_o1_corr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh1, 1, false, true, kUniPC_bh1_o1_nocorr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh1, 2, true, true, kUniPC_bh1_o2_corr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh1, 2, false, true, kUniPC_bh1_o2_nocorr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh1, 3, true, true, kUniPC_bh1_o3_corr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh1, 3, false, true, kUniPC_bh1_o3_nocorr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh2, 1, true, true, kUniPC_bh2_o1_corr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh2, 1, false, true, kUniPC_bh2_o1_nocorr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh2, 2, true, true, kUniPC_bh2_o2_corr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh2, 2, false, true, kUniPC_bh2_o2_nocorr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh2, 3, true, true, kUniPC_bh2_o3_corr_lof_10_sigmamin_trailing, End::sigma_min);
  SF_UNIPC(bh2, 3, false, true, kUniPC_bh2_o3_nocorr_lof_10_sigmamin_trailing, End::sigma_min);
#undef SF_UNIPC
  MESSAGE("UniPC: largest relative deviation from diffusers ", w.value, " (", w.name, ")");
}

TEST_CASE("reference: UniPC bh1 onto σ = 0 returns the finite limit α x̂ where diffusers returns NaN") {
  // diffusers' last step (order 1 under lower_order_final) computes x_t_ − α_t B(h) · 0 with
  // B(h) = hh = −∞: NaN. The first-order predictor has no residual, so the limit of its formula
  // (σ_t/σ_s) x + α_t (1 − e^{−h}) x̂ at σ_t = 0, α_t = 1 is x̂ at the last grid point itself —
  // here the answer the history holds for that point (after UniC corrected x there).
  for (bool corrector : {true, false}) {
    CAPTURE(corrector);
    REQUIRE(std::isnan(sfref::kUniPC_bh1_o2_corr_lof_10_steps[9][0]));  // diffusers' last row
    const auto table = NoiseSchedule::linear(1000);
    const sftest::GaussianDiffusion oracle{table, 0.3, 0.5};
    auto model = denoiser([&](const T& x, Timestep t, NoCondition c) { return oracle(x, t, c); }, Parameterization::noise);
    const UniPC rule{.order = 2, .variant = UniPCVariant::bh1, .corrector = corrector};
    T last_data, final_x;
    Generator gen(0);
    final_x = Sampler{DiffusionSchedule{table, grid_of(sfref::kUniPC_bh1_o2_corr_lof_10_timesteps, End::zero), rule}}
                  .sample(model, FromState<T>{tensor_of(sfref::kZ), 0}, gen,
                          [&](const StepInfo<T>& info) { if (!info.history.empty()) last_data = info.history.back().data; });
    REQUIRE(ops::all_finite(final_x));
    CHECK(ops::to_vector(final_x) == ops::to_vector(last_data));
    // and the step before matches diffusers' last finite row
    const auto rows = run(rule, sfref::kUniPC_bh1_o2_corr_lof_10_timesteps, End::zero);
    const auto& ref = corrector ? sfref::kUniPC_bh1_o2_corr_lof_10_last_finite : sfref::kUniPC_bh1_o2_nocorr_lof_10_last_finite;
    for (std::size_t j = 0; j < 6; ++j) CHECK(std::abs(rows[8][j] - ref[j]) <= kTolerance);
  }
}

TEST_CASE("reference: DEIS equals diffusers' DEISMultistepScheduler(deis, logrho) at every step") {
  Worst w;
  SF_CASE(w, (DEIS{.order = 1}), kDeis_o1_10, End::sigma_min);
  SF_CASE(w, (DEIS{.order = 1}), kDeis_o1_20, End::sigma_min);
  SF_CASE(w, (DEIS{.order = 2}), kDeis_o2_10, End::sigma_min);
  SF_CASE(w, (DEIS{.order = 2}), kDeis_o2_20, End::sigma_min);
  SF_CASE(w, (DEIS{.order = 3}), kDeis_o3_10, End::sigma_min);
  SF_CASE(w, (DEIS{.order = 3}), kDeis_o3_20, End::sigma_min);
  MESSAGE("DEIS: largest relative deviation from diffusers ", w.value, " (", w.name, ")");
}

#undef SF_CASE
}  // namespace test_reference_diffusers
