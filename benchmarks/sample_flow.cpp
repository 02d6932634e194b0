// Sampling the class-conditioned flow model (ClassConditionalUNet D = 64, 28×28) with CFG γ = 5,
// through scoreflow::Sampler. items_per_second = images per second.
//
//   BM_SampleFlowCFG/<solver>/steps:<n>/batch:<B>             the best configuration kept below
//   BM_SampleFlowCFG/euler/steps:<n>/batch:<B>/<variant>      each idea alone, measured in one run:
//     two_calls        cond and uncond as two model calls per step (the reference's slow variant)
//     batched          cond + uncond in one call (the library's default; NoGradGuard, BatchNorm)
//     inference_mode   + torch::InferenceMode around the sampler
//     folded           + BatchNorm folded into the convolutions (models::fold_batchnorm)
//     folded_cl        + channels-last weights and activations (models::to_channels_last)
//   BM_SampleMemory/images:1000/batch:<B>   peak RSS (VmHWM after a reset) sampling 1,000 images
//   BM_SampleLongRun/steps:<n>/batch:<B>    RSS growth between step 20 and the last step
// Counters: GFLOPs (2B forwards per step × 537.6 MFLOP), peak_frac of the conv peak measured in
// this run, peak_rss_MiB. The seed's full configuration (300 steps, 40 images) runs when
// SCOREFLOW_BENCH_FULL=1 is set (about two minutes).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <functional>
#include <vector>
#include <string>

#include "bench_common.hpp"
#include "scoreflow/core.hpp"
#include "scoreflow/torch/adapters.hpp"
#include "scoreflow/torch/inference.hpp"
#include "scoreflow/torch/unet.hpp"

using namespace scoreflow;
namespace sm = scoreflow::models;

namespace {
constexpr double kGamma = 5.0;
enum class Variant { two_calls, batched, inference_mode, folded, folded_cl };
enum class Solver { euler, heun };

/// A condition that does not concatenate: ClassifierFree then makes two model calls per step.
struct Unbatched {
  torch::Tensor c;
};

sm::ClassConditionalUNet make_net(Variant v) {
  torch::manual_seed(0);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = 64});
  net->eval();
  if (v == Variant::folded || v == Variant::folded_cl) sm::fold_batchnorm(net);
  if (v == Variant::folded_cl) sm::to_channels_last(net);
  return net;
}

torch::Tensor labels_one_hot(std::int64_t batch) {
  return sm::one_hot(torch::arange(batch, torch::kLong).remainder(10));
}

template <class Schedule>
torch::Tensor sample_once(sm::ClassConditionalUNet& net, Variant v, const Schedule& schedule, std::int64_t batch,
                          Generator& gen, const std::function<void(std::size_t)>& on_step = {}) {
  const auto proto = torch::zeros({batch, 1, 28, 28});
  auto callback = [&](const StepInfo<torch::Tensor>& info) {
    if (on_step) on_step(info.step);
  };
  const SamplerOptions options{.check_finite = false};
  if (v == Variant::two_calls) {
    auto model = denoiser(
        [&](const torch::Tensor& x, FlowTime t, const Unbatched& c) {
          torch::NoGradGuard g;
          return net->forward(x, torch::full({x.size(0), 1}, t.value), c.c);
        },
        Parameterization::velocity);
    Sampler s{schedule, ClassifierFree<Unbatched>{kGamma, {sm::null_condition(batch)}},
              SinglePrompt<Unbatched>{{labels_one_hot(batch)}}, Unconstrained{}, options};
    return s.sample(model, PureNoise<torch::Tensor>{proto}, gen, callback);
  }
  Sampler s{schedule, ClassifierFree<torch::Tensor>{kGamma, sm::null_condition(batch)},
            SinglePrompt<torch::Tensor>{labels_one_hot(batch)}, Unconstrained{}, options};
  if (v == Variant::batched) {
    auto model = sm::flow_velocity(net);
    return s.sample(model, PureNoise<torch::Tensor>{proto}, gen, callback);
  }
  torch::InferenceMode guard;
  const auto layout = v == Variant::folded_cl ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  auto model = denoiser(
      [&](const torch::Tensor& x, FlowTime t, const torch::Tensor& c) {
        return net->forward(x.contiguous(layout), torch::full({x.size(0), 1}, t.value), c).contiguous();
      },
      Parameterization::velocity);
  return s.sample(model, PureNoise<torch::Tensor>{proto}, gen, callback);
}

template <class Fn>
void with_schedule(Solver solver, int steps, Fn&& fn) {
  if (solver == Solver::euler)
    fn(FlowSchedule<Euler>{FlowGrid::uniform(steps)});
  else
    fn(FlowSchedule<Heun>{FlowGrid::uniform(steps)});
}

