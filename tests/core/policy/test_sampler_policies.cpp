// Exact invariances of guidance, combiners, constraints and starts, and the sampler's contract
// (callbacks, cancellation, non-finite detection, validation).
#include <cmath>
#include <stdexcept>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_sampler_policies {

using namespace scoreflow;
using sftest::make;

namespace {
constexpr std::int64_t kB = 6;

template <class T>
T class_means() {  // a "prompt": one mean per sample
  return make<T>({0.5, -0.5, 1.0, 0.2, -1.0, 0.0}, {kB, 1, 1, 1});
}
template <class T>
T image_proto() { return sftest::zeros<T>({kB, 1, 8, 8}); }

template <class T>
auto cosine_ddpm() { return DiffusionSchedule<DDPMStep>{NoiseSchedule::cosine(), DiffusionGrid::strided(990, 90)}; }
}  // namespace

TEST_CASE_TEMPLATE("CFG: γ = 1 equals the conditional model; batched in one call when possible", T, SCOREFLOW_BACKENDS) {
  int calls = 0;
  auto model = denoiser(sftest::GaussianDiffusion{NoiseSchedule::cosine(), 0.0, 0.4, &calls}, Parameterization::noise);
  const T cond = class_means<T>(), uncond = sftest::zeros<T>({kB, 1, 1, 1});
  Generator g1(10), g2(10);
  const T plain = Sampler{cosine_ddpm<T>(), NoGuidance{}, SinglePrompt<T>{cond}}.sample(model, PureNoise<T>{image_proto<T>()}, g1);
  calls = 0;
  Sampler cfg1{cosine_ddpm<T>(), ClassifierFree<T>{1.0, uncond}, SinglePrompt<T>{cond}};
  const T guided = cfg1.sample(model, PureNoise<T>{image_proto<T>()}, g2);
  CHECK(sftest::max_abs_diff(plain, guided) <= sftest::tolerance<T>());
  CHECK(calls == 11);  // 11 steps, cond + uncond in one batched call each

  // γ = 0 is the unconditional model; larger γ pushes samples past the conditional mean.
  Generator g3(10), g4(10);
  const T unc = Sampler{cosine_ddpm<T>(), NoGuidance{}, SinglePrompt<T>{uncond}}.sample(model, PureNoise<T>{image_proto<T>()}, g3);
  const T cfg0 = Sampler{cosine_ddpm<T>(), ClassifierFree<T>{0.0, uncond}, SinglePrompt<T>{cond}}.sample(
      model, PureNoise<T>{image_proto<T>()}, g4);
  CHECK(sftest::max_abs_diff(unc, cfg0) <= sftest::tolerance<T>());
  CHECK_THROWS_WITH_AS(ClassifierFree<T>(std::nan(""), uncond), doctest::Contains("gamma = nan"), invalid_option);
  CHECK_THROWS_WITH_AS(ClassifierFree<T>(INFINITY, uncond), doctest::Contains("gamma = inf"), invalid_option);
}

namespace {
/// A condition that does not concatenate (no condition_traits): CFG must call per input.
template <class T>
struct Opaque {
  T value;
};

/// value = x · c, learned variance channel = c + 10 x (per pixel; c is one number per sample).
template <class T>
T scaled_with_variance(const T& x, const T& c) {
  const auto vx = ops::to_vector(x), vc = ops::to_vector(c);
  const auto shape = ops::shape(x);
  const std::size_t n = static_cast<std::size_t>(shape[0]), per = vx.size() / n;
  std::vector<double> out;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < per; ++k) out.push_back(vx[i * per + k] * vc[i]);
    for (std::size_t k = 0; k < per; ++k) out.push_back(vc[i] + 10 * vx[i * per + k]);
  }
  return ops::from_vector(out, {shape[0], 2 * shape[1], shape[2], shape[3]}, x);
}

