#pragma once
// The collectives the trainer and sharded sampling need, as one small interface: a process's
// rank among `size()` processes, sum, broadcast and gather of tensors, and a barrier. The
// implementation over PyTorch's c10d (Gloo on CPU, NCCL on GPUs) is process_group.hpp; a single
// process is SingleProcess below, where every collective is the identity. The trainer
// (training/train_loop.hpp) and sharded sampling (shard_of, gather_shards below; examples/sample.cpp)
// see only this interface, so they compile without c10d, and a test can hand them any
// implementation.
//
// Every collective names what it is for (`what`, e.g. "gradient bucket 2 of 3 at step 41"), so
// that when a peer process is lost the error says where, and which rank was lost
// (distributed_error).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <torch/types.h>

namespace scoreflow::distributed {

/// A collective or the group's set-up failed: a peer process is gone, timed out, or was started
/// with other settings. The message names the collective, the ranks concerned and the timeout.
struct distributed_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A collective in flight (all_reduce_sum_async); wait() blocks until it is done, within the
/// group's timeout, and throws distributed_error if it failed.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  /// This process's rank, 0 ≤ rank() < size(); rank 0 writes checkpoints and outputs.
  [[nodiscard]] virtual int rank() const = 0;
  /// The number of processes.
  [[nodiscard]] virtual int size() const = 0;
  [[nodiscard]] bool is_main() const { return rank() == 0; }

  /// Replaces each tensor by its sum over all ranks (every rank passes tensors of the same
  /// shapes and dtypes, in the same order).
  virtual void all_reduce_sum(std::vector<torch::Tensor>& tensors, std::string_view what) = 0;
  /// The same for one tensor, started now and finished by wait(): the gradient buckets overlap
  /// these with the rest of the backward pass. The tensor must stay alive until then.
  virtual std::unique_ptr<PendingCollective> all_reduce_sum_async(torch::Tensor tensor, std::string_view what) = 0;
  /// Copies root's tensors into every rank's (same shapes and dtypes on every rank).
  virtual void broadcast(std::vector<torch::Tensor>& tensors, int root, std::string_view what) = 0;
  /// Every rank's `tensor` (same shape and dtype on every rank), indexed by rank, on every rank.
  virtual std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor, std::string_view what) = 0;
  /// Returns once every rank has reached it.
  virtual void barrier(std::string_view what) = 0;
};

/// One process: rank 0 of 1; every collective leaves its tensors as they are.
class SingleProcess final : public Communicator {
 public:
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 1; }
  void all_reduce_sum(std::vector<torch::Tensor>&, std::string_view) override {}
  std::unique_ptr<PendingCollective> all_reduce_sum_async(torch::Tensor, std::string_view) override {
    struct Done final : PendingCollective {
      void wait() override {}
    };
    return std::make_unique<Done>();
  }
  void broadcast(std::vector<torch::Tensor>&, int root, std::string_view what) override {
    if (root != 0)
      throw std::invalid_argument(std::string(what) + ": broadcast from rank " + std::to_string(root) +
                                  " in a group of one process");
  }
  std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor, std::string_view) override { return {tensor}; }
  void barrier(std::string_view) override {}
};

/// Rows [begin, end) of `count` that rank `rank` of `world` holds: contiguous, in rank order,
/// the first count mod world ranks one row longer (so the shards concatenated in rank order are
/// 0 … count−1, the order of one process).
struct Shard {
  std::int64_t begin = 0, end = 0;
  [[nodiscard]] std::int64_t size() const { return end - begin; }
};

inline Shard shard_of(std::int64_t count, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world || count < 0)
    throw std::invalid_argument("shard_of: rank " + std::to_string(rank) + " of " + std::to_string(world) +
                                " processes over " + std::to_string(count) + " rows");
  const std::int64_t base = count / world, extra = count % world;
  const std::int64_t begin = rank * base + std::min<std::int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

/// Gathers each rank's rows (its shard_of(total) of a tensor whose rows are images, samples or
/// labels) into all `total` rows in rank order, on every rank. Shards may differ by one row: each
/// is padded to the longest for the all-gather and trimmed after.
inline torch::Tensor gather_shards(Communicator& comm, const torch::Tensor& local, std::int64_t total,
                                   std::string_view what) {
  const int world = comm.size();
  const Shard mine = shard_of(total, comm.rank(), world);
  if (local.dim() == 0 || local.size(0) != mine.size())
    throw std::invalid_argument(std::string(what) + ": rank " + std::to_string(comm.rank()) + " holds " +
                                (local.dim() == 0 ? std::string("a scalar") : std::to_string(local.size(0)) + " rows") +
                                ", its shard of " + std::to_string(total) + " is " + std::to_string(mine.size()));
  if (world == 1) return local;
  const std::int64_t longest = shard_of(total, 0, world).size();
  auto sizes = local.sizes().vec();
  sizes[0] = longest;
  torch::Tensor padded = torch::zeros(sizes, local.options());
  padded.narrow(0, 0, local.size(0)).copy_(local);
  const auto parts = comm.all_gather(padded.contiguous(), what);
  std::vector<torch::Tensor> rows;
  for (int r = 0; r < world; ++r) rows.push_back(parts[static_cast<std::size_t>(r)].narrow(0, 0, shard_of(total, r, world).size()));
  return torch::cat(rows);
}

}  // namespace scoreflow::distributed
