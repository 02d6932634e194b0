#pragma once
// Labelled image data sets from IDX files (MNIST, Fashion-MNIST), and a seeded mini-batch loader
// (its batching and shuffling are batching.hpp's, shared with the trainer's data sources).
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/data/batching.hpp"
#include "scoreflow/torch/data/idx.hpp"
#include "scoreflow/torch/io/io_error.hpp"

namespace scoreflow {

// ---- locating the files ----------------------------------------------------------------------

/// The four files of an MNIST-style data set.
struct DatasetPaths {
  std::filesystem::path train_images, train_labels, test_images, test_labels;
};

namespace detail {
/// `dir/stem`, else `dir/stem.gz`, else the dotted spelling some mirrors use
/// ("train-images.idx3-ubyte"); empty if none exists.
inline std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& stem) {
  std::string dotted = stem;
  if (const auto dash = dotted.rfind("-idx"); dash != std::string::npos) dotted[dash] = '.';
  for (const auto& name : {stem, stem + ".gz", dotted, dotted + ".gz"}) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / name, ec)) return dir / name;
  }
  return {};
}

/// Looks in `dir/subdir` first (the layout prepare_data writes), then in `dir` itself.
inline DatasetPaths locate_dataset(const std::filesystem::path& dir, const std::string& subdir, const char* what) {
  for (const auto& candidate : {dir / subdir, dir}) {
    DatasetPaths p{find_idx_file(candidate, "train-images-idx3-ubyte"),
                   find_idx_file(candidate, "train-labels-idx1-ubyte"),
                   find_idx_file(candidate, "t10k-images-idx3-ubyte"),
                   find_idx_file(candidate, "t10k-labels-idx1-ubyte")};
    if (!p.train_images.empty() && !p.train_labels.empty() && !p.test_images.empty() && !p.test_labels.empty())
      return p;
  }
  throw_io(dir, "no complete ", what, " data set here or in '", subdir,
           "/': need train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
           "t10k-labels-idx1-ubyte (raw or .gz); examples/prepare_data.sh creates them");
}
}  // namespace detail

/// MNIST in `dir/mnist/` or `dir/` (raw or gzip files).
inline DatasetPaths mnist_paths(const std::filesystem::path& dir) {
  return detail::locate_dataset(dir, "mnist", "MNIST");
}
/// Fashion-MNIST in `dir/fashion-mnist/` or `dir/` (e.g. /usr/share/datasets/fashion-mnist).
inline DatasetPaths fashion_mnist_paths(const std::filesystem::path& dir) {
  return detail::locate_dataset(dir, "fashion-mnist", "Fashion-MNIST");
}

// ---- the data set ----------------------------------------------------------------------------

enum class Split { train, test };

/// Images float32 [N,C,H,W] in [0, 1] (C = 1 and 28×28 for MNIST) with int64 labels [N].
struct ImageDataset {
  torch::Tensor images;
  torch::Tensor labels;

  std::int64_t size() const { return images.size(0); }
  /// Both tensors on `device` (for example to index batches on the GPU, with no copy per batch).
  ImageDataset to(torch::Device device) const { return {images.to(device), labels.to(device)}; }
};

namespace detail {
inline void check_dataset(const ImageDataset& data, const char* where) {
  if (!data.images.defined() || !data.labels.defined())
    throw shape_error(concat(where, ": images or labels undefined"));
  if (data.images.dim() != 4 || data.labels.dim() != 1)
    throw shape_error(concat(where, ": need images [N,C,H,W] and labels [N]; got ", data.images.dim(), " and ",
                             data.labels.dim(), " dimensions"));
  if (data.images.size(0) != data.labels.size(0))
    throw shape_error(concat(where, ": ", data.images.size(0), " images but ", data.labels.size(0), " labels"));
}
}  // namespace detail

/// An image file and its label file; their counts must match.
inline ImageDataset load_image_dataset(const std::filesystem::path& images_path,
                                       const std::filesystem::path& labels_path) {
  ImageDataset data{read_idx_images(images_path), read_idx_labels(labels_path)};
  if (data.images.size(0) != data.labels.size(0))
    detail::throw_io(images_path, "holds ", data.images.size(0), " images but '", labels_path.string(), "' holds ",
                     data.labels.size(0), " labels");
  return data;
}

inline ImageDataset load_image_dataset(const DatasetPaths& paths, Split split) {
  return split == Split::train ? load_image_dataset(paths.train_images, paths.train_labels)
                               : load_image_dataset(paths.test_images, paths.test_labels);
}

// ---- batches ---------------------------------------------------------------------------------

struct BatchLoaderOptions {
  std::int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;     ///< drop the last, smaller batch of an epoch
  std::uint64_t seed = 0;     ///< with `shuffle`, the order of epoch e depends on (seed, e) only
  torch::Device device = torch::kCPU;  ///< where batches are delivered
};

/// Mini-batches of an ImageDataset, epoch by epoch:
///
///     BatchLoader loader(data, {.batch_size = 128, .seed = 1, .device = torch::kCUDA});
///     for (std::int64_t epoch = 0; epoch < epochs; ++epoch)
///       for (const Batch& b : loader.epoch(epoch)) train_step(b.images, b.labels);
///
/// Epoch e is shuffled with shuffled_order(N, seed, e) (batching.hpp), the trainer's own order:
/// a loader and training::tensor_source with the same seed and batch size yield the same batches.
/// Batches are gathered where the data set lives and then moved to `device`; to avoid a
/// host→device copy per batch, pass a data set already moved with `ImageDataset::to`.
class BatchLoader {
 public:
  /// The batches of one epoch (a random-access range that outlives the loader).
  using Epoch = EpochBatches;

  BatchLoader(ImageDataset data, BatchLoaderOptions options = {}) : data_(std::move(data)), options_(options) {
    detail::check_dataset(data_, "BatchLoader");
    detail::require(options_.batch_size >= 1, "BatchLoader batch_size", options_.batch_size, "must be ≥ 1");
    // A loader that yields nothing would make a training loop silently do nothing.
    if (batches_per_epoch() == 0)
      throw invalid_option(detail::concat("BatchLoader drop_last = true with batch_size = ", options_.batch_size,
                                          " and only ", data_.size(), " samples: no batch at all"));
  }

  const ImageDataset& dataset() const { return data_; }
  const BatchLoaderOptions& options() const { return options_; }

  std::int64_t batches_per_epoch() const { return batch_count(data_.size(), options_.batch_size, options_.drop_last); }

  /// The order in which epoch `epoch` visits the samples (0..N-1 when not shuffling).
  std::vector<std::int64_t> epoch_order(std::int64_t epoch) const {
    detail::require(epoch >= 0, "BatchLoader epoch", epoch, "must be ≥ 0");
    if (options_.shuffle) return shuffled_order(data_.size(), options_.seed, epoch);
    std::vector<std::int64_t> identity(static_cast<std::size_t>(data_.size()));
    std::iota(identity.begin(), identity.end(), std::int64_t{0});
    return identity;
  }

  /// The batches of epoch `epoch`, as a range.
  Epoch epoch(std::int64_t epoch) const {
    return Epoch(data_.images, data_.labels, epoch_order(epoch), options_.batch_size, options_.drop_last,
                 options_.device);
  }

 private:
  ImageDataset data_;
  BatchLoaderOptions options_;
};

}  // namespace scoreflow