/// scaled_with_variance as a model that SharesInputAcrossConditions: it records the batch of the
/// x it was given and evaluates it under each of the k conditions itself.
template <class T>
struct SharingModel {
  int* calls;
  std::int64_t* input_batch;
  T operator()(const T&, Timestep, const T&) const {
    throw std::logic_error("CFG must call under_conditions on a model that shares its input");
  }
  T under_conditions(const T& x, Timestep, const T& c) const {
    ++*calls;
    *input_batch = ops::batch_size(x);
    const auto k = static_cast<std::size_t>(ops::batch_size(c) / ops::batch_size(x));
    const std::vector<T> copies(k, x);
    return scaled_with_variance(ops::concat_batch(std::span<const T>(copies)), c);
  }
};
}  // namespace

TEST_CASE_TEMPLATE("CFG policy: (1 − γ) ε_u + γ ε_c per input in one batched call (x once to a model sharing it); the variance is the conditional branch's",
                   T, SCOREFLOW_BACKENDS) {
  const double gamma = 3.5;
  const std::vector<T> xs = {make<T>({1, 2, -3, 4}, {1, 1, 2, 2}), make<T>({0.5, -1, 2, 0.25}, {1, 1, 2, 2})};
  const std::vector<double> c_values = {2.0, -1.5};
  const double u_value = 0.5;
  std::vector<T> conds;
  for (double c : c_values) conds.push_back(make<T>({c}, {1, 1, 1, 1}));
  const T uncond = make<T>({u_value}, {1, 1, 1, 1});
  int calls = 0;
  auto batched = denoiser([&](const T& x, Timestep, const T& c) { ++calls; return scaled_with_variance(x, c); },
                          Parameterization::noise, VarianceOutput::learned_range);
  auto one_by_one = denoiser([&](const T& x, Timestep, const Opaque<T>& c) { ++calls; return scaled_with_variance(x, c.value); },
                             Parameterization::noise, VarianceOutput::learned_range);
  const CallSite site{0, 1.0};
  for (std::size_t n : {std::size_t{1}, std::size_t{2}}) {
    CAPTURE(n);
    const std::span<const T> inputs(xs.data(), n);
    const std::vector<T> some_conds(conds.begin(), conds.begin() + static_cast<std::ptrdiff_t>(n));
    calls = 0;
    const auto a = ClassifierFree<T>{gamma, uncond}(
        ModelCall<decltype(batched), T, Timestep, T>(batched, Timestep{10}, site, true), inputs, some_conds);
    CHECK(calls == 1);
    std::vector<Opaque<T>> opaque;
    for (const auto& c : some_conds) opaque.push_back({c});
    calls = 0;
    const auto b = ClassifierFree<Opaque<T>>{gamma, {uncond}}(
        ModelCall<decltype(one_by_one), T, Timestep, Opaque<T>>(one_by_one, Timestep{10}, site, true), inputs, opaque);
    CHECK(calls == static_cast<int>(2 * n));
    std::int64_t input_batch = 0;
    auto sharing = denoiser(SharingModel<T>{&calls, &input_batch}, Parameterization::noise, VarianceOutput::learned_range);
    calls = 0;
    const auto s = ClassifierFree<T>{gamma, uncond}(
        ModelCall<decltype(sharing), T, Timestep, T>(sharing, Timestep{10}, site, true), inputs, some_conds);
    CHECK(calls == 1);
    CHECK(input_batch == static_cast<std::int64_t>(n));  // x passed once, not [x, x]
    REQUIRE(s.size() == n);
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(ops::to_vector(s[i].value) == ops::to_vector(a[i].value));
      REQUIRE(s[i].variance.has_value());
      CHECK(ops::to_vector(*s[i].variance) == ops::to_vector(*a[i].variance));
    }
    REQUIRE(a.size() == n);
    REQUIRE(b.size() == n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto x = ops::to_vector(xs[i]);
      const auto va = ops::to_vector(a[i].value), vb = ops::to_vector(b[i].value);
      REQUIRE(a[i].variance.has_value());
      REQUIRE(b[i].variance.has_value());
      const auto sa = ops::to_vector(*a[i].variance), sb = ops::to_vector(*b[i].variance);
      for (std::size_t k = 0; k < x.size(); ++k) {
        const double want = (1 - gamma) * x[k] * u_value + gamma * x[k] * c_values[i];
        CHECK(va[k] == doctest::Approx(want).epsilon(1e-6));
        CHECK(vb[k] == doctest::Approx(want).epsilon(1e-6));
        CHECK(sa[k] == doctest::Approx(c_values[i] + 10 * x[k]).epsilon(1e-6));
        CHECK(sb[k] == doctest::Approx(c_values[i] + 10 * x[k]).epsilon(1e-6));
      }
    }
  }
}

