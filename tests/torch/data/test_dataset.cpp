// Data sets from IDX pairs, locating MNIST-style files, seeded shuffling and batching (dataset.hpp,
// batching.hpp).
#include <torch/types.h>

#include <algorithm>
#include <filesystem>

#include "scoreflow/torch/data/dataset.hpp"
#include "torch/data_helpers.hpp"

namespace test_dataset {

using namespace scoreflow;
using sftest::check_io_error;

namespace {
/// N tiny images whose every pixel equals (index / 255) and label = index % 10, so a batch can be
/// checked for image/label pairing.
ImageDataset indexed_dataset(std::int64_t n) {
  auto index = torch::arange(n, torch::kLong);
  auto images = (index.to(torch::kFloat) / 255.0f).view({n, 1, 1, 1}).expand({n, 1, 2, 3}).contiguous();
  return {images, index % 10};
}
std::vector<std::int64_t> batch_indices(const Batch& b) {
  auto idx = (b.images.select(1, 0).select(1, 0).select(1, 0) * 255.0f).round().to(torch::kLong);
  return std::vector<std::int64_t>(idx.data_ptr<std::int64_t>(), idx.data_ptr<std::int64_t>() + idx.numel());
}
void write_dataset_files(const std::filesystem::path& dir, bool gz, std::int64_t n_train = 5, std::int64_t n_test = 3) {
  std::filesystem::create_directories(dir);
  const std::string ext = gz ? ".gz" : "";
  write_idx(dir / ("train-images-idx3-ubyte" + ext), torch::zeros({n_train, 28, 28}, torch::kByte));
  write_idx(dir / ("train-labels-idx1-ubyte" + ext), torch::zeros({n_train}, torch::kByte));
  write_idx(dir / ("t10k-images-idx3-ubyte" + ext), torch::zeros({n_test, 28, 28}, torch::kByte));
  write_idx(dir / ("t10k-labels-idx1-ubyte" + ext), torch::zeros({n_test}, torch::kByte));
}
}  // namespace

TEST_CASE("dataset: mnist_paths and fashion_mnist_paths find raw or gzip files") {
  sftest::TempDir dir;
  write_dataset_files(dir / "mnist", false);
  write_dataset_files(dir / "fashion-mnist", true);
  const auto m = mnist_paths(dir.path());
  CHECK(m.train_images == dir / "mnist" / "train-images-idx3-ubyte");
  CHECK(m.test_labels == dir / "mnist" / "t10k-labels-idx1-ubyte");
  const auto f = fashion_mnist_paths(dir.path());
  CHECK(f.train_labels == dir / "fashion-mnist" / "train-labels-idx1-ubyte.gz");
  CHECK(f.test_images == dir / "fashion-mnist" / "t10k-images-idx3-ubyte.gz");
  // The directory itself works too.
  CHECK(mnist_paths(dir / "fashion-mnist").train_images == f.train_images);

  auto train = load_image_dataset(m, Split::train);
  auto test = load_image_dataset(f, Split::test);
  CHECK(train.size() == 5);
  CHECK(test.size() == 3);
  CHECK(train.images.sizes().vec() == std::vector<std::int64_t>{5, 1, 28, 28});
  CHECK(sftest::dtype_name(test.labels) == "Long");

  // Incomplete: one file missing → the error names the directory and the expected files.
  std::filesystem::remove(dir / "mnist" / "t10k-labels-idx1-ubyte");
  check_io_error([&] { mnist_paths(dir.path()); }, dir.path(), "t10k-labels-idx1-ubyte");
  check_io_error([&] { fashion_mnist_paths(dir / "nothing"); }, dir / "nothing", "no complete Fashion-MNIST");
}

TEST_CASE("dataset: image and label counts must match") {
  sftest::TempDir dir;
  write_idx(dir / "img", torch::zeros({4, 2, 2}, torch::kByte));
  write_idx(dir / "lab", torch::zeros({3}, torch::kByte));
  check_io_error([&] { load_image_dataset(dir / "img", dir / "lab"); }, dir / "img", "4 images but");
  check_io_error([&] { load_image_dataset(dir / "img", dir / "lab"); }, dir / "lab", "3 labels");
}

TEST_CASE("dataset: BatchLoader covers every sample once per epoch, in batch_size pieces") {
  const auto data = indexed_dataset(10);
  for (bool drop_last : {false, true}) {
    CAPTURE(drop_last);
    BatchLoader loader(data, {.batch_size = 3, .shuffle = true, .drop_last = drop_last, .seed = 5});
    CHECK(loader.batches_per_epoch() == (drop_last ? 3 : 4));
    std::vector<std::int64_t> seen;
    std::vector<std::int64_t> sizes;
    for (const Batch& b : loader.epoch(0)) {
      sizes.push_back(b.images.size(0));
      CHECK(b.images.sizes().slice(1).vec() == std::vector<std::int64_t>{1, 2, 3});
      const auto idx = batch_indices(b);
      // Labels stay with their images.
      for (std::size_t k = 0; k < idx.size(); ++k) CHECK(b.labels[static_cast<long>(k)].item<std::int64_t>() == idx[k] % 10);
      seen.insert(seen.end(), idx.begin(), idx.end());
    }
    CHECK(sizes == (drop_last ? std::vector<std::int64_t>{3, 3, 3} : std::vector<std::int64_t>{3, 3, 3, 1}));
    // Batches follow epoch_order.
    const auto order = loader.epoch_order(0);
    CHECK(seen == std::vector<std::int64_t>(order.begin(), order.begin() + static_cast<long>(seen.size())));
    if (!drop_last) {
      std::sort(seen.begin(), seen.end());
      CHECK(seen == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    }
  }
}

TEST_CASE("dataset: BatchLoader order depends only on (seed, epoch)") {
  const auto data = indexed_dataset(50);
  BatchLoader a(data, {.batch_size = 8, .seed = 1});
  BatchLoader b(data, {.batch_size = 8, .seed = 1});
  BatchLoader c(data, {.batch_size = 8, .seed = 2});
  CHECK(a.epoch_order(3) == b.epoch_order(3));
  CHECK(a.epoch_order(0) != a.epoch_order(1));
  CHECK(a.epoch_order(0) != c.epoch_order(0));
  // Batches, not only the order, are reproducible, and random access matches iteration.
  auto e = a.epoch(2);
  std::int64_t i = 0;
  for (const Batch& batch : b.epoch(2)) CHECK(torch::equal(batch.images, e[i++].images));
  CHECK(i == 7);
  CHECK_THROWS_AS(e[7], invalid_option);
  // Without shuffling the order is 0..N-1 in every epoch.
  BatchLoader plain(data, {.batch_size = 8, .shuffle = false});
  CHECK(plain.epoch_order(4) == plain.epoch_order(0));
  CHECK(batch_indices(plain.epoch(4)[1]) == std::vector<std::int64_t>{8, 9, 10, 11, 12, 13, 14, 15});
  // The epoch range outlives a temporary loader.
  auto detached = BatchLoader(data, {.batch_size = 50, .shuffle = false}).epoch(0);
  CHECK(batch_indices(detached[0]).size() == 50);
  // One shuffle for the loader and the trainer (batching.hpp).
  CHECK(a.epoch_order(3) == shuffled_order(50, 1, 3));
}

TEST_CASE("dataset: EpochBatches cuts an order into batches, with or without labels") {
  const auto data = indexed_dataset(7);
  const std::vector<std::int64_t> order{6, 5, 4, 3, 2, 1, 0};
  CHECK(batch_count(7, 3, false) == 3);
  CHECK(batch_count(7, 3, true) == 2);
  CHECK(batch_count(6, 3, false) == 2);
  const EpochBatches kept(data.images, data.labels, order, 3, /*drop_last=*/false, torch::kCPU);
  REQUIRE(kept.size() == 3);
  CHECK(batch_indices(kept[0]) == std::vector<std::int64_t>{6, 5, 4});
  CHECK(batch_indices(kept[2]) == std::vector<std::int64_t>{0});
  CHECK(kept[2].labels.item<std::int64_t>() == 0);
  const EpochBatches unlabelled(data.images, torch::Tensor{}, order, 3, /*drop_last=*/true, torch::kCPU);
  CHECK(unlabelled.size() == 2);
  CHECK_FALSE(unlabelled[1].labels.defined());
  CHECK(batch_indices(unlabelled[1]) == std::vector<std::int64_t>{3, 2, 1});
  CHECK_THROWS_AS(unlabelled[2], invalid_option);
}

TEST_CASE("dataset: BatchLoader options are validated and batches go to the device") {
  const auto data = indexed_dataset(10);
  CHECK_THROWS_AS(BatchLoader(data, {.batch_size = 0}), invalid_option);
  CHECK_THROWS_AS(BatchLoader(data, {.batch_size = 11, .drop_last = true}), invalid_option);
  CHECK(BatchLoader(data, {.batch_size = 11}).batches_per_epoch() == 1);
  CHECK_THROWS_AS(BatchLoader(data, {}).epoch_order(-1), invalid_option);
  CHECK_THROWS_AS(BatchLoader({data.images, data.labels.narrow(0, 0, 9)}, {}), shape_error);
  CHECK_THROWS_AS(BatchLoader({data.images.flatten(1), data.labels}, {}), shape_error);
  // The meta device needs no hardware but is a different device: batches must land there.
  BatchLoader meta(data, {.batch_size = 4, .device = torch::Device(torch::kMeta)});
  const auto batch = meta.epoch(0)[0];
  CHECK(batch.images.device().type() == torch::kMeta);
  CHECK(batch.labels.device().type() == torch::kMeta);
  CHECK(batch.images.size(0) == 4);
}

TEST_CASE("dataset: the real Fashion-MNIST training set batches as expected") {
  const std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir / "train-images-idx3-ubyte.gz")) {
    MESSAGE("Fashion-MNIST not installed at ", dir.string(), "; skipped");
    return;
  }
  auto train = load_image_dataset(fashion_mnist_paths(dir), Split::train);
  CHECK(train.size() == 60000);
  CHECK(torch::equal(torch::bincount(train.labels), torch::full({10}, 6000, torch::kLong)));
  BatchLoader loader(train, {.batch_size = 256, .seed = 3});
  CHECK(loader.batches_per_epoch() == 235);
  auto last = loader.epoch(0)[234];
  CHECK(last.images.size(0) == 60000 - 234 * 256);
}
}  // namespace test_dataset
