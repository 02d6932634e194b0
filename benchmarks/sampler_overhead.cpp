// The sampler's own cost per step: a trivial denoiser (returns zeros: no model work), a
// 1×3×64×64 image, the seed's strided DDPM loop. items_per_second = sampler steps per second.
// Names: BM_SamplerOverhead/<backend>/<variant>.
#include <benchmark/benchmark.h>

#include "scoreflow/core.hpp"
#ifdef SCOREFLOW_BENCH_TORCH
#include "scoreflow/torch/tensor.hpp"
#endif

using namespace scoreflow;

namespace {
enum class Variant { no_noise, fixed_small, cfg };

template <class T>
void run_overhead(benchmark::State& state, T proto, Variant variant) {
  auto trivial = denoiser([](const T& x, Timestep, const T&) { return ops::scale(0.0, x); }, Parameterization::noise);
  const auto variance = variant == Variant::no_noise ? StepVariance::none : StepVariance::fixed_small;
  const DiffusionSchedule<DDPMStep> schedule{NoiseSchedule::cosine(), DiffusionGrid::strided(), DDPMStep{variance}};
  const T cond = ops::scale(0.0, proto);
  SamplerOptions options{.check_finite = false};
  Generator gen(0);
  std::size_t steps = 0;
  for (auto _ : state) {
    T x;
    if (variant == Variant::cfg) {
      Sampler s{schedule, ClassifierFree<T>{7.0, cond}, SinglePrompt<T>{cond}, Unconstrained{}, options};
      x = s.sample(trivial, PureNoise<T>{proto}, gen);
    } else {
      Sampler s{schedule, NoGuidance{}, SinglePrompt<T>{cond}, Unconstrained{}, options};
      x = s.sample(trivial, PureNoise<T>{proto}, gen);
    }
    benchmark::DoNotOptimize(x);
    steps += schedule.size() - 1;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(steps));
  state.counters["us_per_step"] = benchmark::Counter(static_cast<double>(steps) * 1e-6,
                                                     benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void xtensor_backend(benchmark::State& state, Variant v) {
  run_overhead(state, xt::xarray<float>(xt::xarray<float>::from_shape({1, 3, 64, 64})), v);
}
BENCHMARK_CAPTURE(xtensor_backend, no_noise, Variant::no_noise)->Name("BM_SamplerOverhead/xtensor/no_noise");
BENCHMARK_CAPTURE(xtensor_backend, fixed_small, Variant::fixed_small)->Name("BM_SamplerOverhead/xtensor/fixed_small");
BENCHMARK_CAPTURE(xtensor_backend, cfg, Variant::cfg)->Name("BM_SamplerOverhead/xtensor/cfg");

#ifdef SCOREFLOW_BENCH_TORCH
void torch_backend(benchmark::State& state, Variant v) {
  torch::InferenceMode guard;
  run_overhead(state, torch::zeros({1, 3, 64, 64}), v);
}
BENCHMARK_CAPTURE(torch_backend, no_noise, Variant::no_noise)->Name("BM_SamplerOverhead/torch/no_noise");
BENCHMARK_CAPTURE(torch_backend, fixed_small, Variant::fixed_small)->Name("BM_SamplerOverhead/torch/fixed_small");
BENCHMARK_CAPTURE(torch_backend, cfg, Variant::cfg)->Name("BM_SamplerOverhead/torch/cfg");
#endif
}  // namespace

BENCHMARK_MAIN();