TEST_CASE_TEMPLATE("tensor backend: repeat_batch and axpby_halves equal concat and split + axpby", T, SCOREFLOW_BACKENDS) {
  const T x = make<T>({1, -2, 3, 0.25, 5, 6, -7, 8}, {2, 1, 2, 2});
  const std::vector<T> three = {x, x, x};
  CHECK(ops::to_vector(ops::repeat_batch(x, 3)) == ops::to_vector(ops::concat_batch(std::span<const T>(three))));
  CHECK(ops::shape(ops::repeat_batch(x, 3)) == Shape{6, 1, 2, 2});
  const auto halves = ops::split_batch(x, 2);
  CHECK(ops::to_vector(ops::axpby_halves(0.7, -1.3, x)) == ops::to_vector(ops::axpby(0.7, halves[0], -1.3, halves[1])));
  CHECK(ops::shape(ops::axpby_halves(0.7, -1.3, x)) == Shape{1, 1, 2, 2});
  CHECK_THROWS_AS(ops::axpby_halves(1.0, 1.0, make<T>({1, 2, 3}, {3, 1})), shape_error);
}

TEST_CASE("CFG: a condition type that cannot be concatenated costs two calls per step") {
  using T = xt::xarray<double>;
  int calls = 0;
  sftest::GaussianDiffusion oracle{NoiseSchedule::cosine(), 0.0, 0.4, &calls};
  auto model = denoiser([&](const T& x, Timestep t, double mean) {
    return oracle.answer(x, t, std::vector<double>(static_cast<std::size_t>(ops::batch_size(x)), mean));
  }, Parameterization::noise);
  Generator gen(1);
  Sampler cfg{cosine_ddpm<T>(), ClassifierFree<double>{5.0, 0.0}, SinglePrompt<double>{0.7}};
  const T x = cfg.sample(model, PureNoise<T>{image_proto<T>()}, gen);
  CHECK(calls == 22);
  // Guidance γ = 5 toward mean 0.7 from 0: the samples' mean moves well past 0.7 (x₀-space extrapolation).
  CHECK(sftest::moments(x).mean > 0.7);
}

TEST_CASE_TEMPLATE("combiners: a prompt combined with itself equals plain sampling", T, SCOREFLOW_BACKENDS) {
  int calls = 0;
  auto model = denoiser(sftest::GaussianDiffusion{NoiseSchedule::cosine(), 0.0, 0.4, &calls}, Parameterization::noise);
  const T cond = class_means<T>(), uncond = sftest::zeros<T>({kB, 1, 1, 1});
  const auto schedule = cosine_ddpm<T>();
  const ClassifierFree<T> cfg{3.0, uncond};
  auto run = [&](auto combiner) {
    Generator gen(20);
    return Sampler{schedule, cfg, combiner}.sample(model, PureNoise<T>{image_proto<T>()}, gen);
  };
  const T plain = run(SinglePrompt<T>{cond});
  SUBCASE("anagram with identity views") {
    calls = 0;
    const T a = run(Anagram<T>({{cond, View::identity()}, {cond, View::identity()}}));
    CHECK(sftest::max_abs_diff(plain, a) <= sftest::tolerance<T>());
    CHECK(calls == 11);  // 2 prompts × (cond + uncond) in one call per step
  }
  SUBCASE("anagram with views the oracle is equivariant to (it is pixelwise)") {
    const T a = run(Anagram<T>({{cond, View::flip_vertical()}, {cond, View::rotate90()}, {cond, View::transpose()}}));
    CHECK(sftest::max_abs_diff(plain, a) <= sftest::tolerance<T>());
  }
  SUBCASE("hybrid of one prompt: low pass + high pass") {
    const T h = run(Factorized<T>::hybrid(cond, cond, GaussianBlur(7, 2.0)));
    CHECK(sftest::max_abs_diff(plain, h) <= 10 * sftest::tolerance<T>());
  }
  SUBCASE("filters that do not sum to the identity are refused") {
    CHECK_THROWS_WITH_AS(Factorized<T>({{cond, Filter::low_pass()}, {cond, Filter::low_pass()}}),
                         doctest::Contains("sum to the identity"), invalid_option);
  }
}

