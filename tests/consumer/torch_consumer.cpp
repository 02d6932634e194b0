// Proves a consumer can link scoreflow::torch and run the sampler on torch::Tensor.
#include <cstdio>
#include "scoreflow/core.hpp"
#include "scoreflow/torch/tensor.hpp"
using namespace scoreflow;

int main() {
  auto shrink = denoiser([](const torch::Tensor& x, FlowTime, NoCondition) { return -x; }, Parameterization::velocity);
  Generator gen(1);
  const torch::Tensor x = Sampler{FlowSchedule<Euler>{FlowGrid::uniform(10)}}.sample(
      shrink, PureNoise<torch::Tensor>{torch::zeros({4, 1, 8, 8})}, gen);
  std::printf("torch consumer: |x| max %.4f\n", x.abs().max().item<double>());
  return x.abs().max().item<double>() < 1.0 ? 0 : 1;
}
