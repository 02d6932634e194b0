#pragma once
// Data-parallel gradient synchronisation, what PyTorch's DistributedDataParallel does in Python
// and LibTorch's C++ frontend does not have (Li et al. 2020, "PyTorch Distributed: Experiences
// on Accelerating Data Parallel Training", §3.2):
//   - parameters are grouped into flat buckets in reverse registration order (gradients become
//     ready roughly backwards), the first small (1 MiB) so communication starts early, the rest
//     up to 25 MiB (DDP's bucket_cap_mb);
//   - each bucket is summed over all ranks with one all-reduce of its flat buffer (coalesced);
//   - with overlap_with_backward, a hook on every parameter copies its gradient into its bucket
//     as autograd produces it, and a bucket's all-reduce starts as soon as it is full — while
//     the backward pass goes on — strictly in bucket order, so every rank issues the same
//     collectives in the same order;
//   - finish() (after backward) starts whatever is left, waits, and writes the sums back.
// The caller scales each rank's loss so that the sum is the global batch's gradient (the
// trainer weights a rank's mean loss by its share of the global batch, train_loop.hpp), so no
// division happens here and shards of unequal size are exact.
//
// A parameter that gets no gradient in a step (unused by the forward pass) contributes zeros,
// and keeps an undefined .grad where it had none, as in a single process. Every rank must run the
// same model, so the same parameters get gradients on every rank. Its bucket, and every later
// one, then starts only in finish(): correct, but no longer overlapped (DDP instead refuses
// unused parameters unless find_unused_parameters is set).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/distributed/communicator.hpp"

namespace scoreflow::distributed {

struct BucketOptions {
  std::int64_t bucket_bytes = std::int64_t{25} << 20;       ///< DDP's bucket_cap_mb = 25
  std::int64_t first_bucket_bytes = std::int64_t{1} << 20;  ///< DDP's first bucket: 1 MiB
  bool overlap_with_backward = true;  ///< start each bucket's all-reduce from the backward pass
};

class GradientBuckets {
 public:
  GradientBuckets(std::vector<torch::Tensor> parameters, std::shared_ptr<Communicator> comm, BucketOptions options = {})
      : comm_(std::move(comm)), options_(options) {
    if (!comm_) throw invalid_option("GradientBuckets: communicator is null");
    scoreflow::detail::require(options_.bucket_bytes > 0, "bucket_bytes", options_.bucket_bytes, "must be positive");
    scoreflow::detail::require(options_.first_bucket_bytes > 0, "first_bucket_bytes", options_.first_bucket_bytes,
                               "must be positive");
    std::vector<torch::Tensor> trainable;
    for (auto& p : parameters)
      if (p.requires_grad()) trainable.push_back(p);
    std::reverse(trainable.begin(), trainable.end());
    for (auto& p : trainable) {
      const auto bytes = p.numel() * static_cast<std::int64_t>(p.element_size());
      // The bucket being filled is the first while only one exists: DDP's small first bucket.
      const auto cap = buckets_.size() <= 1 ? options_.first_bucket_bytes : options_.bucket_bytes;
      const bool fits = !buckets_.empty() && buckets_.back().dtype == p.scalar_type() &&
                        buckets_.back().device == p.device() && buckets_.back().bytes + bytes <= cap;
      if (!fits) buckets_.push_back(Bucket{{}, {}, 0, 0, p.scalar_type(), p.device(), 0, false, nullptr});
      auto& b = buckets_.back();
      slots_.push_back(Slot{p, buckets_.size() - 1, b.numel, false});
      b.slots.push_back(slots_.size() - 1);
      b.numel += p.numel();
      b.bytes += bytes;
    }
    for (auto& b : buckets_) b.flat = torch::zeros({b.numel}, torch::TensorOptions().dtype(b.dtype).device(b.device));
    if (options_.overlap_with_backward && comm_->size() > 1)
      for (std::size_t i = 0; i < slots_.size(); ++i)
        hooks_.push_back(slots_[i].parameter.register_hook([this, i](const torch::Tensor& grad) { on_gradient(i, grad); }));
  }

  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;
  ~GradientBuckets() {
    for (std::size_t i = 0; i < hooks_.size(); ++i) slots_[i].parameter.remove_hook(hooks_[i]);
  }

  /// Before the backward pass of step `step` (named in errors).
  void begin(std::int64_t step) {
    step_ = step;
    next_ = 0;
    for (auto& s : slots_) s.ready = false;
    for (auto& b : buckets_) {
      b.ready = 0;
      b.started = false;
      b.pending.reset();
    }
    armed_ = true;
  }

  /// After the backward pass: every bucket summed over all ranks, written back into the .grad
  /// of its parameters.
  void finish() {
    if (!armed_) throw invalid_option("GradientBuckets::finish without begin");
    armed_ = false;
    if (comm_->size() == 1) return;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (!slots_[i].ready) stage(i, slots_[i].parameter.grad());
    start_ready_buckets();
    for (auto& b : buckets_) b.pending->wait();
    for (auto& s : slots_) {
      auto& g = s.parameter.mutable_grad();
      if (!g.defined()) continue;  // no gradient here: none anywhere (same model on every rank)
      g.copy_(buckets_[s.bucket].flat.narrow(0, s.offset, s.parameter.numel()).view_as(g));
    }
  }

  [[nodiscard]] std::size_t bucket_count() const { return buckets_.size(); }
  /// Elements all-reduced per step (the communication volume is this × element size).
  [[nodiscard]] std::int64_t elements() const {
    std::int64_t n = 0;
    for (const auto& b : buckets_) n += b.numel;
    return n;
  }

 private:
  struct Slot {
    torch::Tensor parameter;
    std::size_t bucket;
    std::int64_t offset;
    bool ready;
  };
  struct Bucket {
    std::vector<std::size_t> slots;
    torch::Tensor flat;
    std::int64_t numel, bytes;
    torch::ScalarType dtype;
    torch::Device device;
    std::size_t ready;
    bool started;
    std::unique_ptr<PendingCollective> pending;
  };

  void on_gradient(std::size_t i, const torch::Tensor& grad) {
    if (!armed_) return;  // a backward pass outside the trainer's step (e.g. a user's probe)
    stage(i, grad);
    start_ready_buckets();
  }

  /// Copies parameter i's gradient (zeros when undefined) into its bucket.
  void stage(std::size_t i, const torch::Tensor& grad) {
    auto& s = slots_[i];
    auto& b = buckets_[s.bucket];
    if (s.ready || b.started)
      throw invalid_option(scoreflow::detail::concat("gradient of parameter ", i, " arrived twice in step ", step_,
                                                     " (two backward passes per step need a bucket sync each)"));
    auto view = b.flat.narrow(0, s.offset, s.parameter.numel());
    if (grad.defined())
      view.copy_(grad.reshape({-1}));
    else
      view.zero_();
    s.ready = true;
    ++b.ready;
  }

  void start_ready_buckets() {
    while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].slots.size()) {
      auto& b = buckets_[next_];
      b.started = true;
      b.pending = comm_->all_reduce_sum_async(
          b.flat, scoreflow::detail::concat("gradient bucket ", next_ + 1, " of ", buckets_.size(), " at step ", step_));
      ++next_;
    }
  }

  std::shared_ptr<Communicator> comm_;
  BucketOptions options_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<unsigned> hooks_;
  std::size_t next_ = 0;
  std::int64_t step_ = 0;
  bool armed_ = false;
};

}  // namespace scoreflow::distributed
