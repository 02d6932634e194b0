#pragma once
// The trainer's view of data (train_loop.hpp): a DataSource opens an epoch and streams its
// batches. tensor_source (tensors in memory) and loader_source (a BatchLoader, dataset.hpp) are
// thin adapters over data/batching.hpp, the one batching path: the same shuffle (shuffled_order),
// the same batch type (scoreflow::Batch), the same count of batches (batch_count).
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/data/batching.hpp"

namespace scoreflow::training {

using scoreflow::shuffled_order;

/// Which epoch a data source is asked for: batches of batch_size in an order fixed by
/// (seed, epoch).
struct EpochRequest {
  std::int64_t epoch;
  std::int64_t batch_size;
  std::uint64_t seed;
};

/// The batches of one epoch, one per call; std::nullopt ends the epoch.
using BatchStream = std::function<std::optional<Batch>()>;

/// Any data: `open` starts an epoch. The same request must give the same batches (the trainer
/// reopens an epoch and skips batches when resuming). `batches_per_epoch` (optional) lets the
/// trainer report an ETA from the first step on.
struct DataSource {
  std::function<BatchStream(const EpochRequest&)> open;
  std::function<std::int64_t(std::int64_t batch_size)> batches_per_epoch{};
};

namespace detail {
/// A random-access range of batches (EpochBatches, or a loader's epoch) as a stream.
template <class Range>
BatchStream stream_of(Range range) {
  auto shared = std::make_shared<const Range>(std::move(range));
  return [shared, i = std::int64_t{0}]() mutable -> std::optional<Batch> {
    if (i >= static_cast<std::int64_t>(shared->size())) return std::nullopt;
    auto b = (*shared)[i++];
    return Batch{b.images, b.labels};
  };
}
}  // namespace detail

/// An in-memory data source over images N×C×H×W and labels N (labels may be undefined),
/// reshuffled every epoch with shuffled_order(N, request seed, epoch); the last short batch is
/// kept unless drop_last. Batches stay on the tensors' device (the trainer moves them).
inline DataSource tensor_source(torch::Tensor images, torch::Tensor labels = {}, bool drop_last = false) {
  if (!images.defined() || images.dim() != 4 || images.size(0) == 0)
    throw shape_error("tensor_source: images must be a non-empty N×C×H×W tensor");
  if (labels.defined() && (labels.dim() != 1 || labels.size(0) != images.size(0)))
    throw shape_error(scoreflow::detail::concat("tensor_source: labels must be 1-D with ", images.size(0),
                                                " entries, got ", labels.sizes()));
  const auto n = images.size(0);
  DataSource source;
  source.open = [images, labels, drop_last, n](const EpochRequest& r) -> BatchStream {
    scoreflow::detail::require(r.batch_size > 0, "batch_size", r.batch_size, "must be positive");
    return detail::stream_of(
        EpochBatches(images, labels, shuffled_order(n, r.seed, r.epoch), r.batch_size, drop_last, images.device()));
  };
  source.batches_per_epoch = [n, drop_last](std::int64_t bs) { return batch_count(n, bs, drop_last); };
  return source;
}

/// A data source over a loader shaped like scoreflow::BatchLoader (dataset.hpp):
/// `batches_per_epoch()`, `options().batch_size`, and `epoch(e)` giving a random-access range of
/// batches with `.images` and `.labels`. The loader keeps its own shuffling seed (its order is a
/// function of (its seed, epoch), so resuming stays exact; a BatchLoader with the trainer's seed
/// gives tensor_source's batches); the trainer's batch_size must equal the loader's.
template <class Loader>
  requires requires(const Loader& l, std::int64_t e) {
    { l.batches_per_epoch() } -> std::convertible_to<std::int64_t>;
    { l.options().batch_size } -> std::convertible_to<std::int64_t>;
    { l.epoch(e).size() } -> std::convertible_to<std::int64_t>;
    { l.epoch(e)[e].images } -> std::convertible_to<torch::Tensor>;
    { l.epoch(e)[e].labels } -> std::convertible_to<torch::Tensor>;
  }
DataSource loader_source(Loader loader) {
  auto shared = std::make_shared<const Loader>(std::move(loader));
  DataSource source;
  source.open = [shared](const EpochRequest& r) -> BatchStream {
    const std::int64_t own = shared->options().batch_size;
    if (r.batch_size != own)
      throw invalid_option(
          scoreflow::detail::concat("loader_source: batch_size = ", r.batch_size,
                                    " (trainer options) differs from the loader's batch_size = ", own));
    return detail::stream_of(shared->epoch(r.epoch));
  };
  source.batches_per_epoch = [shared](std::int64_t) { return static_cast<std::int64_t>(shared->batches_per_epoch()); };
  return source;
}

}  // namespace scoreflow::training
