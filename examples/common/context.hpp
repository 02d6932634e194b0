#pragma once
// What the deliverables of both parts share: the data, the evaluator classifier (trained once on
// real training digits, then cached), the model cache, and the evaluation helpers — IDX export,
// CAS and Fréchet distance, the digit grid. Part A and Part B each build on this header alone.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "common/captions.hpp"
#include "common/report.hpp"
#include "common/training_run.hpp"  // fmt
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/data/idx.hpp"
#include "scoreflow/torch/eval/evaluator.hpp"
#include "scoreflow/torch/eval/sample_quality.hpp"
#include "scoreflow/torch/io/image_io.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"

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
    "CAS and Fréchet distances come from an ensemble of ${members} CNN classifiers (scoreflow/torch/eval/evaluator.hpp; "
    "independently seeded, their class probabilities averaged, their features concatenated) trained on the ${images} "
    "real training images of ${dataset} only, never on generated ones, with random affine augmentation and an 11th "
    "class, \"reject\", learnt from degraded real images (blurred, strokes erased, two digits overlaid, scribbles, "
    "noise): a blurry or broken sample is read as reject, which counts as wrong. It is trained once per dataset and "
    "cached (${cache_state}). Measured by this run on the ${held_out} held-out real images: accuracy ${accuracy}% "
    "(issue 15's target: 99% on MNIST; the gallery stops below ${threshold}%), ${rejected}% of them read as reject; per class, how the held-out images "
    "are read: ${confusion}. Fréchet distances use its ${feature_dims}-d penultimate features on a stated number n of images a "
    "side, beside the distance from n real training images to the same n held-out ones (the floor at that n: the "
    "distance depends on n), so they are comparable within this gallery, not with published FIDs."};

/// "0: 99/100 (1 → 6); 1: …": each class's held-out images and what else they were read as.
inline std::string confusion_text(const scoreflow::ClassReading& r) {
  std::string out;
  const auto classes = r.confusion.size(0), columns = r.confusion.size(1);
  for (std::int64_t c = 0; c < classes; ++c) {
    const auto row = r.confusion[c];
    const auto total = row.sum().item<std::int64_t>();
    std::string misread;
    for (std::int64_t k = 0; k < columns; ++k) {
      const auto n = row[k].item<std::int64_t>();
      if (k == c || n == 0) continue;
      misread += (misread.empty() ? "" : ", ") + std::to_string(n) + " → " + (k == classes ? "reject" : std::to_string(k));
    }
    out += (c ? "; " : "") + std::to_string(c) + ": " + std::to_string(row[c].item<std::int64_t>()) + "/" +
           std::to_string(total) + (misread.empty() ? "" : " (" + misread + ")");
  }
  return out;
}

/// The held-out accuracy the gallery requires of its evaluator: 98.5% on MNIST. Issue 15's target
/// is 99% (the page shows the measured figure beside it): the same code, data and seed measured
/// 99.2% on one 2-core machine and 98.9% on another (a different CPU rounds differently and the
/// training takes another path), so a hard stop at 99% would fail the main job on some machines
/// while the evaluator is no easier to fool. Fashion-MNIST's classes overlap (shirt / T-shirt /
/// pullover): 85% (measured 89.1% on 9,000 images); a classifier trained on a small subset gets
/// its own bar (CI's tiny gallery: Fashion-MNIST's first 2,000 images, 3 epochs; measured 69.7%
/// after 1 epoch and 76.0% after 2). The measurements are in the README ("The evaluator").
inline double required_accuracy(const std::string& dataset, std::int64_t training_images) {
  if (dataset == "mnist") return training_images >= 5000 ? 0.985 : 0.95;
  return training_images >= 5000 ? 0.85 : 0.65;
}

