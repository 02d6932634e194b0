// The guidance methods of policy/guidance.hpp: their formulas on recorded inputs, and their
// exact invariances inside the sampler — γ = 1 is the conditional model for every rule (and costs
// only the conditional half of the batch), the interval and the schedule switch guidance off
// exactly where they say, per-prompt scales, and data-space guidance that gives the same samples
// whatever the model predicts (noise, data or velocity), on diffusion and flow, with several solvers.
#include <cmath>
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_guidance_methods {

using namespace scoreflow;
using sftest::make;

namespace {
constexpr std::int64_t kB = 3;

/// Data N(μ, s² I) with the mean image μ given as the condition, answered as any prediction kind
/// (written from the definitions, not from the library's conversions): the exact data estimate
/// x̂ = μ + k (x − α μ), k = α s² / (α² s² + σ²), then
///   noise ε̂ = (x − α x̂)/σ;  VP velocity v = (α x − x̂)/σ;  flow velocity u = (x̂ − x)/σ.
struct KindField {
  NoiseSchedule table;
  Parameterization kind;
  double s = 0.6;
  std::vector<std::int64_t>* batches = nullptr;  // the batch of every call

  template <class T>
  T answer(const T& x, double alpha, double sigma, bool flow, const T& mean) const {
    if (batches) batches->push_back(ops::batch_size(x));
    auto v = ops::to_vector(x);
    const auto m = ops::to_vector(mean);
    REQUIRE(m.size() == v.size());
    const double k = alpha * s * s / (alpha * alpha * s * s + sigma * sigma);
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double xh = m[i] + k * (v[i] - alpha * m[i]);
      switch (kind) {
        case Parameterization::sample: v[i] = xh; break;
        case Parameterization::noise: v[i] = (v[i] - alpha * xh) / sigma; break;
        case Parameterization::velocity: v[i] = flow ? (xh - v[i]) / sigma : (alpha * v[i] - xh) / sigma; break;
      }
    }
    return ops::from_vector(v, ops::shape(x), x);
  }
  template <class T>
  T operator()(const T& x, Timestep t, const T& mean) const {
    const double a = table.alpha_bar(t.value);
    return answer(x, std::sqrt(a), std::sqrt(1.0 - a), false, mean);
  }
  template <class T>
  T operator()(const T& x, FlowTime t, const T& mean) const {
    return answer(x, t.value, 1.0 - t.value, true, mean);
  }
};

/// A mean image per sample; prompts differ in pattern, not only in offset (an offset alone leaves
/// every per-sample standard deviation unchanged).
template <class T>
T mean_image(double offset) {
  std::vector<double> v;
  for (int i = 0; i < kB * 16; ++i)
    v.push_back(offset + 0.7 * std::sin((0.37 + offset) * i) - 0.2 * ((i / 4) % 2));
  return make<T>(v, {kB, 1, 4, 4});
}
template <class T>
T proto() { return sftest::zeros<T>({kB, 1, 4, 4}); }

template <class T, class Schedule, class Guidance>
T run(const Schedule& schedule, const Guidance& guidance, const KindField& field, std::uint64_t seed = 7) {
  auto model = denoiser(field, field.kind);
  Generator gen(seed);
  Sampler sampler{schedule, guidance, SinglePrompt<T>{mean_image<T>(0.4)}};
  return sampler.sample(model, PureNoise<T>{proto<T>()}, gen);
}

auto ddim() { return DiffusionSchedule<DDIMStep>{NoiseSchedule::cosine(), DiffusionGrid::spaced(12)}; }
auto dpmpp() { return DiffusionSchedule<DPMSolverPP>{NoiseSchedule::cosine(), DiffusionGrid::spaced(10)}; }
auto flow_euler() { return FlowSchedule<Euler>{FlowGrid::uniform(10)}; }
auto flow_unipc() { return FlowSchedule<UniPC>{FlowGrid::uniform(8)}; }
}  // namespace

