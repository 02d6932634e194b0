// Sampling the class-conditioned flow model (ClassConditionalUNet D = 64, 28×28) with CFG γ = 5,
// through scoreflow::Sampler. items_per_second = images per second (wall); cpu_items_per_second
// = images per process-CPU second (the stable figure on a shared machine, with one thread).
//
//   BM_SampleFlowCFG/<solver>/steps:<n>/batch:<B>             the kept configuration (kBest):
//                                                             InferenceMode, folded BatchNorm,
//                                                             batched CFG sharing x across both
//                                                             conditions, micro-batches of 8 inputs
//   BM_SampleFlowCFG/euler/steps:10/batch:40/two_calls        the reference's two variants: cond and
//   BM_SampleFlowCFG/euler/steps:10/batch:40/batched          uncond as two calls / one batched call
//   BM_SampleFlowCFG/euler/steps:4/batch:40/ablation          every idea alone, interleaved over 3
//       rounds (medians; counters <idea>, cpu_<idea>, speedup_<idea> against `batched`):
//       inference_mode, folded (models::fold_batchnorm), channels_last (models::to_channels_last),
//       micro4 … micro32 (models::micro_batched; rows per forward), shared_input (flow_velocity's
//       under_conditions: the encoder once per image), all_micro16 (the previous kept combination),
//       all_shared_micro4/8/16 (inputs per forward, 2 rows each; micro 8 is kept)
//   BM_SampleMemory/images:1000/batch:<B>   peak RSS (VmHWM after a reset) sampling 1,000 images
//   BM_SampleLongRun/steps:<n>/batch:<B>    RSS growth between step 20 and the last step
// Counters: GFLOPs (2B forwards per step × 537.6 MFLOP, less bench::unet_input_only_flops per
// image when x is shared across the two conditions), peak_frac of the conv peak measured in
// this run, peak_rss_MiB (VmHWM reset before the timed part; the allocator keeps what earlier
// benchmarks freed, so run one benchmark per process, --benchmark_filter='...$', for memory).
// The seed's full configuration (300 steps, 40 images) runs when SCOREFLOW_BENCH_FULL=1 is set
// (a few minutes).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <optional>
#include <vector>
#include <string>

#include "bench_common.hpp"
#include "scoreflow/core.hpp"
#include "scoreflow/torch/models/adapters.hpp"
#include "scoreflow/torch/models/inference.hpp"
#include "scoreflow/torch/models/unet.hpp"

using namespace scoreflow;
namespace sm = scoreflow::models;

namespace {
constexpr double kGamma = 5.0;
/// One way to run the model; each field is one idea, measured alone and together.
struct Variant {
  bool two_calls = false;       ///< cond and uncond as two calls (else one batched call)
  bool inference_mode = false;  ///< torch::InferenceMode around the sampler (else NoGradGuard)
  bool fold = false;            ///< models::fold_batchnorm
  bool channels_last = false;   ///< models::to_channels_last + NHWC inputs
  std::int64_t micro_batch = 0; ///< models::micro_batched(model, micro_batch) (0: whole batch)
  bool share_input = false;     ///< x once under both conditions (under_conditions; else [x, x])
};
const Variant kTwoCalls{.two_calls = true};
const Variant kBatched{};
// kept: what paid in the ablation (see README "Benchmarks")
const Variant kBest{.inference_mode = true, .fold = true, .micro_batch = 8, .share_input = true};
enum class Solver { euler, heun, dpmpp_2m, unipc_bh2 };

/// A condition that does not concatenate: ClassifierFree then makes two model calls per step.
struct Unbatched {
  torch::Tensor c;
};

sm::ClassConditionalUNet make_net(Variant v) {
  torch::manual_seed(0);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = 64});
  net->eval();
  if (v.fold) sm::fold_batchnorm(net);
  if (v.channels_last) sm::to_channels_last(net);
  return net;
}

torch::Tensor labels_one_hot(std::int64_t batch, std::int64_t classes) {
  return sm::one_hot(torch::arange(batch, torch::kLong).remainder(classes), classes);
}