/// The evaluator classifier, trained once per dataset and training-set size, then cached in
/// `cache` (the cache file names both). Throws scoreflow::evaluator_accuracy_error when its
/// held-out accuracy is below required_accuracy: CAS and FD from it would mislead.
inline scoreflow::DigitClassifier cached_classifier(const scoreflow::ImageDataset& train, const scoreflow::ImageDataset& test,
                                                    const std::filesystem::path& cache, torch::Device device, Report* report,
                                                    const std::string& dataset = "mnist", int epochs = 0) {
  scoreflow::ClassifierOptions options;
  options.device = device;
  if (epochs > 0) options.epochs = epochs;  // CI's tiny gallery: a short run, with its own threshold
  const auto file = cache / ("evaluator-" + dataset + "-n" + std::to_string(train.size()) + "-e" +
                             std::to_string(options.epochs) + "-m" + std::to_string(options.members) + ".pt");
  scoreflow::DigitClassifier net(nullptr);
  const bool cached = std::filesystem::exists(file);
  if (cached) {
    net = scoreflow::load_classifier(file, device);
  } else {
    Progress p("training the evaluator classifier (once per dataset; cached)");
    // One thread: the trained weights (and so every CAS and FD on the page) do not depend on the
    // machine's core count; the README's accuracy was measured this way.
    const int threads = torch::get_num_threads();
    scoreflow::models::set_cpu_threads(1);
    net = scoreflow::train_classifier(train, options, [&](std::int64_t m, int e, double loss) {
      std::fprintf(stderr, "[scoreflow] classifier %lld/%lld epoch %d loss %.4f\n", static_cast<long long>(m + 1),
                   static_cast<long long>(options.members), e, loss);
    });
    scoreflow::models::set_cpu_threads(threads);  // and OpenBLAS back to one thread
    std::filesystem::create_directories(cache);
    scoreflow::save_classifier(net, file);
    p.finish();  // not a gallery stage: the cached evaluator is reused by every later run
  }
  const auto reading = scoreflow::read_classes(net, test.images, test.labels);
  const double threshold = required_accuracy(dataset, train.size());
  std::fprintf(stderr, "[scoreflow] evaluator accuracy on %lld held-out real images: %.2f%% (required %.1f%%)\n",
               static_cast<long long>(test.size()), 100 * reading.cas, 100 * threshold);
  scoreflow::require_accuracy(reading.cas, threshold, dataset);
  if (report)
    report->note(note(evaluator_note, {{"images", std::to_string(train.size())}, {"dataset", dataset},
                                       {"members", std::to_string(net->member_count())},
                                       {"feature_dims", std::to_string(net->feature_count())},
                                       {"cache_state", cached ? "this run loaded it from the cache" : "this run trained it"},
                                       {"held_out", std::to_string(test.size())}, {"accuracy", fmt(100 * reading.cas, 4)},
                                       {"threshold", fmt(100 * threshold, 3)}, {"rejected", fmt(100 * reading.rejected, 3)},
                                       {"confusion", confusion_text(reading)}}));
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
  double fd_real = NAN;   ///< n real training vs the same n held-out images: the floor of fd at this n
  std::int64_t n = 0;     ///< images a side of both Fréchet distances
  std::optional<scoreflow::ClassReading> reading{};  ///< per-class CAS, confidence, confusion (labelled samples)
};
/// Images a side of every Fréchet distance on the page (fewer when fewer were generated).
inline constexpr std::int64_t frechet_images = 400;

/// CAS against `labels` (when given) and the Fréchet distance of n = min(N, frechet_images) of
/// the images to n class-balanced held-out real digits, beside n real training digits' distance to
/// the same held-out ones (sample_quality.hpp).
inline Quality quality(Context& ctx, const torch::Tensor& images, const torch::Tensor& labels) {
  Quality q;
  if (labels.defined()) {
    q.reading = scoreflow::read_classes(ctx.classifier, images, labels);
    q.cas = q.reading->cas;
  }
  q.n = std::min<std::int64_t>({images.size(0), frechet_images, ctx.test.size()});
  const auto fr = scoreflow::read_frechet(ctx.classifier, images, labels, ctx.train, ctx.test, q.n);
  q.fd = fr.fd, q.fd_real = fr.real_reference;
  return q;
}

/// "152.3 (n = 400; real vs real at that n: 21.4)".
inline std::string fd_text(const Quality& q) {
  return fmt(q.fd) + " (n = " + std::to_string(q.n) + "; real vs real at that n: " + fmt(q.fd_real) + ")";
}

/// The numbers of an evaluation figure: CAS, reject rate, FD with its real reference, and per
/// intended class the CAS and the mean confidence in that class.
inline Numbers quality_numbers(const Quality& q) {
  Numbers out;
  if (q.reading) {
    out.emplace_back("CAS", fmt(100 * q.cas, 3) + "%");
    out.emplace_back("read as reject", fmt(100 * q.reading->rejected, 3) + "%");
  }
  out.emplace_back("Fréchet distance", fd_text(q));
  if (q.reading) {
    std::string per_class, confidence;
    for (std::size_t c = 0; c < q.reading->per_class_cas.size(); ++c) {
      if (std::isnan(q.reading->per_class_cas[c])) continue;
      per_class += (per_class.empty() ? "" : ", ") + std::to_string(c) + ": " + fmt(100 * q.reading->per_class_cas[c], 3) + "%";
      confidence += (confidence.empty() ? "" : ", ") + std::to_string(c) + ": " + fmt(q.reading->mean_confidence[c], 2);
    }
    out.emplace_back("CAS per class", per_class);
    out.emplace_back("mean confidence in the intended class", confidence);
  }
  return out;
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
