// The machine's float32 peaks through LibTorch, to read the model benchmarks against:
//   BM_ConvPeak/N:64/C:64/HW:28   a UNet-shaped 3×3 convolution (the reference: 144 GFLOP/s)
//   BM_ConvPeak/N:32/C:256/HW:28  a large 3×3 convolution (197 GFLOP/s)
//   BM_Matmul/1024                1024² matmul (170 GFLOP/s)
// Counters GFLOPs (wall time), cpu_GFLOPs (per process-CPU second; the stable figure on a shared
// machine with SCOREFLOW_BENCH_THREADS=1); items_per_second = convolutions (matmuls) per second.
#include <benchmark/benchmark.h>

#include "bench_common.hpp"

namespace {
void conv(benchmark::State& state, std::int64_t n, std::int64_t c, std::int64_t hw) {
  bench::set_threads();
  torch::InferenceMode guard;
  const auto x = torch::randn({n, c, hw, hw});
  const auto w = torch::randn({c, c, 3, 3});
  const auto b = torch::randn({c});
  auto y = at::conv2d(x, w, b, 1, 1);  // warm-up
  bench::Stopwatch watch;
  for (auto _ : state) {
    watch.start();
    y = at::conv2d(x, w, b, 1, 1);
    watch.stop();
    benchmark::DoNotOptimize(y);
  }
  bench::set_items_per_second(state, 1, watch);
  const double gflop = bench::conv_flops(n, c, c, hw, 3) * 1e-9 * static_cast<double>(state.iterations());
  state.counters["GFLOPs"] = gflop / watch.seconds();
  state.counters["cpu_GFLOPs"] = gflop / watch.cpu_seconds();
}
void matmul(benchmark::State& state) {
  bench::set_threads();
  torch::InferenceMode guard;
  const auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  auto y = at::mm(a, b);
  bench::Stopwatch watch;
  for (auto _ : state) {
    watch.start();
    y = at::mm(a, b);
    watch.stop();
    benchmark::DoNotOptimize(y);
  }
  bench::set_items_per_second(state, 1, watch);
  const double gflop = 2.0 * 1024 * 1024 * 1024 * 1e-9 * static_cast<double>(state.iterations());
  state.counters["GFLOPs"] = gflop / watch.seconds();
  state.counters["cpu_GFLOPs"] = gflop / watch.cpu_seconds();
}
BENCHMARK_CAPTURE(conv, unet, 64, 64, 28)->Name("BM_ConvPeak/N:64/C:64/HW:28");
BENCHMARK_CAPTURE(conv, large, 32, 256, 28)->Name("BM_ConvPeak/N:32/C:256/HW:28");
BENCHMARK(matmul)->Name("BM_Matmul/1024");
}  // namespace

BENCHMARK_MAIN();