void sample_flow(benchmark::State& state, Solver solver, int steps, std::int64_t batch, Variant v) {
  bench::set_threads();
  bench::conv_peak_gflops();  // measured before the timed part
  auto net = make_net(v);
  Generator gen(0);
  const int calls_per_step = solver == Solver::euler ? 1 : 2;
  with_schedule(solver, 1, [&](const auto& warm) { sample_once(net, v, warm, batch, gen); });
  bench::reset_peak_rss();
  bench::Stopwatch watch;
  with_schedule(solver, steps, [&](const auto& schedule) {
    for (auto _ : state) {
      watch.start();
      auto x = sample_once(net, v, schedule, batch, gen);
      watch.stop();
      benchmark::DoNotOptimize(x);
    }
  });
  bench::set_items_per_second(state, static_cast<double>(batch), watch);
  // Heun's last step is an Euler step: (2·steps − 1) calls; 2B images per call (cond + uncond).
  const double calls = solver == Solver::euler ? steps : 2.0 * steps - 1.0;
  (void)calls_per_step;
  bench::set_flop_counters(state, calls * 2.0 * static_cast<double>(batch) * bench::unet_forward_flops(64), watch);
  state.counters["s_per_step"] = watch.seconds() / static_cast<double>(state.iterations()) / steps;
  state.counters["peak_rss_MiB"] = bench::peak_rss_mib();
}

/// 1,000 images in batches, a 1-step Euler loop (memory does not depend on the step count).
void sample_memory(benchmark::State& state, std::int64_t batch) {
  bench::set_threads();
  auto net = make_net(Variant::folded);
  Generator gen(0);
  const FlowSchedule<Euler> schedule{FlowGrid::uniform(1)};
  const double before = bench::rss_mib();
  bench::reset_peak_rss();
  bench::Stopwatch watch;
  for (auto _ : state) {
    watch.start();
    std::vector<torch::Tensor> images;
    for (std::int64_t done = 0; done < 1000; done += batch)
      images.push_back(sample_once(net, Variant::folded, schedule, std::min(batch, 1000 - done), gen));
    watch.stop();
    benchmark::DoNotOptimize(images);
  }
  bench::set_items_per_second(state, 1000, watch);
  state.counters["peak_rss_MiB"] = bench::peak_rss_mib();
  state.counters["rss_before_MiB"] = before;
}

/// RSS at step 20 and at the last step of one long run: growth_MiB ≈ 0 means nothing accumulates.
void sample_long_run(benchmark::State& state, int steps, std::int64_t batch) {
  bench::set_threads();
  auto net = make_net(Variant::folded);
  Generator gen(0);
  const FlowSchedule<Euler> schedule{FlowGrid::uniform(steps)};
  double at20 = 0, at_end = 0;
  bench::Stopwatch watch;
  for (auto _ : state) {
    watch.start();
    auto x = sample_once(net, Variant::folded, schedule, batch, gen, [&](std::size_t step) {
      if (step == 20) at20 = bench::rss_mib();
      if (step == static_cast<std::size_t>(steps)) at_end = bench::rss_mib();
    });
    watch.stop();
    benchmark::DoNotOptimize(x);
  }
  bench::set_items_per_second(state, static_cast<double>(batch), watch);
  state.counters["rss_step20_MiB"] = at20;
  state.counters["rss_last_MiB"] = at_end;
  state.counters["growth_MiB"] = at_end - at20;
}

std::string name(Solver s, int steps, std::int64_t batch) {
  return std::string("BM_SampleFlowCFG/") + (s == Solver::euler ? "euler" : "heun") + "/steps:" + std::to_string(steps) +
         "/batch:" + std::to_string(batch);
}

constexpr Variant kBest = Variant::folded;  // chosen from the variant runs (see README "Benchmarks")

int register_all() {
  auto add = [](Solver s, int steps, std::int64_t batch, Variant v, const std::string& suffix) {
    benchmark::RegisterBenchmark((name(s, steps, batch) + suffix).c_str(), sample_flow, s, steps, batch, v)
        ->Unit(benchmark::kMillisecond)
        ;
  };
  // each idea alone, 10 Euler steps of 40 images (time per step does not depend on the step count)
  const std::pair<Variant, const char*> variants[] = {{Variant::two_calls, "/two_calls"},
                                                      {Variant::batched, "/batched"},
                                                      {Variant::inference_mode, "/inference_mode"},
                                                      {Variant::folded, "/folded"},
                                                      {Variant::folded_cl, "/folded_cl"}};
  for (const auto& [v, suffix] : variants) add(Solver::euler, 10, 40, v, suffix);
  // scaling: steps at batch 40, batch at 4 steps
  for (int steps : {1, 4, 16}) add(Solver::euler, steps, 40, kBest, "");
  for (std::int64_t batch : {1, 4, 16, 64, 256}) add(Solver::euler, 4, batch, kBest, "");
  add(Solver::heun, 5, 40, kBest, "");
  if (const char* full = std::getenv("SCOREFLOW_BENCH_FULL"); full && std::string(full) == "1") {
    add(Solver::euler, 300, 40, kBest, "");
    add(Solver::euler, 300, 40, Variant::two_calls, "/two_calls");
  }
  benchmark::RegisterBenchmark("BM_SampleMemory/images:1000/batch:100", sample_memory, 100)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_SampleLongRun/steps:300/batch:1", sample_long_run, 300, 1)->Unit(benchmark::kMillisecond);
  return 0;
}
const int registered = register_all();
}  // namespace

BENCHMARK_MAIN();
