// The samplers against closed-form denoisers: with the exact optimum as the model, every sampler
// must reproduce the data distribution (README, Design, "Closed-form references").
//
// Tolerances: N = 2000 samples of 4 independent coordinates give 8000 draws of N(μ, s²), so the
// sample mean has standard error s/√8000 and the sample variance s²√(2/7999). We allow 4 standard
// errors; at these step counts each solver's discretisation bias fits inside that (no test here
// needs a bias_allowance), and the order test at the end measures the flow solvers' error directly.
#include <cmath>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_sampler_oracles {

using namespace scoreflow;

namespace {
constexpr double kMu = 0.3, kS = 0.5;
constexpr std::int64_t kN = 2000;

template <class T>
void check_gaussian(const T& x, double bias_allowance = 0.0) {
  const auto m = sftest::moments(x);
  const double n = static_cast<double>(kN * 4);
  CHECK(std::abs(m.mean - kMu) < 4 * kS / std::sqrt(n) + bias_allowance);
  CHECK(std::abs(m.variance - kS * kS) < 4 * kS * kS * std::sqrt(2 / (n - 1)) + bias_allowance);
}

template <class T>
T prototype() { return sftest::zeros<T>({kN, 1, 2, 2}); }
}  // namespace

TEST_CASE_TEMPLATE("DDPM step (seed §1.4) samples N(μ, s²) with the exact Gaussian denoiser", T, SCOREFLOW_BACKENDS) {
  for (const auto& table : {NoiseSchedule::cosine(), NoiseSchedule::linear()}) {
    auto model = denoiser(sftest::GaussianDiffusion{table, kMu, kS}, Parameterization::noise);
    Sampler sampler{DiffusionSchedule<DDPMStep>{table, DiffusionGrid::spaced(1000)}};
    Generator gen(1);
    check_gaussian(sampler.sample(model, PureNoise<T>{prototype<T>()}, gen));
  }
}

TEST_CASE_TEMPLATE("DDIM (η = 0 and η = 1) samples N(μ, s²) with the exact Gaussian denoiser", T, SCOREFLOW_BACKENDS) {
  const auto table = NoiseSchedule::cosine();
  auto model = denoiser(sftest::GaussianDiffusion{table, kMu, kS}, Parameterization::noise);
  for (double eta : {0.0, 1.0}) {
    CAPTURE(eta);
    Sampler sampler{DiffusionSchedule<DDIMStep>{table, DiffusionGrid::spaced(eta == 0 ? 100 : 1000), DDIMStep{eta}}};
    Generator gen(2);
    check_gaussian(sampler.sample(model, PureNoise<T>{prototype<T>()}, gen));
  }
}

TEST_CASE_TEMPLATE("flow solvers (Euler 300, midpoint 50, Heun 50) sample N(μ, s²)", T, SCOREFLOW_BACKENDS) {
  auto model = denoiser(sftest::GaussianFlow{kMu, kS}, Parameterization::velocity);
  Generator g1(3), g2(3), g3(3);
  check_gaussian(Sampler{FlowSchedule<Euler>{FlowGrid::uniform(300)}}.sample(model, PureNoise<T>{prototype<T>()}, g1));
  check_gaussian(Sampler{FlowSchedule<Midpoint>{FlowGrid::uniform(50)}}.sample(model, PureNoise<T>{prototype<T>()}, g2));
  check_gaussian(Sampler{FlowSchedule<Heun>{FlowGrid::uniform(50)}}.sample(model, PureNoise<T>{prototype<T>()}, g3));
}

TEST_CASE_TEMPLATE("finite data set: samples land on data points", T, SCOREFLOW_BACKENDS) {
  sftest::FiniteSet data{{{0.8, 0.8, 0.8, 0.8}, {-0.8, -0.8, -0.8, -0.8}, {0.8, -0.8, 0.8, -0.8}}};
  auto model = denoiser(data, Parameterization::sample);
  const T proto = sftest::zeros<T>({500, 1, 2, 2});
  auto fraction_close = [&](const T& x) {
    const auto d = data.nearest_distances(x);
    return static_cast<double>(std::count_if(d.begin(), d.end(), [](double v) { return v < 0.05; })) / d.size();
  };
  Generator gen(4);
  // The seed's strided loop (990, 960, …, 0): ends at t = 0, √(1 − ᾱ₀) ≈ 0.0064 away from data.
  CHECK(fraction_close(Sampler{DiffusionSchedule<DDPMStep>{data.table, DiffusionGrid::strided()}}.sample(
            model, PureNoise<T>{proto}, gen)) > 0.97);
  CHECK(fraction_close(Sampler{DiffusionSchedule<DDIMStep>{data.table, DiffusionGrid::spaced(50)}}.sample(
            model, PureNoise<T>{proto}, gen)) > 0.97);
  CHECK(fraction_close(Sampler{FlowSchedule<Euler>{FlowGrid::uniform(100)}}.sample(model, PureNoise<T>{proto}, gen)) >
        0.97);
  CHECK(fraction_close(Sampler{FlowSchedule<Heun>{FlowGrid::uniform(30)}}.sample(model, PureNoise<T>{proto}, gen)) >
        0.97);
}

TEST_CASE("flow solver order: Euler is first order, midpoint and Heun second order") {
  // For Gaussian data the exact flow maps noise x₀ to μ + s x₀; measure the error of the end point.
  using T = xt::xarray<double>;
  auto model = denoiser(sftest::GaussianFlow{1.0, kS}, Parameterization::velocity);
  Generator gen(5);
  const T noise = ops::randn_like(sftest::zeros<T>({64, 1, 1, 1}), gen);
  const T exact = ops::add_scalar(ops::scale(kS, noise), 1.0);
  auto error = [&]<class Solver>(Solver solver, int steps) {
    Generator unused(0);
    const T x = Sampler{FlowSchedule<Solver>{FlowGrid::uniform(steps), solver}}.sample(model, FromState<T>{noise, 0}, unused);
    return sftest::max_abs_diff(x, exact);
  };
  const double euler_order = std::log2(error(Euler{}, 40) / error(Euler{}, 80));
  const double midpoint_order = std::log2(error(Midpoint{}, 40) / error(Midpoint{}, 80));
  const double heun_order = std::log2(error(Heun{}, 40) / error(Heun{}, 80));
  const double full_heun_order = std::log2(error(Heun{false}, 40) / error(Heun{false}, 80));
  MESSAGE("measured orders: Euler ", euler_order, ", midpoint ", midpoint_order, ", Heun ", heun_order,
          ", Heun without the final Euler step ", full_heun_order);
  CHECK(euler_order == doctest::Approx(1.0).epsilon(0.15));
  CHECK(heun_order == doctest::Approx(2.0).epsilon(0.15));
  CHECK(full_heun_order >= 1.85);
  // Midpoint measures order 3 here: for this affine field its h² error term cancels. At least 2.
  CHECK(midpoint_order >= 1.85);
  // Fewer model calls for the same error: the seed's 300 Euler calls are beaten by Heun with 40
  // calls and by midpoint with 20.
  const double seed_error = error(Euler{}, 300);
  CHECK(error(Heun{}, 20) < seed_error);
  CHECK(error(Midpoint{}, 10) < seed_error);
}
}  // namespace test_sampler_oracles
