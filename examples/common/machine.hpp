#pragma once
// The machine's speed, measured by the run that prints it: the convolution of the benchmark
// BM_ConvPeak/N:64/C:64/HW:28 (benchmarks/conv_peak.cpp), a UNet-shaped 3×3 convolution, timed
// for about a second. Timings on a page are only comparable across machines through this figure.
#include <chrono>
#include <cstdint>

#include <torch/torch.h>

namespace examples {

/// GFLOP/s of a 64×64×28×28 3×3 convolution on 64 images (float32, the current torch threads).
inline double conv_peak_gflops(double seconds = 1.0) {
  torch::InferenceMode guard;
  torch::manual_seed(0);
  const std::int64_t n = 64, c = 64, hw = 28;
  const auto x = torch::randn({n, c, hw, hw}), w = torch::randn({c, c, 3, 3}), b = torch::randn({c});
  auto y = at::conv2d(x, w, b, 1, 1);  // warm-up
  const double flops = 2.0 * static_cast<double>(n * c * c * hw * hw * 9);
  const auto start = std::chrono::steady_clock::now();
  std::int64_t runs = 0;
  double elapsed = 0;
  do {
    y = at::conv2d(x, w, b, 1, 1);
    ++runs;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  return flops * static_cast<double>(runs) / elapsed * 1e-9;
}

}  // namespace examples