TEST_CASE_TEMPLATE("guidance rules: γ = 1 is the conditional model and evaluates only the conditional half", T,
                   SCOREFLOW_BACKENDS) {
  std::vector<std::int64_t> batches;
  const KindField field{NoiseSchedule::cosine(), Parameterization::noise, 0.6, &batches};
  const T uncond = mean_image<T>(-0.3);
  const T plain = run<T>(ddim(), NoGuidance{}, field);
  const auto check = [&](const auto& guidance) {
    batches.clear();
    const T guided = run<T>(ddim(), guidance, field);
    CHECK(sftest::max_abs_diff(plain, guided) <= sftest::tolerance<T>());
    CHECK(batches.size() == 12);
    for (auto b : batches) CHECK(b == kB);
  };
  check(ClassifierFree<T>{1.0, uncond});
  check(ClassifierFree<T, RescaledCfg>{1.0, uncond, RescaledCfg{0.7}});
  check(ClassifierFree<T, ProjectedCfg>{1.0, uncond, ProjectedCfg{0.0, -0.5, 2.0}});
  check(apg(1.0, uncond));
  check(ClassifierFree<T, ZeroStarCfg>{1.0, uncond, ZeroStarCfg{0}});
  // A weight of 0 switches guidance off for any γ.
  check(ClassifierFree<T>{6.0, uncond, {}, GuidanceOptions{.schedule = GuidanceSchedule::piecewise_linear({{0.0, 0.0}})}});

  // γ ≠ 1: one batched call per step on 2·B rows.
  batches.clear();
  run<T>(ddim(), ClassifierFree<T, RescaledCfg>{5.0, uncond, RescaledCfg{0.7}}, field);
  REQUIRE(batches.size() == 12);
  for (auto b : batches) CHECK(b == 2 * kB);
}

TEST_CASE_TEMPLATE("guidance interval: on exactly for σ in (σ_lo, σ_hi], the conditional model elsewhere", T,
                   SCOREFLOW_BACKENDS) {
  std::vector<std::int64_t> batches;
  const KindField field{NoiseSchedule::cosine(), Parameterization::velocity, 0.6, &batches};
  const T uncond = mean_image<T>(-0.3);
  const T cond_only = run<T>(flow_euler(), NoGuidance{}, field);
  const T full = run<T>(flow_euler(), ClassifierFree<T>{4.0, uncond}, field);
  batches.clear();
  const T never = run<T>(flow_euler(), ClassifierFree<T>{4.0, uncond, {}, GuidanceOptions{.interval = GuidanceInterval{100.0, 200.0}}}, field);
  CHECK(sftest::max_abs_diff(never, cond_only) <= sftest::tolerance<T>());
  for (auto b : batches) CHECK(b == kB);
  const T always = run<T>(flow_euler(), ClassifierFree<T>{4.0, uncond, {}, GuidanceOptions{.interval = GuidanceInterval{}}}, field);
  CHECK(sftest::max_abs_diff(always, full) <= sftest::tolerance<T>());

  // Euler on t = 0, 0.1, …, 0.9: flow times [0.3, 0.7) are the four calls at t = 0.3 … 0.6.
  batches.clear();
  const T part = run<T>(flow_euler(), ClassifierFree<T>{4.0, uncond, {}, GuidanceOptions{.interval = GuidanceInterval::flow_times(0.3, 0.7)}}, field);
  REQUIRE(batches.size() == 10);
  for (std::size_t k = 0; k < 10; ++k) CHECK(batches[k] == (k >= 3 && k <= 6 ? 2 * kB : kB));
  CHECK(sftest::max_abs_diff(part, full) > 1e-3);
  CHECK(sftest::max_abs_diff(part, cond_only) > 1e-3);

  const auto sdxl = GuidanceInterval{0.28, 5.42};  // half-open: (σ_lo, σ_hi]
  CHECK(sdxl.contains({1.0, 5.42}));
  CHECK_FALSE(sdxl.contains({1.0, 0.28}));
  CHECK_THROWS_WITH_AS(GuidanceInterval::flow_times(0.7, 0.3), doctest::Contains("t_lo"), invalid_option);
  CHECK_THROWS_WITH_AS((ClassifierFree<T>{4.0, uncond, {}, GuidanceOptions{.interval = GuidanceInterval{2.0, 1.0}}}),
                       doctest::Contains("sigma_lo"), invalid_option);
}

