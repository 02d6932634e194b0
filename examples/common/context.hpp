#pragma once
// Data and evaluator setup shared by the example programs.
#include <cstdio>
#include <filesystem>

#include "common/report.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/eval/evaluator.hpp"

namespace examples {

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
  if (report)
    report->note({"B 0", "Evaluator", "CAS and Fréchet distance use a small CNN classifier (2 conv + 2 linear layers) trained on the "
                                      "training split; its accuracy on the held-out real test split is " +
                                          std::to_string(100 * acc).substr(0, 5) +
                                          "%. Fréchet distances use its 128-d penultimate features, so they are comparable "
                                          "within this gallery, not with published FIDs."});
  return net;
}

inline scoreflow::ImageDataset limited(const scoreflow::ImageDataset& d, std::int64_t n) {
  if (n <= 0 || n >= d.size()) return d;
  return {d.images.slice(0, 0, n), d.labels.slice(0, 0, n)};
}

}  // namespace examples
