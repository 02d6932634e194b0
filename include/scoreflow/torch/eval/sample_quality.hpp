#pragma once
// The gallery's readings of generated class-conditional samples through the evaluator classifier
// (evaluator.hpp):
//  - read_classes: CAS (Ravuri & Vinyals 2019), per intended class, with the mean confidence in
//    the intended class and the full confusion matrix (the last column is "reject");
//  - read_frechet: the Fréchet distance (Heusel et al. 2017, eq. 6) of n generated images to n
//    real held-out images, beside the same distance from n real training images to those same
//    held-out images. The Fréchet distance between finite samples is biased upwards, by an amount
//    that shrinks roughly as 1/n (Chong & Forsyth 2020, "Effectively unbiased FID and Inception
//    score and where to find them", CVPR, §3, fit FID linearly in 1/n), so a number means little
//    alone and nothing across different n: the real-vs-real value at the same n is the floor a
//    generator as good as fresh real data reaches;
//  - require_accuracy: the gallery's guard that the evaluator itself reads real digits well.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/eval/evaluator.hpp"

namespace scoreflow {

// ---- class readings ----------------------------------------------------------------------------

/// How the evaluator reads images generated for known classes.
struct ClassReading {
  double cas = 0;                       ///< fraction read as the intended class (reject is wrong)
  std::vector<double> per_class_cas;    ///< [10] the same per intended class; NaN for a class with no image
  std::vector<double> mean_confidence;  ///< [10] per intended class: mean softmax probability of that class; NaN: no image
  torch::Tensor confusion;              ///< [10, 11] int64 counts; rows: intended class, columns: read class, last = reject
  double rejected = 0;                  ///< fraction read as reject
  std::int64_t count = 0;               ///< number of images read
};

/// Reads images [N,1,28,28] in [0, 1] generated for classes `labels` [N] (integers in [0, 10)).
/// The read class is the argmax of the 11 logits; cas = trace(confusion) / N.
inline ClassReading read_classes(DigitClassifier& net, const torch::Tensor& images, const torch::Tensor& labels) {
  constexpr auto K = DigitClassifierImpl::kClasses, L = DigitClassifierImpl::kLogits;
  detail::check_eval_images(images, "read_classes");
  detail::check_eval_labels(labels, images.size(0), K, "read_classes");
  const auto probs = torch::softmax(classifier_logits(net, images).to(torch::kCPU, torch::kFloat64), 1);
  const auto read = probs.argmax(1);
  const auto intended = labels.to(torch::kCPU, torch::kLong);
  ClassReading r;
  r.count = images.size(0);
  r.confusion = torch::zeros({K * L}, torch::kLong).index_add_(0, intended * L + read, torch::ones_like(read)).view({K, L});
  const auto confidence = probs.gather(1, intended.unsqueeze(1)).squeeze(1);
  const auto confidence_sum = torch::zeros({K}, torch::kFloat64).index_add_(0, intended, confidence);
  const auto per_class = r.confusion.sum(1);
  for (std::int64_t c = 0; c < K; ++c) {
    const auto n = per_class[c].item<std::int64_t>();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    r.per_class_cas.push_back(n > 0 ? static_cast<double>(r.confusion[c][c].item<std::int64_t>()) / static_cast<double>(n) : nan);
    r.mean_confidence.push_back(n > 0 ? confidence_sum[c].item<double>() / static_cast<double>(n) : nan);
  }
  r.cas = static_cast<double>(r.confusion.diagonal().sum().item<std::int64_t>()) / static_cast<double>(r.count);
  r.rejected = static_cast<double>(r.confusion.select(1, DigitClassifierImpl::kReject).sum().item<std::int64_t>()) /
               static_cast<double>(r.count);
  return r;
}

// ---- Fréchet distances at a fixed n ------------------------------------------------------------

/// Indices of n images, class-balanced over `classes` (all 10 when empty): ⌊n/K⌋ of each of
/// the K classes and one more of each of the first n mod K, drawn at random (seeded, without
/// replacement) within each class; sorted by class. Throws if a class has too few images.
inline torch::Tensor class_balanced_indices(const torch::Tensor& labels, std::int64_t n, std::uint64_t seed = 0,
                                            std::vector<std::int64_t> classes = {}) {
  constexpr auto K = DigitClassifierImpl::kClasses;
  if (!labels.defined() || labels.dim() != 1)
    throw shape_error(detail::concat("class_balanced_indices: need labels [N]; got ",
                                     labels.defined() ? detail::shape_text(labels.sizes()) : "undefined"));
  detail::check_eval_labels(labels, labels.size(0), K, "class_balanced_indices");
  if (classes.empty())
    for (std::int64_t c = 0; c < K; ++c) classes.push_back(c);
  for (const auto c : classes) detail::require(c >= 0 && c < K, "class_balanced_indices class", c, "must lie in [0, 10)");
  detail::require(n >= 1 && n <= labels.size(0), "class_balanced_indices n", n, "must lie in [1, number of labels]");
  const auto cpu = labels.to(torch::kCPU, torch::kLong);
  const auto k = static_cast<std::int64_t>(classes.size());
  std::vector<torch::Tensor> parts;
  for (std::int64_t i = 0; i < k; ++i) {
    const auto c = classes[static_cast<std::size_t>(i)];
    const auto want = n / k + (i < n % k ? 1 : 0);
    if (want == 0) continue;
    const auto members = cpu.eq(c).nonzero().flatten();
    if (members.size(0) < want)
      throw invalid_option(detail::concat("class_balanced_indices: class ", c, " has ", members.size(0),
                                          " images, a class-balanced selection of n = ", n, " needs ", want));
    Generator gen(seed ^ (0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(c + 1)));
    const auto order = torch::tensor(random_permutation(members.size(0), gen), torch::kLong).slice(0, 0, want);
    parts.push_back(members.index_select(0, order));
  }
  return torch::cat(parts);
}

/// Fréchet distance in the classifier's feature space between the first n images of `a` and the
/// first n of `b` (each needs ≥ n ≥ 2): the number to quote, since the distance depends on n.
inline double classifier_frechet_distance_at(DigitClassifier& net, const torch::Tensor& a, const torch::Tensor& b, std::int64_t n) {
  detail::require(n >= 2, "classifier_frechet_distance_at n", n, "must be at least 2");
  detail::check_eval_images(a, "classifier_frechet_distance_at (first set)", n);
  detail::check_eval_images(b, "classifier_frechet_distance_at (second set)", n);
  return classifier_frechet_distance(net, a.slice(0, 0, n), b.slice(0, 0, n));
}

namespace detail {
/// n images of a set: class-balanced over `classes` when labels are given, else the first n.
inline torch::Tensor pick_images(const torch::Tensor& images, const torch::Tensor& labels, std::int64_t n, std::uint64_t seed,
                                 const std::vector<std::int64_t>& classes, const char* where) {
  check_eval_images(images, where, n);
  if (!labels.defined()) return images.slice(0, 0, n);
  check_eval_labels(labels, images.size(0), DigitClassifierImpl::kClasses, where);
  return images.index_select(0, class_balanced_indices(labels, n, seed, classes).to(images.device()));
}
}  // namespace detail

/// The real-vs-real reference: Fréchet distance between n real training images and n real
/// held-out images, each class-balanced (when its labels are defined, else its first n). The
/// two selections use different seeds; pass the n of the number it stands beside.
inline double real_frechet_distance(DigitClassifier& net, const ImageDataset& train, const ImageDataset& held_out, std::int64_t n,
                                    std::uint64_t seed = 0) {
  detail::require(n >= 2, "real_frechet_distance n", n, "must be at least 2");
  const auto a = detail::pick_images(train.images, train.labels, n, seed, {}, "real_frechet_distance (train)");
  const auto b = detail::pick_images(held_out.images, held_out.labels, n, seed + 1, {}, "real_frechet_distance (held out)");
  return frechet_distance(classifier_features(net, a), classifier_features(net, b));
}

/// A Fréchet distance with the reference it is read against.
struct FrechetReading {
  std::int64_t n = 0;           ///< images on each side of both distances
  double fd = 0;                ///< n generated vs n held-out real images
  double real_reference = 0;    ///< n real training vs the same n held-out real images
};

/// FD of n generated images (class-balanced over their classes when `generated_labels` is
/// defined, else the first n) to n class-balanced held-out real images of the same classes, and
/// the FD of n class-balanced training images of those classes to the same held-out images.
inline FrechetReading read_frechet(DigitClassifier& net, const torch::Tensor& generated, const torch::Tensor& generated_labels,
                                   const ImageDataset& train, const ImageDataset& held_out, std::int64_t n, std::uint64_t seed = 0) {
  detail::require(n >= 2, "read_frechet n", n, "must be at least 2");
  std::vector<std::int64_t> classes;
  if (generated_labels.defined()) {
    detail::check_eval_images(generated, "read_frechet (generated)", n);
    detail::check_eval_labels(generated_labels, generated.size(0), DigitClassifierImpl::kClasses, "read_frechet (generated)");
    const auto counts = torch::bincount(generated_labels.to(torch::kCPU, torch::kLong), {}, DigitClassifierImpl::kClasses);
    for (std::int64_t c = 0; c < DigitClassifierImpl::kClasses; ++c)
      if (counts[c].item<std::int64_t>() > 0) classes.push_back(c);
  }
  const auto gen = detail::pick_images(generated, generated_labels, n, seed, classes, "read_frechet (generated)");
  const auto real = detail::pick_images(held_out.images, held_out.labels, n, seed + 1, classes, "read_frechet (held out)");
  const auto reference = detail::pick_images(train.images, train.labels, n, seed + 2, classes, "read_frechet (train)");
  const auto real_features = classifier_features(net, real);
  return {n, frechet_distance(classifier_features(net, gen), real_features),
          frechet_distance(classifier_features(net, reference), real_features)};
}

// ---- the evaluator's own accuracy --------------------------------------------------------------

/// The evaluator reads real held-out images worse than the gallery requires.
struct evaluator_accuracy_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Throws evaluator_accuracy_error unless `accuracy` (on held-out real images of `dataset`) is at
/// least `threshold`: CAS and Fréchet numbers from a classifier that misreads real images would
/// not be worth reading. Measured with the default ClassifierOptions: MNIST, 9,000 training
/// digits → 98.7–99.6% of the 1,000 held-out ones (three runs); Fashion-MNIST, first 9,000
/// training images → 89.1% of the 10,000 held-out; first 2,000, 1 epoch → 69.7%, 2 epochs → 76.0%.
inline void require_accuracy(double accuracy, double threshold, const std::string& dataset) {
  detail::require(threshold >= 0 && threshold <= 1, "require_accuracy threshold", threshold, "must lie in [0, 1]");
  if (!(accuracy >= threshold)) {  // NaN fails too
    char text[96];
    std::snprintf(text, sizeof text, "%.2f%%, below the required %.2f%%", 100 * accuracy, 100 * threshold);
    throw evaluator_accuracy_error(detail::concat(
        "evaluator classifier: held-out accuracy on ", dataset, " is ", text,
        "; its CAS and Fréchet distances are not trustworthy. Retrain it (delete the cached classifier checkpoint) "
        "with the default options on the full training split"));
  }
}

}  // namespace scoreflow