template <class Schedule>
torch::Tensor sample_once(sm::ClassConditionalUNet& net, Variant v, const Schedule& schedule, std::int64_t batch,
                          Generator& gen, const std::function<void(std::size_t)>& on_step = {}) {
  const auto proto = torch::zeros({batch, 1, 28, 28});
  auto callback = [&](const StepInfo<torch::Tensor>& info) {
    if (on_step) on_step(info.step);
  };
  const SamplerOptions options{.check_finite = false};
  const auto classes = sm::num_classes(net);
  if (v.two_calls) {
    auto model = denoiser(
        [&](const torch::Tensor& x, FlowTime t, const Unbatched& c) {
          torch::NoGradGuard g;
          return net->forward(x, torch::full({x.size(0), 1}, t.value), c.c);
        },
        Parameterization::velocity);
    Sampler s{schedule, ClassifierFree<Unbatched>{kGamma, {sm::null_condition(batch, classes)}},
              SinglePrompt<Unbatched>{{labels_one_hot(batch, classes)}}, Unconstrained{}, options};
    return s.sample(model, PureNoise<torch::Tensor>{proto}, gen, callback);
  }
  Sampler s{schedule, ClassifierFree<torch::Tensor>{kGamma, sm::null_condition(batch, classes)},
            SinglePrompt<torch::Tensor>{labels_one_hot(batch, classes)}, Unconstrained{}, options};
  std::optional<torch::InferenceMode> guard;
  if (v.inference_mode) guard.emplace();
  auto run = [&](auto model) {
    if (v.micro_batch > 0) {
      auto chunked = sm::micro_batched(std::move(model), v.micro_batch);
      return s.sample(chunked, PureNoise<torch::Tensor>{proto}, gen, callback);
    }
    return s.sample(model, PureNoise<torch::Tensor>{proto}, gen, callback);
  };
  if (v.share_input) return run(sm::flow_velocity(net));  // the library's adapter
  if (!v.channels_last) {  // the same adapter without under_conditions: CFG passes [x, x]
    auto velocity = sm::flow_velocity(net);
    return run(denoiser([velocity](const torch::Tensor& x, FlowTime t, const torch::Tensor& c) mutable {
      return velocity.fn(x, t, c);
    }, Parameterization::velocity));
  }
  return run(denoiser(
      [&](const torch::Tensor& x, FlowTime t, const torch::Tensor& c) {
        torch::NoGradGuard g;
        return net->forward(x.contiguous(torch::MemoryFormat::ChannelsLast), torch::full({x.size(0), 1}, t.value), c)
            .contiguous();
      },
      Parameterization::velocity));
}

template <class Fn>
void with_schedule(Solver solver, int steps, Fn&& fn) {
  const auto grid = FlowGrid::uniform(steps);
  switch (solver) {
    case Solver::euler: return fn(FlowSchedule<Euler>{grid});
    case Solver::heun: return fn(FlowSchedule<Heun>{grid});
    case Solver::dpmpp_2m: return fn(FlowSchedule<DPMSolverPP>{grid});
    case Solver::unipc_bh2: return fn(FlowSchedule<UniPC>{grid});
  }
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
  const double calls = solver == Solver::heun ? 2.0 * steps - 1.0 : steps;
  (void)calls_per_step;
  const double per_pair = 2.0 * bench::unet_forward_flops(64) - (v.share_input ? bench::unet_input_only_flops(64) : 0.0);
  bench::set_flop_counters(state, calls * static_cast<double>(batch) * per_pair, watch);
  state.counters["s_per_step"] = watch.seconds() / static_cast<double>(state.iterations()) / steps;
  state.counters["peak_rss_MiB"] = bench::peak_rss_mib();
}