TEST_CASE_TEMPLATE("guidance schedule and per-prompt scales", T, SCOREFLOW_BACKENDS) {
  const KindField field{NoiseSchedule::cosine(), Parameterization::noise};
  const T uncond = mean_image<T>(-0.3);
  // Weight ½ of γ = 5 is γ = 3.
  const T half = run<T>(ddim(), ClassifierFree<T>{5.0, uncond, {}, GuidanceOptions{.schedule = GuidanceSchedule::piecewise_linear({{0.0, 0.5}})}}, field);
  const T three = run<T>(ddim(), ClassifierFree<T>{3.0, uncond}, field);
  CHECK(sftest::max_abs_diff(half, three) <= 10 * sftest::tolerance<T>());

  // The weight at each step's progress, piecewise linear and constant beyond the knots.
  const auto ramp = GuidanceSchedule::piecewise_linear({{0.25, 0.0}, {0.75, 1.0}});
  CHECK(ramp.weight(0.0) == 0.0);
  CHECK(ramp.weight(0.5) == doctest::Approx(0.5));
  CHECK(ramp.weight(1.0) == 1.0);
  const ClassifierFree<T> ramped{5.0, uncond, {}, GuidanceOptions{.schedule = GuidanceSchedule::linear(0.0, 1.0)}};
  GuidanceContext c{.step = 1, .total_steps = 5};
  CHECK(ramped.effective_scale(c, 0) == 1.0);
  c.step = 3;
  CHECK(ramped.effective_scale(c, 0) == doctest::Approx(3.0));
  c.step = 5;
  CHECK(ramped.effective_scale(c, 0) == doctest::Approx(5.0));
  CHECK_THROWS_WITH_AS(GuidanceSchedule::piecewise_linear({}), doctest::Contains("must not be empty"), invalid_option);
  CHECK_THROWS_WITH_AS(GuidanceSchedule::piecewise_linear({{0.5, 1.0}, {0.5, 2.0}}), doctest::Contains("must increase"), invalid_option);
  CHECK_THROWS_WITH_AS(GuidanceSchedule::piecewise_linear({{1.5, 1.0}}), doctest::Contains("[0, 1]"), invalid_option);

  // Per-prompt γ: two identity-view parts of one prompt at γ 2 and 6 average to γ 4 (linear rule),
  // in one batched call per step; the policy's own γ is not used.
  std::vector<std::int64_t> batches;
  KindField counted = field;
  counted.batches = &batches;
  auto model = denoiser(counted, counted.kind);
  const T prompt = mean_image<T>(0.4);
  Anagram<T> pair({{prompt, View::identity(), 2.0}, {prompt, View::identity(), 6.0}});
  Generator g1(7), g2(7);
  const T mixed = Sampler{ddim(), ClassifierFree<T>{100.0, uncond}, pair}.sample(model, PureNoise<T>{proto<T>()}, g1);
  CHECK(batches.size() == 12);
  for (auto b : batches) CHECK(b == 4 * kB);
  const T four = Sampler{ddim(), ClassifierFree<T>{4.0, uncond}, SinglePrompt<T>{prompt}}.sample(model, PureNoise<T>{proto<T>()}, g2);
  CHECK(sftest::max_abs_diff(mixed, four) <= 10 * sftest::tolerance<T>());

  // A negative prompt is the unconditional branch replaced.
  const T negative = run<T>(ddim(), ClassifierFree<T>::negative_prompt(3.0, uncond), field);
  CHECK(sftest::max_abs_diff(negative, three) == 0.0);
}

