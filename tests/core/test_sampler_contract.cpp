// The sampler's contract: step callbacks, cancellation, non-finite detection naming the step,
// shape checks on the denoiser's answer, learned-range variance, option validation.
#include <cmath>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_sampler_contract {

using namespace scoreflow;

namespace {
template <class T>
T proto() { return sftest::zeros<T>({2, 1, 4, 4}); }
DiffusionSchedule<DDPMStep> seed_schedule() { return {NoiseSchedule::cosine(), DiffusionGrid::strided()}; }
}  // namespace

TEST_CASE_TEMPLATE("callbacks see every step; RecordEvery keeps every k-th x (seed §1.4)", T, SCOREFLOW_BACKENDS) {
  auto model = denoiser(sftest::GaussianDiffusion{NoiseSchedule::cosine(), 0.0, 1.0}, Parameterization::noise);
  std::vector<std::size_t> steps, indices;
  std::vector<double> times;
  std::size_t last_calls = 0;
  Generator gen(1);
  Sampler{seed_schedule()}.sample(model, SDEdit<T>{proto<T>(), 10}, gen, [&](const StepInfo<T>& info) {
    steps.push_back(info.step);
    indices.push_back(info.grid_index);
    times.push_back(info.time);
    last_calls = info.model_calls;
    CHECK(info.total == 23);
  });
  REQUIRE(steps.size() == 24);
  CHECK(steps.front() == 0);
  CHECK(indices.front() == 10);
  CHECK(times.front() == 690.0);
  CHECK(indices.back() == 33);
  CHECK(times.back() == 0.0);
  CHECK(last_calls == 23);

  std::vector<T> frames;
  Generator gen2(1);
  Sampler{seed_schedule()}.sample(model, SDEdit<T>{proto<T>(), 10}, gen2, RecordEvery<T>{5, &frames});
  CHECK(frames.size() == 6);  // steps 0, 5, 10, 15, 20 and the last (23)
}

TEST_CASE_TEMPLATE("a callback can cancel; the exception says when", T, SCOREFLOW_BACKENDS) {
  auto model = denoiser(sftest::GaussianFlow{0.0, 1.0}, Parameterization::velocity);
  Generator gen(1);
  int seen = 0;
  CHECK_THROWS_WITH_AS(Sampler{FlowSchedule<Euler>{FlowGrid::uniform(10)}}.sample(
                           model, PureNoise<T>{proto<T>()}, gen,
                           [&](const StepInfo<T>& info) { ++seen; return info.step == 3 ? StepControl::stop : StepControl::proceed; }),
                       doctest::Contains("after step 3 of 10"), cancelled);
  CHECK(seen == 4);
}

TEST_CASE_TEMPLATE("non-finite values and wrong shapes name the step", T, SCOREFLOW_BACKENDS) {
  Generator gen(1);
  SUBCASE("denoiser returns NaN at one step") {
    auto model = denoiser([](const T& x, FlowTime t, NoCondition) {
      return t.value >= 0.5 ? ops::scale(std::nan(""), x) : x;
    }, Parameterization::velocity);
    CHECK_THROWS_WITH_AS(Sampler{FlowSchedule<Euler>{FlowGrid::uniform(10)}}.sample(model, PureNoise<T>{proto<T>()}, gen),
                         doctest::Contains("denoiser at step 6 (t = 0.5"), non_finite_error);
  }
  SUBCASE("the state blows up") {
    // A noise prediction turned into a velocity at t = 0 divides by t: the step, not the
    // denoiser, makes the infinity.
    auto model = denoiser([](const T& x, FlowTime, NoCondition) { return ops::scale(0.0, x); }, Parameterization::noise);
    CHECK_THROWS_WITH_AS(Sampler{FlowSchedule<Euler>{FlowGrid::uniform(10)}}.sample(model, PureNoise<T>{proto<T>()}, gen),
                         doctest::Contains("sampler step 1 (grid index 0 -> 1, t = 0.1"), non_finite_error);
  }
  SUBCASE("denoiser returns the wrong shape") {
    auto model = denoiser([](const T& x, Timestep, NoCondition) { return ops::split_batch(x, 2)[0]; }, Parameterization::noise);
    CHECK_THROWS_WITH_AS(Sampler{seed_schedule()}.sample(model, PureNoise<T>{proto<T>()}, gen),
                         doctest::Contains("denoiser at step 1 (t = 990) returned shape [ 1 1 4 4 ], expected [ 2 1 4 4 ]"),
                         shape_error);
  }
}