/// Every variant in turn, `rounds` times, so that drifting load on a shared machine hits all of
/// them alike: counters <variant> (images/s, median over rounds, wall) and cpu_<variant> (images
/// per process-CPU second), and speedup_<variant> = cpu rate / cpu rate of `batched`.
void sample_ablation(benchmark::State& state, int steps, std::int64_t batch, int rounds) {
  bench::set_threads();
  const auto peak = bench::conv_peak_gflops();
  state.counters["conv_peak_GFLOPs"] = peak.wall;
  state.counters["cpu_conv_peak_GFLOPs"] = peak.cpu;
  const std::pair<Variant, const char*> variants[] = {
      {kTwoCalls, "two_calls"},
      {kBatched, "batched"},
      {{.inference_mode = true}, "inference_mode"},
      {{.fold = true}, "folded"},
      {{.channels_last = true}, "channels_last"},
      {{.micro_batch = 4}, "micro4"},
      {{.micro_batch = 8}, "micro8"},
      {{.micro_batch = 16}, "micro16"},
      {{.micro_batch = 32}, "micro32"},
      {{.share_input = true}, "shared_input"},
      {{.inference_mode = true, .fold = true, .micro_batch = 16}, "all_micro16"},
      {{.inference_mode = true, .fold = true, .micro_batch = 4, .share_input = true}, "all_shared_micro4"},
      {{.inference_mode = true, .fold = true, .micro_batch = 8, .share_input = true}, "all_shared_micro8"},
      {{.inference_mode = true, .fold = true, .micro_batch = 16, .share_input = true}, "all_shared_micro16"}};
  std::vector<sm::ClassConditionalUNet> nets;
  for (const auto& [v, label] : variants) nets.push_back(make_net(v));
  const FlowSchedule<Euler> schedule{FlowGrid::uniform(steps)}, warm{FlowGrid::uniform(1)};
  Generator gen(0);
  for (std::size_t i = 0; i < nets.size(); ++i) sample_once(nets[i], variants[i].first, warm, batch, gen);
  std::vector<std::vector<double>> wall(nets.size()), cpu(nets.size());
  for (auto _ : state) {
    for (int r = 0; r < rounds; ++r)
      for (std::size_t i = 0; i < nets.size(); ++i) {
        bench::Stopwatch watch;
        watch.start();
        auto x = sample_once(nets[i], variants[i].first, schedule, batch, gen);
        watch.stop();
        benchmark::DoNotOptimize(x);
        wall[i].push_back(static_cast<double>(batch) / watch.seconds());
        cpu[i].push_back(static_cast<double>(batch) / watch.cpu_seconds());
      }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double base = median(cpu[1]), base_wall = median(wall[1]);
  for (std::size_t i = 0; i < nets.size(); ++i) {
    const std::string label = variants[i].second;
    state.counters[label] = median(wall[i]);
    state.counters["cpu_" + label] = median(cpu[i]);
    state.counters["speedup_" + label] = median(cpu[i]) / base;
    state.counters["wall_speedup_" + label] = median(wall[i]) / base_wall;
  }
}

/// 1,000 images in batches, a 1-step Euler loop (memory does not depend on the step count).
void sample_memory(benchmark::State& state, std::int64_t batch) {
  bench::set_threads();
  auto net = make_net(kBest);
  Generator gen(0);
  const FlowSchedule<Euler> schedule{FlowGrid::uniform(1)};
  const double before = bench::rss_mib();
  bench::reset_peak_rss();
  bench::Stopwatch watch;
  for (auto _ : state) {
    watch.start();
    std::vector<torch::Tensor> images;
    for (std::int64_t done = 0; done < 1000; done += batch)
      images.push_back(sample_once(net, kBest, schedule, std::min(batch, 1000 - done), gen));
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
  auto net = make_net(kBest);
  Generator gen(0);
  const FlowSchedule<Euler> schedule{FlowGrid::uniform(steps)};
  double at20 = 0, at_end = 0;
  bench::Stopwatch watch;
  for (auto _ : state) {
    watch.start();
    auto x = sample_once(net, kBest, schedule, batch, gen, [&](std::size_t step) {
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

const char* solver_name(Solver s) {
  switch (s) {
    case Solver::euler: return "euler";
    case Solver::heun: return "heun";
    case Solver::dpmpp_2m: return "dpmpp_2m";
    case Solver::unipc_bh2: return "unipc_bh2";
  }
  return "?";
}
std::string name(Solver s, int steps, std::int64_t batch) {
  return std::string("BM_SampleFlowCFG/") + solver_name(s) + "/steps:" + std::to_string(steps) + "/batch:" +
         std::to_string(batch);
}


int register_all() {
  auto add = [](Solver s, int steps, std::int64_t batch, Variant v, const std::string& suffix) {
    benchmark::RegisterBenchmark((name(s, steps, batch) + suffix).c_str(), sample_flow, s, steps, batch, v)
        ->Unit(benchmark::kMillisecond)
        ;
  };
  // the reference's two variants and the kept configuration, 10 Euler steps of 40 images
  add(Solver::euler, 10, 40, kTwoCalls, "/two_calls");
  add(Solver::euler, 10, 40, kBatched, "/batched");
  add(Solver::euler, 10, 40, kBest, "");
  benchmark::RegisterBenchmark("BM_SampleFlowCFG/euler/steps:4/batch:40/ablation", sample_ablation, 4, 40, 3)
      ->Unit(benchmark::kMillisecond);
  // scaling: steps at batch 40, batch at 4 steps
  for (int steps : {1, 4, 16}) add(Solver::euler, steps, 40, kBest, "");
  for (std::int64_t batch : {1, 4, 16, 64, 256}) add(Solver::euler, 4, batch, kBest, "");
  add(Solver::heun, 5, 40, kBest, "");
  // Time to quality (issue 14): images per second at the call count where a solver matches the
  // Fréchet distance of the seed's 300 Euler steps on the quick class-conditioned flow model (the
  // gallery's "Quality against model calls" sweep gives the points), against the seed's own loop.
  // One model call per step for these solvers, so steps = calls. Compare with
  // `reference_pytorch.py --time-to-quality` (the seed's loop in plain PyTorch) in the same session.
  auto to_quality = [](Solver s, int calls, Variant v) {
    benchmark::RegisterBenchmark(("BM_SampleToQuality/flow/" + std::string(solver_name(s)) + "/calls:" + std::to_string(calls)).c_str(),
                                 sample_flow, s, calls, std::int64_t{40}, v)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(s == Solver::euler ? 1 : 3);
  };
  to_quality(Solver::euler, 300, kBest);
  for (int calls : {4, 6, 8, 10}) {
    to_quality(Solver::dpmpp_2m, calls, kBest);
    to_quality(Solver::unipc_bh2, calls, kBest);
  }
  if (const char* full = std::getenv("SCOREFLOW_BENCH_FULL"); full && std::string(full) == "1") {
    add(Solver::euler, 300, 40, kBest, "");
    add(Solver::euler, 300, 40, kTwoCalls, "/two_calls");
    add(Solver::euler, 300, 40, kBatched, "/batched");
  }
  benchmark::RegisterBenchmark("BM_SampleMemory/images:1000/batch:100", sample_memory, 100)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_SampleLongRun/steps:300/batch:1", sample_long_run, 300, 1)->Unit(benchmark::kMillisecond);
  return 0;
}
const int registered = register_all();
}  // namespace

BENCHMARK_MAIN();