TEST_CASE_TEMPLATE("anagram: the flipped prompt's answer is flipped back (seed §1.8)", T, SCOREFLOW_BACKENDS) {
  // A denoiser that answers with its own input as "noise" and marks the top row: the combined
  // prediction is the average of the identity answer and the flip∘model∘flip answer.
  const std::vector<double> img = {1, 2, 3, 4, 5, 6};
  const T x = make<T>(img, {1, 1, 3, 2});
  auto model = denoiser([](const T& in, Timestep, const T& c) { return ops::multiply(in, c); }, Parameterization::noise);
  const T c1 = sftest::full<T>({1, 1, 3, 2}, 1.0), c2 = sftest::full<T>({1, 1, 3, 2}, 3.0);
  Anagram<T> anagram({{c1, View::identity()}, {c2, View::flip_vertical()}});
  const auto inputs = anagram.inputs(x);
  auto answers = NoGuidance{}(ModelCall<decltype(model), T, Timestep, T>(model, Timestep{0}, CallSite{0, 0}, true),
                              std::span<const T>(inputs), anagram.conditions());
  const auto combined = ops::to_vector(anagram.combine(std::move(answers)).value);
  for (std::size_t i = 0; i < img.size(); ++i) CHECK(combined[i] == doctest::Approx((img[i] + 3 * img[i]) / 2));
}

TEST_CASE_TEMPLATE("inpainting: m = 1 is unconstrained, m = 0 returns the original (seed §1.7.2)", T, SCOREFLOW_BACKENDS) {
  auto model = denoiser(sftest::GaussianDiffusion{NoiseSchedule::cosine(), 0.2, 0.4}, Parameterization::noise);
  std::vector<double> pixels(kB * 64);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = std::cos(0.3 * static_cast<double>(i));
  const T original = make<T>(pixels, {kB, 1, 8, 8});
  const T ones = sftest::full<T>({kB, 1, 8, 8}, 1.0), zeros = sftest::zeros<T>({kB, 1, 8, 8});
  // A grid ending at −1 (clean): forward(x_orig, −1) is x_orig itself.
  const DiffusionSchedule<DDPMStep> schedule{NoiseSchedule::cosine(), DiffusionGrid::spaced(20)};
  Generator g1(30), g2(30), g3(30);
  const T plain = Sampler{schedule}.sample(model, PureNoise<T>{original}, g1);
  const T all_new = Sampler{schedule, NoGuidance{}, SinglePrompt{}, Inpaint<T>{original, ones}}.sample(
      model, PureNoise<T>{original}, g2);
  CHECK(sftest::max_abs_diff(plain, all_new) <= sftest::tolerance<T>());
  const T all_kept = Sampler{schedule, NoGuidance{}, SinglePrompt{}, Inpaint<T>{original, zeros}}.sample(
      model, PureNoise<T>{original}, g3);
  CHECK(sftest::max_abs_diff(all_kept, original) <= sftest::tolerance<T>());

  // On the seed's grid ending at t = 0 the kept region is the original noised to t = 0.
  Generator g4(31);
  const T seed_grid = Sampler{cosine_ddpm<T>(), NoGuidance{}, SinglePrompt{}, Inpaint<T>{original, zeros}}.sample(
      model, PureNoise<T>{original}, g4);
  const double sd = std::sqrt(1 - NoiseSchedule::cosine().alpha_bar(0));
  CHECK(sftest::max_abs_diff(seed_grid, ops::scale(std::sqrt(NoiseSchedule::cosine().alpha_bar(0)), original)) < 6 * sd);

  CHECK_THROWS_AS(Inpaint<T>(original, sftest::zeros<T>({kB, 1, 8, 7})), shape_error);
  CHECK_THROWS_WITH_AS(Inpaint<T>(original, ones, RePaint{0, 1}), doctest::Contains("jump_length = 0"), invalid_option);
}

