#include <cstdio>
#include "scoreflow/core.hpp"
using namespace scoreflow;
using Array = xt::xarray<double>;

int main() {
  // Data N(2, 0.5²): its exact flow-matching velocity u(x, t) = (E[x₁ | x_t] − x) / (1 − t).
  auto velocity = [](const Array& x, FlowTime t, NoCondition) -> Array {
    const double s2 = 0.25, d = (1 - t.value) * (1 - t.value) + t.value * t.value * s2;
    return (2.0 * (1 - t.value) + x * (t.value * s2 - 1 + t.value)) / d;
  };
  auto model = denoiser(velocity, Parameterization::velocity);
  Sampler sampler{FlowSchedule<Heun>{FlowGrid::uniform(20)}};  // 40 model calls
  Generator gen(42);
  const Array x = sampler.sample(model, PureNoise<Array>{Array::from_shape({10000, 1})}, gen);
  const double mean = xt::mean(x)(), var = xt::variance(x)();
  std::printf("mean %.3f (2.000)  std %.3f (0.500)\n", mean, std::sqrt(var));
  return std::abs(mean - 2.0) < 0.03 && std::abs(std::sqrt(var) - 0.5) < 0.03 ? 0 : 1;
}