TEST_CASE_TEMPLATE("data-space guidance gives the same samples whatever the model predicts", T, SCOREFLOW_BACKENDS) {
  const T uncond = mean_image<T>(-0.3);
  const auto same_for_every_kind = [&](const auto& schedule, const auto& guidance, std::vector<Parameterization> kinds) {
    std::vector<T> out;
    for (auto kind : kinds) out.push_back(run<T>(schedule, guidance, KindField{NoiseSchedule::cosine(), kind}));
    for (std::size_t k = 1; k < out.size(); ++k) CHECK(sftest::max_abs_diff(out[0], out[k]) <= 200 * sftest::tolerance<T>());
    return out[0];
  };
  const std::vector<Parameterization> all{Parameterization::noise, Parameterization::sample, Parameterization::velocity};
  // The flow starts at t = 0, where a noise prediction determines no data estimate.
  const std::vector<Parameterization> flow_kinds{Parameterization::sample, Parameterization::velocity};
  const GuidanceOptions data{.space = GuidanceSpace::data};
  for (int family = 0; family < 2; ++family) {
    const auto check_rules = [&](const auto& schedule, const std::vector<Parameterization>& kinds) {
      const T rescaled = same_for_every_kind(schedule, ClassifierFree<T, RescaledCfg>{5.0, uncond, RescaledCfg{0.7}, data}, kinds);
      const T projected = same_for_every_kind(schedule, apg(5.0, uncond, ProjectedCfg{0.0, -0.5, 3.0}), kinds);
      const T zero_star = same_for_every_kind(schedule, ClassifierFree<T, ZeroStarCfg>{5.0, uncond, ZeroStarCfg{1}, data}, kinds);
      // Linear guidance is the same in both spaces.
      const T linear_data = same_for_every_kind(schedule, ClassifierFree<T>{5.0, uncond, {}, data}, kinds);
      const T linear = run<T>(schedule, ClassifierFree<T>{5.0, uncond}, KindField{NoiseSchedule::cosine(), kinds[0]});
      CHECK(sftest::max_abs_diff(linear, linear_data) <= 200 * sftest::tolerance<T>());
      // and the rules differ from it (each does something).
      CHECK(sftest::max_abs_diff(rescaled, linear) > 1e-3);
      CHECK(sftest::max_abs_diff(projected, linear) > 1e-3);
      CHECK(sftest::max_abs_diff(zero_star, linear) > 1e-3);
    };
    if (family == 0) {
      check_rules(ddim(), all);
      check_rules(dpmpp(), all);
    } else {
      check_rules(flow_euler(), flow_kinds);
      check_rules(flow_unipc(), flow_kinds);
    }
  }
  CHECK_THROWS_WITH_AS(run<T>(flow_euler(), ClassifierFree<T, RescaledCfg>{5.0, uncond, RescaledCfg{0.7}, data},
                              KindField{NoiseSchedule::cosine(), Parameterization::noise}),
                       doctest::Contains("guidance in data space"), invalid_option);
}

TEST_CASE_TEMPLATE("APG's momentum lives for one run; CFG-Zero*'s zero-init keeps the flow still", T, SCOREFLOW_BACKENDS) {
  const T uncond = mean_image<T>(-0.3);
  const KindField field{NoiseSchedule::cosine(), Parameterization::velocity};
  const auto guidance = apg(5.0, uncond, ProjectedCfg{0.0, -0.5, 0.0});
  auto model = denoiser(field, field.kind);
  Sampler sampler{flow_euler(), guidance, SinglePrompt<T>{mean_image<T>(0.4)}};
  Generator g1(3), g2(3);
  const T first = sampler.sample(model, PureNoise<T>{proto<T>()}, g1);
  const T second = sampler.sample(model, PureNoise<T>{proto<T>()}, g2);
  CHECK(sftest::max_abs_diff(first, second) == 0.0);
  const T no_momentum = run<T>(flow_euler(), apg(5.0, uncond, ProjectedCfg{0.0, 0.0, 0.0}), field, 3);
  CHECK(sftest::max_abs_diff(first, no_momentum) > 1e-4);

  // Zero-init: the first two Euler steps see velocity 0, so x after step 2 is the start noise.
  std::vector<T> frames;
  Generator g3(5);
  Sampler zero{flow_euler(), ClassifierFree<T, ZeroStarCfg>{5.0, uncond, ZeroStarCfg{2}}, SinglePrompt<T>{mean_image<T>(0.4)}};
  zero.sample(model, PureNoise<T>{proto<T>()}, g3, [&](const StepInfo<T>& info) { frames.push_back(info.x); });
  REQUIRE(frames.size() == 11);
  CHECK(sftest::max_abs_diff(frames[0], frames[2]) == 0.0);
  CHECK(sftest::max_abs_diff(frames[2], frames[3]) > 1e-3);
}

