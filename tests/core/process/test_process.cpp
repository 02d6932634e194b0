#include <cmath>

#include "backends.hpp"

namespace test_process {

using namespace scoreflow;
using sftest::make;

TEST_CASE_TEMPLATE("diffusion process: forward, one-step estimate and conversions", T, SCOREFLOW_BACKENDS) {
  const double tol = sftest::tolerance<T>() * 10;
  const T x0 = make<T>({0.5, -0.25, 1.0, 0.0}, {1, 1, 2, 2});
  const T eps = make<T>({1.0, 2.0, -1.0, 0.3}, {1, 1, 2, 2});
  const double a = 0.3;
  // Seed §1.1: x_t = √ā x₀ + √(1−ā) ε, elementwise.
  const T xt = diffusion::forward(x0, a, eps);
  auto v = ops::to_vector(xt);
  CHECK(v[0] == doctest::Approx(std::sqrt(0.3) * 0.5 + std::sqrt(0.7) * 1.0));
  // Seed §1.3: the one-step estimate inverts it exactly given the true noise.
  CHECK(sftest::max_abs_diff(diffusion::sample_from_noise(xt, eps, a), x0) < tol);
  CHECK(sftest::max_abs_diff(diffusion::noise_from_sample(xt, x0, a), eps) < tol);
  // v-prediction round trips.
  const T vel = diffusion::velocity_from(eps, x0, a);
  CHECK(sftest::max_abs_diff(diffusion::sample_from_velocity(xt, vel, a), x0) < tol);
  CHECK(sftest::max_abs_diff(diffusion::noise_from_velocity(xt, vel, a), eps) < tol);
  // Any declared parameterization gives the same x₀ and ε.
  for (auto [kind, value] : {std::pair{Parameterization::noise, eps}, {Parameterization::sample, x0},
                             {Parameterization::velocity, vel}}) {
    const Prediction<T> p{value, kind};
    CHECK(sftest::max_abs_diff(diffusion::to_sample(p, xt, a), x0) < tol);
    CHECK(sftest::max_abs_diff(diffusion::to_noise(p, xt, a), eps) < tol);
  }
}

TEST_CASE_TEMPLATE("flow process: x_t = (1 − t) x₀ + t x₁ and velocity conversions", T, SCOREFLOW_BACKENDS) {
  const double tol = sftest::tolerance<T>() * 10;
  const T data = make<T>({0.5, -0.25, 1.0, 0.0}, {1, 1, 2, 2});
  const T noise = make<T>({1.0, 2.0, -1.0, 0.3}, {1, 1, 2, 2});
  const double t = 0.3;
  const T xt = flow::forward(data, t, noise);
  CHECK(ops::to_vector(xt)[0] == doctest::Approx(0.7 * 1.0 + 0.3 * 0.5));
  const T u = ops::sub(data, noise);  // seed Part B §2: u = x₁ − x₀
  for (auto [kind, value] : {std::pair{Parameterization::velocity, u}, {Parameterization::sample, data},
                             {Parameterization::noise, noise}}) {
    CHECK(sftest::max_abs_diff(flow::to_velocity(Prediction<T>{value, kind}, xt, t), u) < tol);
  }
  CHECK(sftest::max_abs_diff(flow::data_from_velocity(xt, u, t), data) < tol);
  CHECK(sftest::max_abs_diff(flow::noise_from_velocity(xt, u, t), noise) < tol);
}

TEST_CASE_TEMPLATE("dynamic thresholding as DeepFloyd IF (ratio 0.95, max 1.5)", T, SCOREFLOW_BACKENDS) {
  // Sample 0 is inside [−1, 1]: s clamps to 1, nothing changes. Sample 1 has |x| quantile 3 → s = 1.5.
  std::vector<double> v = {0.1, -0.9, 0.5, 0.2, 3, -3, 3, 3};
  const T x = make<T>(v, {2, 1, 2, 2});
  auto y = ops::to_vector(DynamicThreshold{}(x));
  CHECK(y[1] == doctest::Approx(-0.9).epsilon(1e-6));
  CHECK(y[4] == doctest::Approx(1.0));
  CHECK(y[5] == doctest::Approx(-1.0));
  CHECK_THROWS_WITH_AS(DynamicThreshold(1.5), doctest::Contains("ratio = 1.5"), invalid_option);
  CHECK_THROWS_WITH_AS(DynamicThreshold(0.95, 0.5), doctest::Contains("max_value = 0.5"), invalid_option);
}

TEST_CASE_TEMPLATE("process formulas with one coefficient per batch row equal the per-row formulas exactly",
                   T, SCOREFLOW_BACKENDS) {
  // A training batch: every sample at its own time (ops::axpby_rows; torch has a fast path, xtensor
  // takes the generic default). Each row must be bit-identical to the one-value formula on that row.
  Generator gen(11);
  const T x = ops::randn_like(make<T>(std::vector<double>(3 * 2 * 4, 0.0), {3, 2, 2, 2}), gen);
  const T e = ops::randn_like(x, gen);
  const std::vector<double> alpha_bar{0.9, 0.35, 0.02}, t{0.1, 0.5, 0.97};
  const auto xs = ops::split_batch(x, 3), es = ops::split_batch(e, 3);
  const auto rows_of = [](const T& whole) { return ops::split_batch(whole, 3); };
  const auto fwd = rows_of(diffusion::forward(x, alpha_bar, e));
  const auto vel = rows_of(diffusion::velocity_from(e, x, alpha_bar));
  const auto flw = rows_of(flow::forward(x, t, e));
  for (std::size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(ops::to_vector(fwd[i]) == ops::to_vector(diffusion::forward(xs[i], alpha_bar[i], es[i])));
    CHECK(ops::to_vector(vel[i]) == ops::to_vector(diffusion::velocity_from(es[i], xs[i], alpha_bar[i])));
    CHECK(ops::to_vector(flw[i]) == ops::to_vector(flow::forward(xs[i], t[i], es[i])));
  }
  CHECK_THROWS_WITH_AS(diffusion::forward(x, std::vector<double>{0.5, 0.5}, e),
                       doctest::Contains("2 and 2 coefficients for a batch of 3"), shape_error);
}

TEST_CASE_TEMPLATE("one formulation: every schedule's data_estimate recovers the data from each prediction kind", T,
                   SCOREFLOW_BACKENDS) {
  // x = α·data + σ·ε at a grid point; a model that answers the exact ε, data or velocity of its
  // family must give the data back through the schedule's data_estimate (the solvers' only view).
  const double tol = sftest::tolerance<T>() * 10;
  const T data = make<T>({0.5, -0.25, 1.0, 0.0}, {1, 1, 2, 2});
  const T eps = make<T>({1.0, 2.0, -1.0, 0.3}, {1, 1, 2, 2});
  const auto check = [&](const auto& schedule, std::size_t i, const T& velocity) {
    const NoiseLevel l = schedule.level(i);
    const T x = schedule.forward(data, i, eps);
    CHECK(sftest::max_abs_diff(x, ops::axpby(l.alpha, data, l.sigma, eps)) < tol);
    CHECK(sftest::max_abs_diff(schedule.data_estimate(Prediction<T>{data, Parameterization::sample}, x, l), data) < tol);
    CHECK(sftest::max_abs_diff(schedule.data_estimate(Prediction<T>{eps, Parameterization::noise}, x, l), data) < tol);
    CHECK(sftest::max_abs_diff(schedule.data_estimate(Prediction<T>{velocity, Parameterization::velocity}, x, l), data) <
          tol);
    // ε̂ implied by the data estimate (what DEIS and iPNDM step with).
    CHECK(sftest::max_abs_diff(scoreflow::detail::noise_estimate(x, data, l), eps) < tol);
  };
  SUBCASE("VP diffusion: α = √ᾱ, σ = √(1 − ᾱ), v = α ε − σ x₀") {
    const DiffusionSchedule schedule{NoiseSchedule::linear(), DiffusionGrid::spaced(10), DDIMStep{}};
    for (std::size_t i : {0u, 4u, 9u}) {
      const double a = schedule.alpha_bar(i);
      CHECK(schedule.level(i).alpha == doctest::Approx(std::sqrt(a)).epsilon(1e-15));
      CHECK(schedule.level(i).sigma == doctest::Approx(std::sqrt(1 - a)).epsilon(1e-15));
      check(schedule, i, diffusion::velocity_from(eps, data, a));
    }
    CHECK(schedule.level(10).is_clean());  // grid end −1: ᾱ = 1, λ = +∞
    CHECK(std::isinf(schedule.level(10).lambda()));
  }
  SUBCASE("the seed's flow: α = t, σ = 1 − t, x̂₁ = x + (1 − t) u with u = x₁ − x₀") {
    const FlowSchedule schedule{FlowGrid::uniform(8), Euler{}};
    for (std::size_t i : {1u, 4u, 7u}) {
      CHECK(schedule.level(i).alpha == schedule.time(i).value);
      CHECK(schedule.level(i).sigma == 1.0 - schedule.time(i).value);
      check(schedule, i, ops::sub(data, eps));
      // λ and back: the level at λ(t) is t again (ContinuousPath).
      const double t = schedule.time(i).value;
      CHECK(schedule.time_at(schedule.level_at_lambda(schedule.level(i).lambda())).value == doctest::Approx(t).epsilon(1e-14));
    }
    CHECK(schedule.level(0).is_pure_noise());
  }
  SUBCASE("VE σ: α = 1, x = x₀ + σ ε; a velocity is refused by name") {
    const SigmaSchedule schedule{SigmaGrid({80.0, 2.0, 0.5, 0.0}), KEuler{}};
    for (std::size_t i : {0u, 1u, 2u}) {
      const NoiseLevel l = schedule.level(i);
      const T x = schedule.forward(data, i, eps);
      CHECK(sftest::max_abs_diff(schedule.data_estimate(Prediction<T>{eps, Parameterization::noise}, x, l), data) < tol * 80);
      CHECK(sftest::max_abs_diff(schedule.data_estimate(Prediction<T>{data, Parameterization::sample}, x, l), data) < tol);
      CHECK_THROWS_WITH_AS(schedule.data_estimate(Prediction<T>{eps, Parameterization::velocity}, x, l),
                           doctest::Contains("velocity has no convention"), invalid_option);
    }
  }
}
}  // namespace test_process
