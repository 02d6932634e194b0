#pragma once
// Labelled image data sets from IDX files (MNIST, Fashion-MNIST), and a seeded mini-batch loader.
//
// Shuffling uses scoreflow::Generator (xoshiro256**) and our own Fisher–Yates, not torch's RNG:
// the order of every epoch is then a pure function of (seed, epoch), identical on every platform
// and LibTorch version, and a run resumed at epoch e sees exactly the batches it would have seen.
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/random.hpp"
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

// ---- shuffling -------------------------------------------------------------------------------

/// Uniform integer in [0, bound), without modulo bias (rejects the few values past the last
/// complete multiple of bound).
inline std::uint64_t uniform_index(Generator& gen, std::uint64_t bound) {
  if (bound == 0) throw invalid_option("uniform_index: bound = 0: must be positive");
  const std::uint64_t threshold = (0 - bound) % bound;  // = 2^64 mod bound
  for (;;) {
    const std::uint64_t r = gen.next_u64();
    if (r >= threshold) return r % bound;
  }
}

/// A uniformly random permutation of 0..n-1 (Fisher–Yates).
inline std::vector<std::int64_t> random_permutation(std::int64_t n, Generator& gen) {
  if (n < 0) throw invalid_option(detail::concat("random_permutation: n = ", n, ": must be ≥ 0"));
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(uniform_index(gen, static_cast<std::uint64_t>(i) + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

namespace detail {
/// splitmix64's finaliser: decorrelates nearby inputs (seed, seed+1, epoch 0, 1...).
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace detail

// ---- batches ---------------------------------------------------------------------------------

struct BatchLoaderOptions {
  std::int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;     ///< drop the last, smaller batch of an epoch
  std::uint64_t seed = 0;     ///< with `shuffle`, the order of epoch e depends on (seed, e) only
  torch::Device device = torch::kCPU;  ///< where batches are delivered
};

struct Batch {
  torch::Tensor images;  ///< [B,C,H,W]
  torch::Tensor labels;  ///< [B]
};

/// Mini-batches of an ImageDataset, epoch by epoch:
///
///     BatchLoader loader(data, {.batch_size = 128, .seed = 1, .device = torch::kCUDA});
///     for (std::int64_t epoch = 0; epoch < epochs; ++epoch)
///       for (const Batch& b : loader.epoch(epoch)) train_step(b.images, b.labels);
///
/// Batches are gathered where the data set lives and then moved to `device`; to avoid a
/// host→device copy per batch, pass a data set already moved with `ImageDataset::to`.
class BatchLoader {
 public:
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

  std::int64_t batches_per_epoch() const {
    const auto n = data_.size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }

  /// The order in which epoch `epoch` visits the samples (0..N-1 when not shuffling).
  std::vector<std::int64_t> epoch_order(std::int64_t epoch) const {
    detail::require(epoch >= 0, "BatchLoader epoch", epoch, "must be ≥ 0");
    if (!options_.shuffle) return random_permutation_identity();
    Generator gen(detail::mix64(options_.seed ^ detail::mix64(static_cast<std::uint64_t>(epoch) + 1)));
    return random_permutation(data_.size(), gen);
  }

  class Epoch;
  /// The batches of one epoch, as a range.
  Epoch epoch(std::int64_t epoch) const;

 private:
  std::vector<std::int64_t> random_permutation_identity() const {
    std::vector<std::int64_t> order(static_cast<std::size_t>(data_.size()));
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
    return order;
  }

  ImageDataset data_;
  BatchLoaderOptions options_;
};

/// One epoch's batches. Holds its own references to the data (tensors are shared, not copied),
/// so it stays valid even if the loader it came from is gone.
class BatchLoader::Epoch {
 public:
  Epoch(ImageDataset data, const BatchLoaderOptions& options, std::int64_t batches,
        const std::vector<std::int64_t>& order)
      : data_(std::move(data)),
        batch_size_(options.batch_size),
        batches_(batches),
        device_(options.device),
        order_(torch::tensor(order, torch::TensorOptions().dtype(torch::kLong)).to(data_.images.device())) {}

  std::int64_t size() const { return batches_; }

  /// Batch `i` of this epoch (0 ≤ i < size()); all are batch_size long except perhaps the last.
  Batch operator[](std::int64_t i) const {
    if (i < 0 || i >= batches_)
      throw invalid_option(detail::concat("BatchLoader batch index = ", i, ": must be in [0, ", batches_, ")"));
    const auto start = i * batch_size_;
    const auto index = order_.narrow(0, start, std::min(batch_size_, order_.size(0) - start));
    return {data_.images.index_select(0, index).to(device_), data_.labels.index_select(0, index).to(device_)};
  }

  class iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(const Epoch* epoch, std::int64_t i) : epoch_(epoch), i_(i) {}
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
    const Epoch* epoch_ = nullptr;
    std::int64_t i_ = 0;
  };
  iterator begin() const { return {this, 0}; }
  iterator end() const { return {this, batches_}; }

 private:
  ImageDataset data_;
  std::int64_t batch_size_;
  std::int64_t batches_;
  torch::Device device_;
  torch::Tensor order_;
};

inline BatchLoader::Epoch BatchLoader::epoch(std::int64_t epoch) const {
  return Epoch(data_, options_, batches_per_epoch(), epoch_order(epoch));
}

}  // namespace scoreflow
