#pragma once
// What the deliverables of both parts share: the data, the evaluator classifier (trained once on
// real training digits, then cached), the model cache, and the evaluation helpers — IDX export,
// CAS and Fréchet distance, the digit grid. Part A and Part B each build on this header alone.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include "common/captions.hpp"
#include "common/report.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/data/idx.hpp"
#include "scoreflow/torch/eval/evaluator.hpp"
#include "scoreflow/torch/io/image_io.hpp"

namespace examples {

/// Everything a part needs from outside: data, the evaluator and where trained models are cached.
struct Context {
  scoreflow::ImageDataset train, test;
  scoreflow::DigitClassifier classifier;
  std::filesystem::path cache;
};

/// The evaluator's note on the page (section "B 0", where Part B begins).
inline constexpr NoteText evaluator_note{
    "B 0", "Evaluator",
    "CAS and Fréchet distance use a small CNN classifier (2 conv + 2 linear layers) trained on the training split; its "
    "accuracy on the held-out real test split is ${accuracy}%. Fréchet distances use its 128-d penultimate features, so they "
    "are comparable within this gallery, not with published FIDs."};

/// The evaluator classifier, trained once on the real training set and cached.
inline scoreflow::DigitClassifier cached_classifier(const scoreflow::ImageDataset& train, const scoreflow::ImageDataset& test,
                                                    const std::filesystem::path& cache, torch::Device device, Report* report) {
  const auto file = cache / "classifier.pt";
  scoreflow::DigitClassifier net(nullptr);
  if (std::filesystem::exists(file)) {
    net = scoreflow::load_classifier(file, device);
  } else {
    Progress p("training the evaluator classifier");
    net = scoreflow::train_classifier(train, {.epochs = 6, .device = device}, [](int e, double loss) {
      std::fprintf(stderr, "[scoreflow] classifier epoch %d loss %.4f\n", e, loss);
    });
    std::filesystem::create_directories(cache);
    scoreflow::save_classifier(net, file);
    if (report) report->timing("train evaluator classifier", p.finish());
  }
  const double acc = scoreflow::classification_accuracy(net, test.images, test.labels);
  std::fprintf(stderr, "[scoreflow] evaluator accuracy on %lld held-out real images: %.2f%%\n",
               static_cast<long long>(test.size()), 100 * acc);
  if (report) report->note(note(evaluator_note, {{"accuracy", std::to_string(100 * acc).substr(0, 5)}}));
  return net;
}

inline scoreflow::ImageDataset limited(const scoreflow::ImageDataset& d, std::int64_t n) {
  if (n <= 0 || n >= d.size()) return d;
  return {d.images.slice(0, 0, n), d.labels.slice(0, 0, n)};
}

/// `nrow` digits a row, each shown three times enlarged.
inline scoreflow::GridOptions digit_grid(std::int64_t nrow) {
  scoreflow::GridOptions g;
  g.nrow = nrow;
  g.upscale = 3;
  return g;
}

/// Writes samples and their intended labels (255: none) as IDX (uint8, 28×28).
inline void export_idx(Report& report, const std::string& name, const torch::Tensor& images, const torch::Tensor& labels) {
  const auto bytes = (images.clamp(0, 1) * 255).round().to(torch::kUInt8).reshape({images.size(0), 28, 28});
  scoreflow::write_idx(report.path("samples/" + name + "-images-idx3-ubyte"), bytes);
  scoreflow::write_idx(report.path("samples/" + name + "-labels-idx1-ubyte"), labels.to(torch::kUInt8));
}

struct Quality {
  double cas = NAN, fd = NAN;
};
/// CAS against `labels` (when given) and the Fréchet distance to at least 500 held-out real digits.
inline Quality quality(Context& ctx, const torch::Tensor& images, const torch::Tensor& labels) {
  Quality q;
  if (labels.defined()) q.cas = scoreflow::classification_accuracy(ctx.classifier, images, labels);
  const auto n = std::min<std::int64_t>(ctx.test.size(), std::max<std::int64_t>(images.size(0), 500));
  q.fd = scoreflow::classifier_frechet_distance(ctx.classifier, ctx.test.images.slice(0, 0, n), images);
  return q;
}

/// Saves `images` as the figure's grid PNG (its `image` path) and files the figure in the report.
inline void add_grid(Report& report, Figure f, const torch::Tensor& images, const scoreflow::GridOptions& grid) {
  scoreflow::save_grid_png(report.path(f.image), images, grid);
  report.add(std::move(f));
}

/// 4 samples of each digit from samples ordered digit-major, as one column per digit.
inline torch::Tensor four_per_digit(const torch::Tensor& x) {
  return x.view({10, -1, 1, 28, 28}).slice(1, 0, 4).transpose(0, 1).reshape({-1, 1, 28, 28});
}

}  // namespace examples
