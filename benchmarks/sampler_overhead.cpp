// The sampler's own cost per step: a trivial denoiser (returns zeros: no model work), a
// 1×3×64×64 image, the seed's strided DDPM loop (33 steps). items_per_second = sampler steps per second.
//
//   BM_SamplerOverhead/<backend>/<variant>  the library's Sampler
//   BM_MinimalLoop/<backend>/<variant>      the same arithmetic written by hand: the same trivial
//                                           denoiser, the same noise draws from the same streams,
//                                           one fused pass per step into preallocated buffers
//   BM_NormalDraw/12288                     the 12,288 Gaussian draws of one step alone
//   BM_SamplerOverhead/<backend>/dpmpp_2m   the multistep rule DPM-Solver++(2M) through the loop's
//   BM_SamplerOverhead/<backend>/unipc_bh2  SolverHistory (UniPC: with its corrector), and
//   BM_MinimalLoop/<backend>/dpmpp_2m       DPM-Solver++(2M) by hand: one fused pass per step
//                                           over x, x̂ and the previous x̂ in preallocated buffers
//
// The sampler's loop overhead is BM_SamplerOverhead − BM_MinimalLoop (us_per_step counters);
// both include the noise draws, which are work the step has to do. The minimal loop's result is
// checked against the sampler's (counter max_abs_diff, expected 0).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "scoreflow/core.hpp"
#ifdef SCOREFLOW_BENCH_TORCH
#include "scoreflow/torch/tensor.hpp"
#endif

using namespace scoreflow;

