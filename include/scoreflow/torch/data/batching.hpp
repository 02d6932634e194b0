#pragma once
// Mini-batches: the one batching path under both BatchLoader (dataset.hpp) and the trainer's data
// sources (training/data_source.hpp). One batch type, one shuffle, one count of batches.
//
// Shuffling uses scoreflow::Generator (xoshiro256**) and our own Fisher–Yates, not torch's RNG:
// the order of every epoch is then a pure function of (seed, epoch), identical on every platform
// and LibTorch version, and a run resumed mid-epoch sees exactly the batches it would have seen
// (the trainer's bit-exact resume rests on this).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/random.hpp"

namespace scoreflow {

/// One mini-batch: images B×C×H×W and integer labels B (undefined where the data has none).
struct Batch {
  torch::Tensor images;  ///< [B,C,H,W]
  torch::Tensor labels;  ///< [B], or undefined
};

// ---- shuffling -------------------------------------------------------------------------------

// uniform_index and random_permutation live in the core (tensor/random.hpp).

/// The seed's "shuffle before each epoch" (Part B's training loops): a permutation of 0 … n−1
/// determined by (seed, epoch) alone. Each epoch seeds its own generator, so epoch e needs none
/// of the draws of earlier epochs (a run resumed at epoch e starts there); the multiplier is
/// 2^64/φ, splitmix64's increment, and Generator's splitmix64 seeding decorrelates the results.
/// The order every trained model of the seed's deliverables was shuffled with: changing this
/// formula changes their runs and breaks resuming their checkpoints bit for bit.
inline std::vector<std::int64_t> shuffled_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch) {
  detail::require(n >= 0, "n", n, "must be non-negative");
  Generator gen(seed ^ (0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(epoch + 1)));
  return random_permutation(n, gen);
}

/// How many batches of batch_size an epoch of n samples has: the last, shorter one counts unless
/// drop_last.
inline std::int64_t batch_count(std::int64_t n, std::int64_t batch_size, bool drop_last) {
  return drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
}

// ---- the batches of one epoch ----------------------------------------------------------------

/// One epoch's batches as a random-access range: batch i holds the samples order[i·B, (i+1)·B)
/// (B = batch_size; all are B long except perhaps the last), gathered where the data lives and
/// then moved to `device`. Holds its own references to the tensors (shared, not copied), so it
/// stays valid after whatever made it is gone.
class EpochBatches {
 public:
  /// images N×C×H×W, labels N or undefined, order a permutation of 0 … N−1 (batch_size ≥ 1).
  EpochBatches(torch::Tensor images, torch::Tensor labels, const std::vector<std::int64_t>& order,
               std::int64_t batch_size, bool drop_last, torch::Device device)
      : images_(std::move(images)),
        labels_(std::move(labels)),
        batch_size_(batch_size),
        batches_(batch_count(static_cast<std::int64_t>(order.size()), batch_size, drop_last)),
        device_(device),
        order_(torch::tensor(order, torch::TensorOptions().dtype(torch::kLong)).to(images_.device())) {}

  [[nodiscard]] std::int64_t size() const { return batches_; }

  /// Batch `i` of this epoch (0 ≤ i < size()).
  Batch operator[](std::int64_t i) const {
    if (i < 0 || i >= batches_)
      throw invalid_option(detail::concat("batch index = ", i, ": must be in [0, ", batches_, ")"));
    const auto start = i * batch_size_;
    const auto index = order_.narrow(0, start, std::min(batch_size_, order_.size(0) - start));
    return {images_.index_select(0, index).to(device_),
            labels_.defined() ? labels_.index_select(0, index).to(device_) : torch::Tensor{}};
  }

  class iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(const EpochBatches* epoch, std::int64_t i) : epoch_(epoch), i_(i) {}
    Batch operator*() const { return (*epoch_)[i_]; }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    iterator operator++(int) {
      auto old = *this;
      ++i_;
      return old;
    }
    bool operator==(const iterator& other) const { return i_ == other.i_; }

   private:
    const EpochBatches* epoch_ = nullptr;
    std::int64_t i_ = 0;
  };
  [[nodiscard]] iterator begin() const { return {this, 0}; }
  [[nodiscard]] iterator end() const { return {this, batches_}; }

 private:
  torch::Tensor images_, labels_;
  std::int64_t batch_size_;
  std::int64_t batches_;
  torch::Device device_;
  torch::Tensor order_;
};

}  // namespace scoreflow
