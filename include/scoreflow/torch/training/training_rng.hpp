#pragma once
// The trainer's random stream: every draw an objective makes (noise, times, class drops) comes
// from here, and its state is part of a checkpoint (checkpoint.hpp), so a resumed run draws what
// the uninterrupted one would have drawn.
//
// A CPU torch generator, whatever the training device: CUDA's generators (Philox) give other
// numbers than the CPU's (mt19937), so drawing on the CPU and moving the result makes a seed
// mean the same noise on every device. The data order does not come from here but from
// scoreflow::Generator (data/batching.hpp), so it is also the same across LibTorch versions.
#include <cstdint>
#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <torch/types.h>

namespace scoreflow::training {

class TrainingRng {
 public:
  explicit TrainingRng(std::uint64_t seed = 0) : gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

  /// N(0, I) shaped, typed and placed like x.
  torch::Tensor normal_like(const torch::Tensor& x) {
    return torch::randn(x.sizes(), gen_, torch::TensorOptions().dtype(x.scalar_type())).to(x.device());
  }
  /// U[0, 1) as n×1 with the given dtype/device.
  torch::Tensor uniform(std::int64_t n, const torch::TensorOptions& options) {
    return torch::rand({n, 1}, gen_, torch::TensorOptions().dtype(options.dtype())).to(options.device());
  }
  /// N(0, 1) as n×1 with the given dtype/device.
  torch::Tensor normal(std::int64_t n, const torch::TensorOptions& options) {
    return torch::randn({n, 1}, gen_, torch::TensorOptions().dtype(options.dtype())).to(options.device());
  }
  /// Uniform integers in [0, high) as an int64 tensor of n (on the CPU).
  torch::Tensor integers(std::int64_t n, std::int64_t high) {
    return torch::randint(high, {n}, gen_, torch::TensorOptions().dtype(torch::kLong));
  }

  /// The generator state (a CPU byte tensor), for checkpoints. Locked as LibTorch's own users
  /// of get_state/set_state do: the generator's state is not safe to read while another thread draws.
  [[nodiscard]] torch::Tensor state() const {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    return gen_.get_state();
  }
  void set_state(const torch::Tensor& state) {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    gen_.set_state(state.to(torch::kCPU));
  }

 private:
  mutable at::Generator gen_;
};

}  // namespace scoreflow::training
