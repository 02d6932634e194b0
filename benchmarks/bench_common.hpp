#pragma once
// Shared by the model benchmarks: memory counters, FLOP counts, the machine's conv peak.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include <torch/torch.h>

#include "scoreflow/torch/models/cpu_threads.hpp"

namespace bench {

/// Intra-op threads: SCOREFLOW_BENCH_THREADS, else 2 (the reference's setting); OpenBLAS gets
/// one thread (models::set_cpu_threads; SCOREFLOW_BENCH_BLAS_DEFAULT=1 leaves its pool as it is,
/// to measure what that costs).
inline void set_threads() {
  const char* env = std::getenv("SCOREFLOW_BENCH_THREADS");
  const int n = env ? std::atoi(env) : 2;
  if (std::getenv("SCOREFLOW_BENCH_BLAS_DEFAULT") == nullptr) {
    scoreflow::models::set_cpu_threads(n);
  } else if (torch::get_num_threads() != n) {
    torch::set_num_threads(n);
  }
}

/// A field of /proc/self/status in MiB (VmRSS: resident now, VmHWM: peak resident).
inline double status_mib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == field + ":") {
      double kib = 0;
      in >> kib;
      return kib / 1024.0;
    }
    in.ignore(1 << 12, '\n');
  }
  return -1;
}
inline double rss_mib() { return status_mib("VmRSS"); }
inline double peak_rss_mib() { return status_mib("VmHWM"); }

/// Resets VmHWM to the current RSS (Linux ≥ 4.0: write 5 to /proc/self/clear_refs), so the next
/// peak_rss_mib() is the peak of what follows. Returns false where the kernel refuses.
inline bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  return static_cast<bool>(out);
}

/// Forward FLOPs per 28×28 image of the seed's UNets (multiply-adds × 2; convolutions and linear
/// layers), as counted by the reference: D = 64 537.6 MFLOP, D = 128 2,142.7 MFLOP.
inline double unet_forward_flops(std::int64_t hidden) {
  if (hidden == 64) return 537.6e6;
  if (hidden == 128) return 2142.7e6;
  return 537.6e6 * static_cast<double>(hidden * hidden) / (64.0 * 64.0);  // convs dominate: ∝ D²
}

inline double conv_flops(std::int64_t n, std::int64_t cin, std::int64_t cout, std::int64_t hw, std::int64_t k) {
  return 2.0 * static_cast<double>(n * cin * cout * hw * hw * k * k);
}

/// The part of unet_forward_flops that depends on the input image only, i.e. what
/// ClassConditionalUNet::forward_under_conditions computes once per image instead of once per
/// condition: encoder, bottleneck, and the skip connections' share of the three layers that
/// join them (D = 64: 236.1 MFLOP, so CFG's pair costs 2 × 537.6 − 236.1 = 839.1 MFLOP, 0.78×).
inline double unet_input_only_flops(std::int64_t d) {
  return conv_flops(1, 1, d, 28, 3) + conv_flops(1, d, d, 28, 3)     // in_block
         + 3 * conv_flops(1, d, d, 14, 3)                              // down1 (stride 2 to 14×14)
         + conv_flops(1, d, 2 * d, 7, 3) + 2 * conv_flops(1, 2 * d, 2 * d, 7, 3)  // down2
         + conv_flops(1, 2 * d, 2 * d, 1, 7)                           // unflatten (1×1 → 7×7)
         + conv_flops(1, 2 * d, d, 7, 4)                               // up1's e3 share (4×4 from 7×7)
         + conv_flops(1, d, d, 14, 4)                                  // up2's e2 share
         + conv_flops(1, d, d, 28, 3);                                 // out_block's e1 share
}

/// Seconds of CPU time used by the whole process (all threads) so far.
inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Wall and process-CPU time of the measured blocks. On a shared machine the wall time includes
/// waiting for a core; the CPU time (with one intra-op thread, so no spinning) is the work itself.
class Stopwatch {
 public:
  void start() {
    t0_ = std::chrono::steady_clock::now();
    c0_ = process_cpu_seconds();
  }
  void stop() {
    wall_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    cpu_ += process_cpu_seconds() - c0_;
  }
  [[nodiscard]] double seconds() const { return wall_; }
  [[nodiscard]] double cpu_seconds() const { return cpu_; }

 private:
  std::chrono::steady_clock::time_point t0_{};
  double c0_ = 0, wall_ = 0, cpu_ = 0;
};

struct Rate {
  double wall;  ///< per wall second
  double cpu;   ///< per process-CPU second
};

/// GFLOP/s of one float32 3×3 convolution (pad 1) forward, best of `reps` after a warm-up.
inline Rate conv_gflops(std::int64_t n, std::int64_t c, std::int64_t hw, int reps = 5) {
  torch::InferenceMode guard;
  auto x = torch::randn({n, c, hw, hw});
  auto w = torch::randn({c, c, 3, 3});
  auto b = torch::randn({c});
  auto y = at::conv2d(x, w, b, 1, 1);
  double best_wall = 1e30, best_cpu = 1e30;
  for (int i = 0; i < reps; ++i) {
    Stopwatch watch;
    watch.start();
    y = at::conv2d(x, w, b, 1, 1);
    watch.stop();
    best_wall = std::min(best_wall, watch.seconds());
    best_cpu = std::min(best_cpu, watch.cpu_seconds());
  }
  benchmark::DoNotOptimize(y);
  const double gflop = conv_flops(n, c, c, hw, 3) * 1e-9;
  return {gflop / best_wall, gflop / best_cpu};
}

/// The UNet-shaped conv peak (N=64, 64→64, 28×28, 3×3), measured once per process.
inline Rate conv_peak_gflops() {
  static const Rate peak = conv_gflops(64, 64, 28);
  return peak;
}

/// Counters from measured times: GFLOPs (achieved, wall), conv_peak_GFLOPs (measured in this
/// process), peak_frac = GFLOPs / conv peak; and the same per process-CPU second (cpu_*).
inline void set_flop_counters(benchmark::State& state, double flops_per_iteration, const Stopwatch& watch) {
  const double total = flops_per_iteration * static_cast<double>(state.iterations()) * 1e-9;
  const Rate peak = conv_peak_gflops();
  state.counters["GFLOPs"] = total / watch.seconds();
  state.counters["conv_peak_GFLOPs"] = peak.wall;
  state.counters["peak_frac"] = total / watch.seconds() / peak.wall;
  state.counters["cpu_GFLOPs"] = total / watch.cpu_seconds();
  state.counters["cpu_conv_peak_GFLOPs"] = peak.cpu;
  state.counters["cpu_peak_frac"] = total / watch.cpu_seconds() / peak.cpu;
}

/// items_per_second from wall time measured around the work alone (Google Benchmark's own rate
/// would use the main thread's CPU time), and cpu_items_per_second per process-CPU second.
inline void set_items_per_second(benchmark::State& state, double items_per_iteration, const Stopwatch& watch) {
  const double items = items_per_iteration * static_cast<double>(state.iterations());
  state.counters["items_per_second"] = items / watch.seconds();
  state.counters["cpu_items_per_second"] = items / watch.cpu_seconds();
}

}  // namespace bench