TEST_CASE_TEMPLATE("guidance rules against their formulas, per sample", T, SCOREFLOW_BACKENDS) {
  // Two samples of 1×2×2; every formula recomputed here from the papers' definitions in doubles.
  const std::vector<double> uv{0.3, -1.2, 0.8, 0.1, -0.4, 0.9, 1.5, -0.7};
  const std::vector<double> cv{0.5, -0.6, 1.1, 0.4, 0.2, 1.3, 0.6, -1.1};
  const T u = make<T>(uv, {2, 1, 2, 2}), c = make<T>(cv, {2, 1, 2, 2});
  const double g = 4.0;
  const GuidanceContext ctx{.step = 2, .total_steps = 5};
  const auto per_sample = [](const std::vector<double>& v, int n) { return std::vector<double>(v.begin() + 4 * n, v.begin() + 4 * n + 4); };
  const auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  };
  const auto stdev = [](const std::vector<double>& a) {
    double m = 0, q = 0;
    for (double v : a) m += v / a.size();
    for (double v : a) q += (v - m) * (v - m) / (a.size() - 1);
    return std::sqrt(q);
  };
  std::vector<double> want_rescale, want_apg, want_zero;
  for (int n = 0; n < 2; ++n) {
    const auto un = per_sample(uv, n), cn = per_sample(cv, n);
    std::vector<double> cfg(4), diff(4);
    for (int i = 0; i < 4; ++i) cfg[i] = un[i] + g * (cn[i] - un[i]);
    for (int i = 0; i < 4; ++i) diff[i] = cn[i] - un[i];
    const double ratio = stdev(cn) / stdev(cfg);
    for (int i = 0; i < 4; ++i) want_rescale.push_back(0.7 * ratio * cfg[i] + 0.3 * cfg[i]);
    // APG, η = 0.25, no momentum, r = 0.5: clip Δ, project on c.
    const double norm = std::sqrt(dot(diff, diff));
    for (auto& d : diff) d *= std::min(1.0, 0.5 / norm);
    const double p = dot(diff, cn) / dot(cn, cn);
    for (int i = 0; i < 4; ++i) want_apg.push_back(cn[i] + (g - 1) * ((diff[i] - p * cn[i]) + 0.25 * p * cn[i]));
    const double s = dot(cn, un) / (dot(un, un) + 1e-8);
    for (int i = 0; i < 4; ++i) want_zero.push_back(s * un[i] + g * (cn[i] - s * un[i]));
  }
  const auto close = [](const T& got, const std::vector<double>& want) {
    const auto v = ops::to_vector(got);
    REQUIRE(v.size() == want.size());
    for (std::size_t i = 0; i < v.size(); ++i) CHECK(v[i] == doctest::Approx(want[i]).epsilon(1e-5));
  };
  close(RescaledCfg{0.7}(u, c, g, ctx), want_rescale);
  std::optional<T> none;
  close(ProjectedCfg{0.25, 0.0, 0.5}(u, c, g, ctx, none), want_apg);
  close(ZeroStarCfg{1}(u, c, g, ctx), want_zero);
  CHECK(ops::to_vector(ZeroStarCfg{2}(u, c, g, ctx)) == std::vector<double>(8, 0.0));
}