TEST_CASE_TEMPLATE("RePaint: jump schedule and resampling keep the known region", T, SCOREFLOW_BACKENDS) {
  const T img = sftest::full<T>({1, 1, 4, 4}, 0.5), mask = sftest::zeros<T>({1, 1, 4, 4});
  // n = 6 grid points from 0, jump length 2, 2 samples per jump (RePaint's get_schedule_jump).
  CHECK(Inpaint<T>(img, mask, RePaint{2, 2}).path(6, 0) ==
        std::vector<std::size_t>{0, 1, 2, 3, 2, 1, 2, 3, 4, 5, 4, 3, 4, 5});
  CHECK(Inpaint<T>(img, mask, RePaint{1, 1}).path(4, 1) == std::vector<std::size_t>{1, 2, 3});
  auto model = denoiser(sftest::GaussianFlow{0.0, 1.0}, Parameterization::velocity);
  Generator gen(1);
  std::size_t steps = 0;
  const T out = Sampler{FlowSchedule<Euler>{FlowGrid::uniform(10)}, NoGuidance{}, SinglePrompt{},
                        Inpaint<T>{img, mask, RePaint{3, 3}}}
                    .sample(model, PureNoise<T>{img}, gen, [&](const StepInfo<T>& info) { steps = info.total; });
  CHECK(steps > 10);
  CHECK(sftest::max_abs_diff(out, img) <= sftest::tolerance<T>());
}

TEST_CASE_TEMPLATE("re-noising has the marginal of the noisier grid point", T, SCOREFLOW_BACKENDS) {
  const T data = sftest::full<T>({4000, 1, 1, 1}, 0.5);
  const DiffusionSchedule<DDPMStep> diff{NoiseSchedule::cosine(), DiffusionGrid::strided()};
  const FlowSchedule<Euler> flow{FlowGrid::uniform(10)};
  Generator gen(2);
  const T d = diff.renoise(diff.forward(data, 20, ops::randn_like(data, gen)), 20, 5, ops::randn_like(data, gen));
  const double a5 = diff.alpha_bar(5);
  CHECK(sftest::moments(d).mean == doctest::Approx(0.5 * std::sqrt(a5)).epsilon(0.1));
  CHECK(sftest::moments(d).variance == doctest::Approx(1 - a5).epsilon(0.1));
  const T f = flow.renoise(flow.forward(data, 8, ops::randn_like(data, gen)), 8, 3, ops::randn_like(data, gen));
  CHECK(sftest::moments(f).mean == doctest::Approx(0.5 * 0.3).epsilon(0.15));
  CHECK(sftest::moments(f).variance == doctest::Approx(0.49).epsilon(0.1));
}

TEST_CASE_TEMPLATE("SDEdit equals the iterative denoiser started from the noised original (seed §1.7)", T, SCOREFLOW_BACKENDS) {
  auto model = denoiser(sftest::GaussianDiffusion{NoiseSchedule::cosine(), 0.2, 0.4}, Parameterization::noise);
  const auto schedule = cosine_ddpm<T>();  // stochastic DDPM steps: the step noise must match too
  const T original = sftest::full<T>({2, 1, 8, 8}, 0.7);
  for (std::size_t i_start : {1u, 3u, 5u, 7u, 10u}) {
    CAPTURE(i_start);
    Generator g1(40), g2(40);
    const T sdedit = Sampler{schedule}.sample(model, SDEdit<T>{original, i_start}, g1);
    // The start's stream is the first split of the caller's generator.
    Generator probe(40);
    Generator start_stream(probe.next_u64());
    const T noisy = schedule.forward(original, i_start, ops::randn_like(original, start_stream));
    const T iterative = Sampler{schedule}.sample(model, FromState<T>{noisy, i_start}, g2);
    CHECK(sftest::max_abs_diff(sdedit, iterative) <= sftest::tolerance<T>());
  }
}
}  // namespace test_sampler_policies