namespace {
enum class Variant { no_noise, fixed_small, cfg };
constexpr double kGamma = 7.0;

template <class T>
auto trivial_denoiser() {
  return denoiser([](const T& x, Timestep, const T&) { return ops::scale(0.0, x); }, Parameterization::noise);
}

DiffusionSchedule<DDPMStep> schedule_for(Variant v) {
  return {NoiseSchedule::cosine(), DiffusionGrid::strided(),
          DDPMStep{v == Variant::no_noise ? StepVariance::none : StepVariance::fixed_small}};
}

template <class T>
T run_sampler(const T& proto, Variant variant, Generator& gen) {
  static auto trivial = trivial_denoiser<T>();
  static const auto schedule_nn = schedule_for(Variant::no_noise);
  static const auto schedule_fs = schedule_for(Variant::fixed_small);
  const auto& schedule = variant == Variant::no_noise ? schedule_nn : schedule_fs;
  const T cond = ops::scale(0.0, proto);
  SamplerOptions options{.check_finite = false};
  if (variant == Variant::cfg) {
    Sampler s{schedule, ClassifierFree<T>{kGamma, cond}, SinglePrompt<T>{cond}, Unconstrained{}, options};
    return s.sample(trivial, PureNoise<T>{proto}, gen);
  }
  Sampler s{schedule, NoGuidance{}, SinglePrompt<T>{cond}, Unconstrained{}, options};
  return s.sample(trivial, PureNoise<T>{proto}, gen);
}

// Raw float storage of a contiguous CPU tensor, per backend.
float* data_of(xt::xarray<float>& x) { return x.data(); }
const float* data_of(const xt::xarray<float>& x) { return x.data(); }
#ifdef SCOREFLOW_BENCH_TORCH
float* data_of(torch::Tensor& x) { return x.data_ptr<float>(); }
const float* data_of(const torch::Tensor& x) { return x.data_ptr<float>(); }
#endif

/// The DDPM loop by hand: same denoiser calls, same coefficients (rounded to float as the
/// backends do), same draws; x̂₀, the posterior mean and the noise fused into one pass.
template <class T>
T run_minimal(const T& proto, Variant variant, Generator& gen, std::vector<float>& z) {
  static auto trivial = trivial_denoiser<T>();
  static const auto schedule = schedule_for(variant == Variant::no_noise ? Variant::no_noise : Variant::fixed_small);
  const T cond = ops::scale(0.0, proto);
  const auto n = z.size();
  Generator start_gen(gen.next_u64());
  Generator policy_gen(gen.next_u64());  // drawn to keep the streams as the sampler's
  T x = ops::randn_like(proto, start_gen);
  float* px = data_of(x);
  for (std::size_t i = 0; i + 1 < schedule.size(); ++i) {
    const DiffusionStepContext c{schedule.grid[i], schedule.grid[i + 1], schedule.alpha_bar(i), schedule.alpha_bar(i + 1)};
    const double r = 1.0 / std::sqrt(c.alpha_bar);
    const auto a0 = static_cast<float>(r), a1 = static_cast<float>(-std::sqrt(1.0 - c.alpha_bar) * r);
    const auto c0 = static_cast<float>(std::sqrt(c.alpha_bar_prev) * c.beta() / (1.0 - c.alpha_bar));
    const auto c1 = static_cast<float>(std::sqrt(c.alpha()) * (1.0 - c.alpha_bar_prev) / (1.0 - c.alpha_bar));
    const bool noisy = variant != Variant::no_noise && c.t.value > 0;
    const auto sigma = static_cast<float>(std::sqrt(c.posterior_variance()));
    if (variant == Variant::cfg) {
      const T ec = trivial.fn(x, c.t, cond);
      const T eu = trivial.fn(x, c.t, cond);
      const float* pc = data_of(ec);
      const float* pu = data_of(eu);
      const auto g0 = static_cast<float>(1.0 - kGamma), g1 = static_cast<float>(kGamma);
      gen.fill_normal(std::span<float>(z));
      for (std::size_t k = 0; k < n; ++k) {
        const float eps = g0 * pu[k] + g1 * pc[k];
        const float x0 = a0 * px[k] + a1 * eps;
        px[k] = 1.0f * (c0 * x0 + c1 * px[k]) + sigma * z[k];
      }
    } else {
      const T e = trivial.fn(x, c.t, cond);
      const float* pe = data_of(e);
      if (noisy) {
        gen.fill_normal(std::span<float>(z));
        for (std::size_t k = 0; k < n; ++k) {
          const float x0 = a0 * px[k] + a1 * pe[k];
          px[k] = 1.0f * (c0 * x0 + c1 * px[k]) + sigma * z[k];
        }
      } else {
        for (std::size_t k = 0; k < n; ++k) px[k] = c0 * (a0 * px[k] + a1 * pe[k]) + c1 * px[k];
      }
    }
  }
  return x;
}

template <class T>
double max_abs_diff(const T& a, const T& b) {
  const auto va = ops::to_vector(a), vb = ops::to_vector(b);
  double m = 0;
  for (std::size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

void set_counters(benchmark::State& state, std::size_t steps) {
  state.SetItemsProcessed(static_cast<std::int64_t>(steps));
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(steps) * 1e-6, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

template <class T>
void run_overhead(benchmark::State& state, T proto, Variant variant) {
  Generator gen(0);
  std::size_t steps = 0;
  const std::size_t per_run = schedule_for(variant).size() - 1;
  for (auto _ : state) {
    T x = run_sampler(proto, variant, gen);
    benchmark::DoNotOptimize(x);
    steps += per_run;
  }
  set_counters(state, steps);
}

template <class T>
void run_minimal_bench(benchmark::State& state, T proto, Variant variant) {
  std::vector<float> z(static_cast<std::size_t>(ops::to_vector(proto).size()));
  {  // same result as the sampler, from the same seed
    Generator g1(5), g2(5);
    const T a = run_sampler(proto, variant, g1);
    const T b = run_minimal(proto, variant, g2, z);
    state.counters["max_abs_diff"] = max_abs_diff(a, b);
  }
  Generator gen(0);
  std::size_t steps = 0;
  const std::size_t per_run = schedule_for(variant).size() - 1;
  for (auto _ : state) {
    T x = run_minimal(proto, variant, gen, z);
    benchmark::DoNotOptimize(x);
    steps += per_run;
  }
  set_counters(state, steps);
}

// ---- multistep rules: the same 33-step strided grid, the trivial ε-denoiser ----
enum class Multistep { dpmpp_2m, unipc_bh2 };

template <class T>
T run_multistep(const T& proto, Multistep rule, Generator& gen) {
  static auto trivial = trivial_denoiser<T>();
  const T cond = ops::scale(0.0, proto);
  SamplerOptions options{.check_finite = false};
  if (rule == Multistep::dpmpp_2m) {
    static const DiffusionSchedule<DPMSolverPP> schedule{NoiseSchedule::cosine(), DiffusionGrid::strided()};
    return Sampler{schedule, NoGuidance{}, SinglePrompt<T>{cond}, Unconstrained{}, options}.sample(trivial, PureNoise<T>{proto}, gen);
  }
  static const DiffusionSchedule<UniPC> schedule{NoiseSchedule::cosine(), DiffusionGrid::strided()};
  return Sampler{schedule, NoGuidance{}, SinglePrompt<T>{cond}, Unconstrained{}, options}.sample(trivial, PureNoise<T>{proto}, gen);
}

/// DPM-Solver++(2M) by hand (Lu et al. 2022, Alg. 2, diffusers' midpoint form): x̂ = (x − σ ε̂)/α
/// and x' = (σ'/σ) x + α'(1 − e^{−h}) (x̂ + (x̂ − x̂_prev)/(2 r)) fused into one pass; order 1 on the
/// first step (33 steps ≥ 15 and a last point with σ > 0: no lowering at the end).
template <class T>
T run_minimal_dpmpp(const T& proto, Generator& gen, std::vector<float>& prev) {
  static auto trivial = trivial_denoiser<T>();
  static const DiffusionSchedule<DPMSolverPP> schedule{NoiseSchedule::cosine(), DiffusionGrid::strided()};
  const T cond = ops::scale(0.0, proto);
  Generator start_gen(gen.next_u64());
  Generator policy_gen(gen.next_u64());
  T x = ops::randn_like(proto, start_gen);
  float* px = data_of(x);
  const auto n = prev.size();
  for (std::size_t i = 0; i + 1 < schedule.size(); ++i) {
    const NoiseLevel s0 = schedule.level(i), t = schedule.level(i + 1);
    const T e = trivial.fn(x, schedule.time(i), cond);
    const float* pe = data_of(e);
    const double h = t.lambda() - s0.lambda(), phi = -std::expm1(-h);
    const auto a0 = static_cast<float>(1.0 / s0.alpha), a1 = static_cast<float>(-s0.sigma / s0.alpha);
    const auto cx = static_cast<float>(t.sigma / s0.sigma), cm = static_cast<float>(t.alpha * phi);
    if (i == 0) {
      for (std::size_t k = 0; k < n; ++k) {
        const float m0 = a0 * px[k] + a1 * pe[k];
        prev[k] = m0;
        px[k] = cx * px[k] + cm * m0;
      }
    } else {
      const double r0 = (s0.lambda() - schedule.level(i - 1).lambda()) / h;
      const auto cd = static_cast<float>(0.5 * t.alpha * phi / r0);
      for (std::size_t k = 0; k < n; ++k) {
        const float m0 = a0 * px[k] + a1 * pe[k];
        px[k] = cx * px[k] + cm * m0 + cd * (m0 - prev[k]);
        prev[k] = m0;
      }
    }
  }
  return x;
}

template <class T>
void run_multistep_bench(benchmark::State& state, T proto, Multistep rule) {
  Generator gen(0);
  std::size_t steps = 0;
  for (auto _ : state) {
    T x = run_multistep(proto, rule, gen);
    benchmark::DoNotOptimize(x);
    steps += 33;
  }
  set_counters(state, steps);
}

template <class T>
void run_minimal_dpmpp_bench(benchmark::State& state, T proto) {
  std::vector<float> prev(static_cast<std::size_t>(ops::to_vector(proto).size()));
  {
    Generator g1(5), g2(5);
    const T a = run_multistep(proto, Multistep::dpmpp_2m, g1);
    const T b = run_minimal_dpmpp(proto, g2, prev);
    state.counters["max_abs_diff"] = max_abs_diff(a, b);
  }
  Generator gen(0);
  std::size_t steps = 0;
  for (auto _ : state) {
    T x = run_minimal_dpmpp(proto, gen, prev);
    benchmark::DoNotOptimize(x);
    steps += 33;
  }
  set_counters(state, steps);
}

void normal_draw(benchmark::State& state) {
  std::vector<float> z(12288);
  Generator gen(0);
  for (auto _ : state) {
    gen.fill_normal(std::span<float>(z));
    benchmark::DoNotOptimize(z.data());
  }
  state.SetItemsProcessed(state.iterations() * 12288);
}
BENCHMARK(normal_draw)->Name("BM_NormalDraw/12288");

xt::xarray<float> xt_proto() { return xt::xarray<float>::from_shape({1, 3, 64, 64}); }
void xtensor_backend(benchmark::State& state, Variant v) { run_overhead(state, xt_proto(), v); }
void xtensor_minimal(benchmark::State& state, Variant v) { run_minimal_bench(state, xt_proto(), v); }
BENCHMARK_CAPTURE(xtensor_backend, no_noise, Variant::no_noise)->Name("BM_SamplerOverhead/xtensor/no_noise");
BENCHMARK_CAPTURE(xtensor_backend, fixed_small, Variant::fixed_small)->Name("BM_SamplerOverhead/xtensor/fixed_small");
BENCHMARK_CAPTURE(xtensor_backend, cfg, Variant::cfg)->Name("BM_SamplerOverhead/xtensor/cfg");
BENCHMARK_CAPTURE(xtensor_minimal, no_noise, Variant::no_noise)->Name("BM_MinimalLoop/xtensor/no_noise");
BENCHMARK_CAPTURE(xtensor_minimal, fixed_small, Variant::fixed_small)->Name("BM_MinimalLoop/xtensor/fixed_small");
BENCHMARK_CAPTURE(xtensor_minimal, cfg, Variant::cfg)->Name("BM_MinimalLoop/xtensor/cfg");
void xtensor_multistep(benchmark::State& state, Multistep m) { run_multistep_bench(state, xt_proto(), m); }
void xtensor_minimal_dpmpp(benchmark::State& state) { run_minimal_dpmpp_bench(state, xt_proto()); }
BENCHMARK_CAPTURE(xtensor_multistep, dpmpp_2m, Multistep::dpmpp_2m)->Name("BM_SamplerOverhead/xtensor/dpmpp_2m");
BENCHMARK_CAPTURE(xtensor_multistep, unipc_bh2, Multistep::unipc_bh2)->Name("BM_SamplerOverhead/xtensor/unipc_bh2");
BENCHMARK(xtensor_minimal_dpmpp)->Name("BM_MinimalLoop/xtensor/dpmpp_2m");

#ifdef SCOREFLOW_BENCH_TORCH
void torch_backend(benchmark::State& state, Variant v) {
  torch::InferenceMode guard;
  run_overhead(state, torch::zeros({1, 3, 64, 64}), v);
}
void torch_minimal(benchmark::State& state, Variant v) {
  torch::InferenceMode guard;
  run_minimal_bench(state, torch::zeros({1, 3, 64, 64}), v);
}
BENCHMARK_CAPTURE(torch_backend, no_noise, Variant::no_noise)->Name("BM_SamplerOverhead/torch/no_noise");
BENCHMARK_CAPTURE(torch_backend, fixed_small, Variant::fixed_small)->Name("BM_SamplerOverhead/torch/fixed_small");
BENCHMARK_CAPTURE(torch_backend, cfg, Variant::cfg)->Name("BM_SamplerOverhead/torch/cfg");
BENCHMARK_CAPTURE(torch_minimal, no_noise, Variant::no_noise)->Name("BM_MinimalLoop/torch/no_noise");
BENCHMARK_CAPTURE(torch_minimal, fixed_small, Variant::fixed_small)->Name("BM_MinimalLoop/torch/fixed_small");
BENCHMARK_CAPTURE(torch_minimal, cfg, Variant::cfg)->Name("BM_MinimalLoop/torch/cfg");
void torch_multistep(benchmark::State& state, Multistep m) {
  torch::InferenceMode guard;
  run_multistep_bench(state, torch::zeros({1, 3, 64, 64}), m);
}
void torch_minimal_dpmpp(benchmark::State& state) {
  torch::InferenceMode guard;
  run_minimal_dpmpp_bench(state, torch::zeros({1, 3, 64, 64}));
}
BENCHMARK_CAPTURE(torch_multistep, dpmpp_2m, Multistep::dpmpp_2m)->Name("BM_SamplerOverhead/torch/dpmpp_2m");
BENCHMARK_CAPTURE(torch_multistep, unipc_bh2, Multistep::unipc_bh2)->Name("BM_SamplerOverhead/torch/unipc_bh2");
BENCHMARK(torch_minimal_dpmpp)->Name("BM_MinimalLoop/torch/dpmpp_2m");
#endif
}  // namespace

BENCHMARK_MAIN();