TEST_CASE_TEMPLATE("guidance rules equal diffusers' numbers on recorded inputs", T, SCOREFLOW_BACKENDS) {
  // Inputs and outputs (17 significant digits) from a float64 transcription of diffusers' guiders
  // (commit 58eb52c0: guiders/guider_utils.py rescale_noise_cfg, adaptive_projected_guidance.py
  // normalized_guidance and MomentumBuffer, classifier_free_zero_star_guidance.py), shape 2×1×2×2.
  const auto t = [](std::vector<double> v) { return make<T>(v, {2, 1, 2, 2}); };
  const T c0 = t({0.8123, -1.2457, 0.3519, 1.9061, -0.4472, 0.6038, -1.0519, 0.2544});
  const T u0 = t({-0.6031, 0.4127, 1.0975, 0.2893, -0.3018, 0.7461, -0.8127, 0.1039});
  const T c1 = t({0.5210, -0.9874, 0.7742, 1.4408, -0.6627, 0.3315, -1.2290, 0.5872});
  const T u1 = t({-0.2488, 0.6143, 0.9051, 0.1177, -0.5104, 0.4982, -0.9963, 0.3367});
  const T c2 = t({0.3376, -0.5519, 1.0628, 1.1187, -0.8841, 0.1206, -1.3352, 0.7935});
  const T u2 = t({0.1049, 0.7735, 0.8816, -0.1624, -0.7215, 0.2679, -1.1028, 0.5581});
  const double eps = std::is_same_v<T, xt::xarray<double>> ? 1e-12 : 2e-6;
  const auto close = [&](const T& got, const std::vector<double>& want) {
    const auto v = ops::to_vector(got);
    REQUIRE(v.size() == want.size());
    for (std::size_t i = 0; i < v.size(); ++i) CHECK(v[i] == doctest::Approx(want[i]).epsilon(eps));
  };
  const GuidanceContext ctx{.step = 2, .total_steps = 10};
  close(LinearCfg{}(u0, c0, 5.0, ctx), {6.4739000000000004, -7.8792999999999997, -2.6304999999999996, 8.3733000000000004,
                                        -1.0287999999999999, 0.034600000000000075, -2.0087000000000002, 0.85640000000000016});
  close(RescaledCfg{0.7}(u0, c0, 5.0, ctx),
        {2.7156285216865403, -3.305156368020012, -1.1034246476307086, 3.5123762030055934, -0.73423227125959656,
         0.024693270398116349, -1.433565671927636, 0.61119412627013869});
  close(RescaledCfg{1.0}(u0, c0, 5.0, ctx),
        {1.1049407452664859, -1.3448090971714457, -0.44896378232958351, 1.4291231471508468, -0.60798895894228078,
         0.020447529140166176, -1.1870795313251941, 0.50610589467162659});
  // APG, paper form c + (γ − 1)(Δ⊥ + ηΔ∥): γ = 5, η = 0, β = −0.5, r = 2.5; three successive calls
  // on one momentum buffer (call 1 clips sample 0; calls 2 and 3 must see the unclipped average).
  const ProjectedCfg apg_rule{0.0, -0.5, 2.5};
  std::optional<T> average;
  close(apg_rule(u0, c0, 5.0, ctx, average),
        {2.9227537607885639, -2.66263441517044, -3.5609059162786534, 0.80307267251041248, -0.75157860672572663,
         -0.33969847329831449, -1.3566222191744008, 0.69869623781535095});
  REQUIRE(average.has_value());
  close(*average, {1.4154, -1.6584000000000001, -0.74559999999999993, 1.6168, -0.14539999999999997,
                   -0.14229999999999998, -0.23920000000000008, 0.15050000000000002});
  close(apg_rule(u1, c1, 5.0, ctx, average),
        {-0.14672873733386615, -2.3411514102812676, 0.38044324674879193, 0.9660908162175923, -0.69115599831332764,
         -0.19573762872963907, -1.1436888515573864, 1.03128870108584});
  close(apg_rule(u2, c2, 5.0, ctx, average),
        {0.27803765121664314, -2.8925195488935582, -1.4229693847362317, 2.34351096094804, -0.88084528337168977,
         -0.34494852259402148, -1.2918564894897409, 0.94081556651446197});
  // CFG-Zero*: α = ⟨c, u⟩/(‖u‖² + 1e−8) per sample (−0.0364…, 1.112…), then α u + γ(c − α u).
  close(ZeroStarCfg{1}(u0, c0, 5.0, ctx),
        {3.9736574235391693, -6.1683895186446946, 1.9193528066087913, 9.5726370541703165, -0.89357925437893138,
         -0.29968826477097166, -1.6445717694955524, 0.8098478612656429});
  const GuidanceContext first{.step = 1, .total_steps = 10};
  CHECK(ops::to_vector(ZeroStarCfg{1}(u0, c0, 5.0, first)) == std::vector<double>(8, 0.0));
}
}  // namespace test_guidance_methods
