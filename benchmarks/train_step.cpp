// One optimizer step of the seed's training loops through scoreflow::training::Trainer::train_step
// (objective, backward, Adam) on MNIST-shaped batches. items_per_second = images per second.
//
//   BM_TrainStep/<uncond|time|class>/D:<D>/batch:<B>           the library's default path
//   BM_TrainStep/<...>/D:<D>/batch:<B>/channels_last           weights and batch in NHWC; on Debian's
//                                                              LibTorch 1.13 its gradients are not
//                                                              deterministic and a loss is sometimes NaN
//                                                              (reported as an error), so not kept
//   BM_TrainLongRun/class/D:64/batch:8/steps:60                RSS growth between steps 10 and 60
// Counters: GFLOPs (3 × forward FLOPs per image: forward + backward), peak_frac of the conv peak
// (N=64, 64→64, 28×28, 3×3) measured in this run, peak_rss_MiB (VmHWM reset before the steps; one
// benchmark per process for memory, as the allocator keeps what earlier ones freed).
//   uncond = UnconditionalUNet + Denoising(σ = 0.5)   (seed Part B §1.2.1)
//   time   = TimeConditionalUNet + FlowMatching        (§2.2)
//   class  = ClassConditionalUNet + FlowMatching with class dropout 0.1 (§2.5)
#include <benchmark/benchmark.h>

#include <string>

#include "bench_common.hpp"
#include "scoreflow/torch/models/inference.hpp"
#include "scoreflow/torch/models/unet.hpp"
#include "scoreflow/torch/training/train_loop.hpp"

namespace sm = scoreflow::models;
namespace tr = scoreflow::training;

namespace {
enum class Kind { uncond, time, cls };
enum class Layout { contiguous, channels_last };

scoreflow::Batch random_batch(std::int64_t batch, Layout layout) {
  torch::manual_seed(1);
  auto images = torch::rand({batch, 1, 28, 28});
  if (layout == Layout::channels_last) images = images.contiguous(torch::MemoryFormat::ChannelsLast);
  return {images, torch::randint(0, 10, {batch}, torch::kLong)};
}

/// Calls fn(trainer) with a trainer of the given kind (seed learning rates; the rate does not
/// change the step's cost).
template <class Fn>
void with_trainer(Kind kind, std::int64_t hidden, std::int64_t batch, Layout layout, Fn&& fn) {
  torch::manual_seed(0);
  const tr::TrainOptions o{.epochs = 1, .batch_size = batch, .lr = 1e-3, .seed = 0};
  auto prepare = [&](auto& net) {
    if (layout == Layout::channels_last) sm::to_channels_last(net);
  };
  const sm::UNetOptions opts{.hidden = hidden};
  if (kind == Kind::uncond) {
    sm::UnconditionalUNet net(opts);
    prepare(net);
    tr::Trainer trainer(net, tr::Denoising(0.5), o);
    fn(trainer);
  } else if (kind == Kind::time) {
    sm::TimeConditionalUNet net(opts);
    prepare(net);
    tr::Trainer trainer(net, tr::FlowMatching<>{}, o);
    fn(trainer);
  } else {
    sm::ClassConditionalUNet net(opts);
    prepare(net);
    tr::Trainer trainer(net, tr::FlowMatching<tr::ClassDropout>{tr::ClassDropout{0.1}}, o);
    fn(trainer);
  }
}

void train_step(benchmark::State& state, Kind kind, std::int64_t hidden, std::int64_t batch, Layout layout) {
  bench::set_threads();
  bench::conv_peak_gflops();
  const auto b = random_batch(batch, layout);
  bench::Stopwatch watch;
  try {
    with_trainer(kind, hidden, batch, layout, [&](auto& trainer) {
      trainer.train_step(b);  // warm-up: allocations, oneDNN primitives
      bench::reset_peak_rss();
      for (auto _ : state) {
        watch.start();
        const double loss = trainer.train_step(b);
        watch.stop();
        benchmark::DoNotOptimize(loss);
      }
    });
  } catch (const scoreflow::non_finite_error& e) {
    // Seen with channels-last on Debian's LibTorch 1.13: non-deterministic gradients, sometimes NaN.
    state.SkipWithError(e.what());
    return;
  }
  bench::set_items_per_second(state, static_cast<double>(batch), watch);
  bench::set_flop_counters(state, 3.0 * bench::unet_forward_flops(hidden) * static_cast<double>(batch), watch);
  state.counters["peak_rss_MiB"] = bench::peak_rss_mib();
}

void train_long_run(benchmark::State& state, std::int64_t batch, int steps) {
  bench::set_threads();
  const auto b = random_batch(batch, Layout::contiguous);
  double at10 = 0, at_end = 0;
  bench::Stopwatch watch;
  with_trainer(Kind::cls, 64, batch, Layout::contiguous, [&](auto& trainer) {
    for (auto _ : state) {
      watch.start();
      for (int i = 1; i <= steps; ++i) {
        benchmark::DoNotOptimize(trainer.train_step(b));
        if (i == 10) at10 = bench::rss_mib();
      }
      at_end = bench::rss_mib();
      watch.stop();
    }
  });
  bench::set_items_per_second(state, static_cast<double>(batch * steps), watch);
  state.counters["rss_step10_MiB"] = at10;
  state.counters["rss_last_MiB"] = at_end;
  state.counters["growth_MiB"] = at_end - at10;
}

std::string name(Kind k, std::int64_t hidden, std::int64_t batch) {
  const char* kind = k == Kind::uncond ? "uncond" : k == Kind::time ? "time" : "class";
  return std::string("BM_TrainStep/") + kind + "/D:" + std::to_string(hidden) + "/batch:" + std::to_string(batch);
}

int register_all() {
  auto add = [](Kind k, std::int64_t hidden, std::int64_t batch, Layout layout) {
    const std::string suffix = layout == Layout::channels_last ? "/channels_last" : "";
    benchmark::RegisterBenchmark((name(k, hidden, batch) + suffix).c_str(), train_step, k, hidden, batch, layout)
        ->Unit(benchmark::kMillisecond)
        ;
  };
  // the reference's three configurations, each with the channels-last variant
  for (Layout layout : {Layout::contiguous, Layout::channels_last}) {
    add(Kind::cls, 64, 64, layout);
    add(Kind::time, 64, 64, layout);
    add(Kind::uncond, 128, 256, layout);
  }
  // scaling with batch size (class, D = 64)
  for (std::int64_t batch : {1, 4, 16, 128, 256}) add(Kind::cls, 64, batch, Layout::contiguous);
  benchmark::RegisterBenchmark("BM_TrainLongRun/class/D:64/batch:8/steps:60", train_long_run, 8, 60)->Unit(benchmark::kMillisecond);
  return 0;
}
const int registered = register_all();
}  // namespace

BENCHMARK_MAIN();
