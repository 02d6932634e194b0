#pragma once
// The trainer's random stream: every draw an objective makes (noise, times, class drops) comes
// from here, and its state is part of a checkpoint (checkpoint.hpp), so a resumed run draws what
// the uninterrupted one would have drawn.
//
// A CPU torch generator, whatever the training device: CUDA's generators (Philox) give other
// numbers than the CPU's (mt19937), so drawing on the CPU and moving the result makes a seed
// mean the same noise on every device. The data order does not come from here but from
// scoreflow::Generator (data/batching.hpp), so it is also the same across LibTorch versions.
//
// Data-parallel training (train_loop.hpp with a communicator): each rank holds a shard, rows
// [begin, begin + local) of a global batch of `global` rows, and set_shard tells the stream so.
// A draw whose leading size is the shard's then draws the global batch's numbers and keeps the
// shard's rows: every rank's stream stays in step with the others (one state, checkpointed by
// rank 0), and the global batch gets exactly the noise one process would have drawn for it, so
// 1 process × batch B and N processes × B/N train alike.
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <torch/types.h>

namespace scoreflow::training {

class TrainingRng {
 public:
  explicit TrainingRng(std::uint64_t seed = 0) : gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

  /// N(0, I) shaped, typed and placed like x.
  torch::Tensor normal_like(const torch::Tensor& x) {
    auto sizes = x.sizes().vec();
    const bool per_row = sharded(sizes.empty() ? -1 : sizes[0]);
    if (per_row) sizes[0] = global_;
    return rows(torch::randn(sizes, gen_, torch::TensorOptions().dtype(x.scalar_type())), per_row).to(x.device());
  }
  /// U[0, 1) as n×1 with the given dtype/device.
  torch::Tensor uniform(std::int64_t n, const torch::TensorOptions& options) {
    const bool per_row = sharded(n);
    return rows(torch::rand({per_row ? global_ : n, 1}, gen_, torch::TensorOptions().dtype(options.dtype())), per_row)
        .to(options.device());
  }
  /// N(0, 1) as n×1 with the given dtype/device.
  torch::Tensor normal(std::int64_t n, const torch::TensorOptions& options) {
    const bool per_row = sharded(n);
    return rows(torch::randn({per_row ? global_ : n, 1}, gen_, torch::TensorOptions().dtype(options.dtype())), per_row)
        .to(options.device());
  }
  /// Uniform integers in [0, high) as an int64 tensor of n (on the CPU).
  torch::Tensor integers(std::int64_t n, std::int64_t high) {
    const bool per_row = sharded(n);
    return rows(torch::randint(high, {per_row ? global_ : n}, gen_, torch::TensorOptions().dtype(torch::kLong)), per_row);
  }

  /// This rank holds rows [begin, begin + local) of a global batch of `global` rows (see above).
  void set_shard(std::int64_t begin, std::int64_t local, std::int64_t global) {
    if (begin < 0 || local < 1 || begin + local > global)
      throw std::invalid_argument("TrainingRng::set_shard: rows [" + std::to_string(begin) + ", " +
                                  std::to_string(begin + local) + ") of " + std::to_string(global));
    begin_ = begin, local_ = local, global_ = global;
  }
  /// Back to drawing exactly what is asked for.
  void clear_shard() { local_ = 0; }

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
  [[nodiscard]] bool sharded(std::int64_t rows) const { return local_ > 0 && rows == local_ && local_ != global_; }
  [[nodiscard]] torch::Tensor rows(torch::Tensor drawn, bool per_row) const {
    return per_row ? drawn.narrow(0, begin_, local_) : drawn;
  }

  mutable at::Generator gen_;
  std::int64_t begin_ = 0, local_ = 0, global_ = 0;  ///< the shard (local_ = 0: none)
};

}  // namespace scoreflow::training