TEST_CASE_TEMPLATE("option validation: every bad value is named", T, SCOREFLOW_BACKENDS) {
  auto model = denoiser(sftest::GaussianDiffusion{NoiseSchedule::cosine(), 0.0, 1.0}, Parameterization::noise);
  Generator gen(1);
  CHECK_THROWS_WITH_AS(Sampler{seed_schedule()}.sample(model, SDEdit<T>{proto<T>(), 33}, gen),
                       doctest::Contains("i_start = 33"), invalid_option);
  CHECK_THROWS_WITH_AS(Sampler{seed_schedule()}.sample(model, SDEdit<T>{proto<T>(), 40}, gen),
                       doctest::Contains("i_start = 40"), std::invalid_argument);
  auto ddim_bad = DiffusionSchedule<DDIMStep>{NoiseSchedule::cosine(), DiffusionGrid::strided(), DDIMStep{-1.0}};
  CHECK_THROWS_WITH_AS(Sampler{ddim_bad}.sample(model, PureNoise<T>{proto<T>()}, gen), doctest::Contains("eta = -1"),
                       invalid_option);
  auto learned = DiffusionSchedule<DDPMStep>{NoiseSchedule::cosine(), DiffusionGrid::strided(), DDPMStep{StepVariance::learned_range}};
  CHECK_THROWS_WITH_AS(Sampler{learned}.sample(model, PureNoise<T>{proto<T>()}, gen),
                       doctest::Contains("declares no variance output"), invalid_option);
}

TEST_CASE_TEMPLATE("learned-range variance interpolates log β̃ (v = −1) and log β (v = +1), as IF", T, SCOREFLOW_BACKENDS) {
  const auto table = NoiseSchedule::cosine();
  sftest::GaussianDiffusion oracle{table, 0.1, 0.5};
  for (double v : {-1.0, 1.0}) {
    CAPTURE(v);
    auto with_variance = denoiser([&](const T& x, Timestep t, NoCondition c) {
      const T eps = oracle(x, t, c);
      const std::vector<T> parts{eps, ops::add_scalar(ops::scale(0.0, eps), v)};
      // concatenate along channels: [B, 2C, H, W] as IF's UNet returns
      auto a = ops::to_vector(parts[0]), b = ops::to_vector(parts[1]);
      auto s = ops::shape(x);
      const std::size_t per = a.size() / static_cast<std::size_t>(s[0]);
      std::vector<double> out;
      for (std::size_t n = 0; n < static_cast<std::size_t>(s[0]); ++n) {
        out.insert(out.end(), a.begin() + n * per, a.begin() + (n + 1) * per);
        out.insert(out.end(), b.begin() + n * per, b.begin() + (n + 1) * per);
      }
      s[1] *= 2;
      return ops::from_vector(out, s, x);
    }, Parameterization::noise, VarianceOutput::learned_range);
    auto plain = denoiser(oracle, Parameterization::noise);
    Generator g1(5), g2(5);
    const T learned = Sampler{DiffusionSchedule<DDPMStep>{table, DiffusionGrid::strided(), DDPMStep{StepVariance::learned_range}}}
                          .sample(with_variance, PureNoise<T>{proto<T>()}, g1);
    const auto fixed = v < 0 ? StepVariance::fixed_small : StepVariance::fixed_large;
    const T reference = Sampler{DiffusionSchedule<DDPMStep>{table, DiffusionGrid::strided(), DDPMStep{fixed}}}
                            .sample(plain, PureNoise<T>{proto<T>()}, g2);
    CHECK(sftest::max_abs_diff(learned, reference) <= 100 * sftest::tolerance<T>());
  }
}

TEST_CASE_TEMPLATE("dynamic thresholding keeps x̂₀ within [−1, 1] in the final image", T, SCOREFLOW_BACKENDS) {
  // Data far outside [−1, 1]: without thresholding samples reach ±3; with it they stay in range.
  auto model = denoiser(sftest::GaussianDiffusion{NoiseSchedule::cosine(), 3.0, 0.1}, Parameterization::noise);
  Generator g1(6), g2(6);
  const auto grid = DiffusionGrid::spaced(50);
  const T raw = Sampler{DiffusionSchedule<DDPMStep>{NoiseSchedule::cosine(), grid}}.sample(model, PureNoise<T>{proto<T>()}, g1);
  const T clipped = Sampler{DiffusionSchedule<DDPMStep>{NoiseSchedule::cosine(), grid, DDPMStep{StepVariance::fixed_small, DynamicThreshold{}}}}
                        .sample(model, PureNoise<T>{proto<T>()}, g2);
  CHECK(sftest::moments(raw).mean > 2.5);
  for (double e : ops::to_vector(clipped)) CHECK(std::abs(e) <= 1.0 + 1e-6);
}
}  // namespace test_sampler_contract
