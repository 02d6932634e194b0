#pragma once
// The evaluator classifier behind the gallery's sample-quality numbers, for 28×28 class-labelled
// images in [0, 1] (MNIST, Fashion-MNIST):
//  - CAS, the classification accuracy score: its accuracy on generated samples against the class
//    they were generated for (Ravuri & Vinyals 2019, "Classification Accuracy Score for
//    Conditional Generative Models", NeurIPS);
//  - the Fréchet distance between Gaussians fitted to its penultimate features of real and of
//    generated images (128-d per network, concatenated over the ensemble; FID's formula, Heusel
//    et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
//    equilibrium", NeurIPS, eq. 6), with this classifier in place of Inception: numbers are
//    comparable within one gallery, not with published FIDs.
//
// A lenient classifier inflates CAS: a small CNN trained on clean digits reads a blurred or broken
// digit as the class it resembles most. This one is trained
//  - on randomly shifted, rotated, scaled, sheared and elastically distorted real images (Simard,
//    Steinkraus & Platt 2003, "Best practices for convolutional neural networks applied to visual
//    document analysis", ICDAR, §2; LeCun et al. 1998, "Gradient-based learning applied to
//    document recognition", Proc. IEEE, for training on distorted digits), so that a well-formed
//    digit drawn a little differently still counts; and
//  - with an 11th class, "reject" (index kReject = 10), whose examples are degraded real images:
//    strongly blurred digits, digits with large parts of the stroke erased, pixel-wise blends of
//    two digits of different classes, random scribbles and noise. A generated sample read as
//    "reject" is wrong for CAS. The classifier never sees a generated image.
// degradations.hpp makes the training images (augmentation and reject examples); sample_quality.hpp
// builds the gallery's readings (per-class CAS, confusion, reference FDs) on this classifier.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <numbers>
#include <string>
#include <vector>

#include <torch/nn.h>
#include <torch/optim.h>
#include <torch/serialize.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/data/batching.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/eval/degradations.hpp"
#include "scoreflow/torch/io/atomic_file.hpp"
#include "scoreflow/torch/training/batchnorm_statistics.hpp"

namespace scoreflow {

// ---- input checks ------------------------------------------------------------------------------

namespace detail {
/// Images the evaluator reads: a defined floating tensor [N, 1, 28, 28] (N ≥ min_count), finite.
inline void check_eval_images(const torch::Tensor& images, const char* where, std::int64_t min_count = 1) {
  if (!images.defined()) throw shape_error(concat(where, ": images undefined"));
  if (images.dim() != 4 || images.size(1) != 1 || images.size(2) != 28 || images.size(3) != 28)
    throw shape_error(concat(where, ": images must be [N, 1, 28, 28]; got ", shape_text(images.sizes())));
  if (!images.is_floating_point())
    throw shape_error(concat(where, ": images must be floating point in [0, 1]; got ", images.scalar_type()));
  if (images.size(0) < min_count)
    throw shape_error(concat(where, ": need at least ", min_count, " images; got ", images.size(0)));
  const auto bad = (~torch::isfinite(images)).sum().item<std::int64_t>();
  if (bad > 0) {
    const auto first = (~torch::isfinite(images)).flatten(1).any(1).nonzero().flatten()[0].item<std::int64_t>();
    throw non_finite_error(concat(where, ": ", bad, " NaN or infinite pixel values (the first in image ", first,
                                  "); the evaluator reads finite images in [0, 1]"));
  }
}

/// Class labels [N] of integer type in [0, classes), one per image.
inline void check_eval_labels(const torch::Tensor& labels, std::int64_t count, std::int64_t classes, const char* where) {
  if (!labels.defined()) throw shape_error(concat(where, ": labels undefined"));
  if (labels.dim() != 1 || labels.size(0) != count)
    throw shape_error(concat(where, ": need labels [", count, "] (one per image); got ", shape_text(labels.sizes())));
  if (labels.is_floating_point() || labels.scalar_type() == torch::kBool)
    throw shape_error(concat(where, ": labels must be integers; got ", labels.scalar_type()));
  if (count == 0) return;
  const auto lo = labels.min().item<std::int64_t>(), hi = labels.max().item<std::int64_t>();
  if (lo < 0 || hi >= classes)
    throw invalid_option(concat(where, ": labels must lie in [0, ", classes, "); got values from ", lo, " to ", hi));
}
}  // namespace detail

// ---- the classifier ----------------------------------------------------------------------------

/// One network of the evaluator:
///
///     x [N,1,28,28] → conv3×3(1→32)-BN-ReLU → conv3×3(32→32)-BN-ReLU → maxpool 2   (14×14)
///                   → conv3×3(32→64)-BN-ReLU → conv3×3(64→64)-BN-ReLU → maxpool 2  (7×7)
///                   → dropout 0.1 → linear 3136→128-ReLU = features [N,128]
///                   → dropout 0.3 → linear 128→11 → logits (10 classes + reject; see forward)
///
/// Pairs of 3×3 convolutions as in VGG (Simonyan & Zisserman 2015), with BatchNorm (Ioffe &
/// Szegedy 2015) so that a short CPU training run converges. Trained alone with the default
/// options on 9,000 MNIST digits, one such network read 98.9% (seed 0) and 99.4% (seed 1) of
/// 1,000 held-out digits on one 2-core machine and 99.2% (seed 0) on another: a spread of ±0.3
/// points from the seed and the CPU's rounding alone, which is why the evaluator averages
/// several (DigitClassifierImpl). The run is reproducible only at a fixed thread count.
/// Inputs are clamped to [0, 1]. Dropout and BatchNorm's batch statistics act in training mode
/// only; every evaluation function below switches the net to eval mode first.
class DigitClassifierNetImpl : public torch::nn::Module {
 public:
  static constexpr std::int64_t kFeatures = 128;
  static constexpr std::int64_t kClasses = 10;        ///< digits 0–9 (or the 10 Fashion-MNIST classes)
  static constexpr std::int64_t kReject = kClasses;    ///< the "not a digit" logit
  static constexpr std::int64_t kLogits = kClasses + 1;
  static constexpr std::int64_t kWidth1 = 32, kWidth2 = 64;  ///< channels of the two convolution stages
  static constexpr double kDropConv = 0.1, kDropFc = 0.3;    ///< dropout before fc1 and before the last layer

  DigitClassifierNetImpl()
      : conv1_(register_module("conv1", conv(1, kWidth1))), bn1_(register_module("bn1", torch::nn::BatchNorm2d(kWidth1))),
        conv2_(register_module("conv2", conv(kWidth1, kWidth1))), bn2_(register_module("bn2", torch::nn::BatchNorm2d(kWidth1))),
        conv3_(register_module("conv3", conv(kWidth1, kWidth2))), bn3_(register_module("bn3", torch::nn::BatchNorm2d(kWidth2))),
        conv4_(register_module("conv4", conv(kWidth2, kWidth2))), bn4_(register_module("bn4", torch::nn::BatchNorm2d(kWidth2))),
        drop_conv_(register_module("drop_conv", torch::nn::Dropout(kDropConv))),
        fc1_(register_module("fc1", torch::nn::Linear(kWidth2 * 7 * 7, kFeatures))),
        drop_fc_(register_module("drop_fc", torch::nn::Dropout(kDropFc))),
        fc2_(register_module("fc2", torch::nn::Linear(kFeatures, kLogits))) {}

  /// Penultimate activations [N, 128] of images [N, 1, 28, 28] (clamped to [0, 1]).
  torch::Tensor features(const torch::Tensor& images) {
    if (!images.defined() || images.dim() != 4 || images.size(1) != 1 || images.size(2) != 28 || images.size(3) != 28)
      throw shape_error(detail::concat("classifier: images must be [N, 1, 28, 28]; got ",
                                       images.defined() ? detail::shape_text(images.sizes()) : "undefined"));
    auto x = images.to(torch::kFloat32).clamp(0.0, 1.0);
    x = torch::relu(bn1_(conv1_(x)));
    x = torch::max_pool2d(torch::relu(bn2_(conv2_(x))), 2);
    x = torch::relu(bn3_(conv3_(x)));
    x = torch::max_pool2d(torch::relu(bn4_(conv4_(x))), 2);
    return torch::relu(fc1_(drop_conv_(x.flatten(1))));
  }
  /// Logits [N, 11]: the 10 classes, then reject. The last linear layer gives 10 class scores d
  /// and one reject score z; the reject logit is z + logsumexp(d), so that the softmax over the
  /// 11 logits factorises as p(reject) = sigmoid(z) and p(class k) = (1 − sigmoid(z))·softmax(d)_k.
  /// Cross-entropy over the 11 is then the 10-way cross-entropy of the real images plus a binary
  /// real-vs-degraded cross-entropy of z: degraded images train z only, never the class scores,
  /// so the reject class does not blunt how the net tells real digits apart (an 11-way softmax
  /// head did: 5–9 more held-out errors in our measurements).
  torch::Tensor forward(const torch::Tensor& images) {
    const auto scores = fc2_(drop_fc_(features(images)));
    const auto d = scores.slice(1, 0, kClasses);
    return torch::cat({d, scores.slice(1, kClasses) + torch::logsumexp(d, 1, /*keepdim=*/true)}, 1);
  }

 private:
  static torch::nn::Conv2d conv(std::int64_t in, std::int64_t out) {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false));  // BN adds the bias
  }
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Conv2d conv3_;
  torch::nn::BatchNorm2d bn3_;
  torch::nn::Conv2d conv4_;
  torch::nn::BatchNorm2d bn4_;
  torch::nn::Dropout drop_conv_;
  torch::nn::Linear fc1_;
  torch::nn::Dropout drop_fc_;
  torch::nn::Linear fc2_;
};
TORCH_MODULE(DigitClassifierNet);

/// The evaluator (architecture version 3; the checkpoint records the version and the member
/// count): an ensemble of M independently seeded DigitClassifierNets. Its class probabilities are
/// the members' averaged, p(k | x) = (1/M) Σ_m p_m(k | x) (Lakshminarayanan, Pritzel & Blundell
/// 2017, "Simple and scalable predictive uncertainty estimation using deep ensembles", NeurIPS,
/// §2.4): averaging removes most of the seed-to-seed spread that one network shows (above), so
/// whether the evaluator clears its accuracy bar no longer depends on which seed was drawn, and
/// no seed has to be picked by its held-out score. The features behind the Fréchet distance are
/// the members' concatenated, [N, 128·M]. With M = 1 it reads exactly as its one network.
class DigitClassifierImpl : public torch::nn::Module {
 public:
  static constexpr std::int64_t kClasses = DigitClassifierNetImpl::kClasses;
  static constexpr std::int64_t kReject = DigitClassifierNetImpl::kReject;
  static constexpr std::int64_t kLogits = DigitClassifierNetImpl::kLogits;
  static constexpr std::int64_t kMemberFeatures = DigitClassifierNetImpl::kFeatures;
  static constexpr std::int64_t kMaxMembers = 16;  ///< spelled out in the option messages below
  static constexpr std::int64_t kArchitectureVersion = 3;

  /// M freshly initialised members (drawn from torch's global generator).
  explicit DigitClassifierImpl(std::int64_t members = 1) : DigitClassifierImpl(fresh(members)) {}
  /// An ensemble of given (e.g. trained) members; they are shared, not copied.
  explicit DigitClassifierImpl(const std::vector<DigitClassifierNet>& members) {
    detail::require(!members.empty() && static_cast<std::int64_t>(members.size()) <= kMaxMembers, "classifier.members",
                    members.size(), "must be between 1 and 16 (kMaxMembers)");
    for (const auto& m : members) {
      if (m.is_empty()) throw invalid_option("classifier: an ensemble member is empty (a null DigitClassifierNet)");
      members_->push_back(m);
    }
    register_module("members", members_);
    // Saved with the weights: load_classifier refuses a checkpoint of another architecture and
    // builds the right number of members before loading.
    register_buffer("architecture_version", torch::full({1}, kArchitectureVersion, torch::kLong));
    register_buffer("member_count", torch::full({1}, static_cast<std::int64_t>(members.size()), torch::kLong));
  }

  std::int64_t member_count() const { return static_cast<std::int64_t>(members_->size()); }
  std::int64_t feature_count() const { return kMemberFeatures * member_count(); }
  DigitClassifierNet member(std::int64_t m) const {
    if (m < 0 || m >= member_count())
      throw invalid_option(detail::concat("classifier member ", m, ": the ensemble has ", member_count(), " members"));
    return DigitClassifierNet(members_->ptr<DigitClassifierNetImpl>(static_cast<std::size_t>(m)));
  }

  /// The members' penultimate features, concatenated: [N, 128·M].
  torch::Tensor features(const torch::Tensor& images) {
    std::vector<torch::Tensor> parts;
    for (std::int64_t m = 0; m < member_count(); ++m) parts.push_back(member(m)->features(images));
    return torch::cat(parts, 1);
  }
  /// Logits [N, 11] whose softmax is the members' mean probability: log((1/M) Σ_m softmax(ℓ_m)).
  /// For M = 1, the one member's logits (the same softmax, so the same readings).
  torch::Tensor forward(const torch::Tensor& images) {
    if (member_count() == 1) return member(0)->forward(images);
    std::vector<torch::Tensor> log_probs;
    for (std::int64_t m = 0; m < member_count(); ++m) log_probs.push_back(torch::log_softmax(member(m)->forward(images), 1));
    return torch::logsumexp(torch::stack(log_probs), 0) - std::log(static_cast<double>(member_count()));
  }

 private:
  static std::vector<DigitClassifierNet> fresh(std::int64_t count) {
    detail::require(count >= 1 && count <= kMaxMembers, "classifier.members", count, "must be between 1 and 16 (kMaxMembers)");
    std::vector<DigitClassifierNet> nets;
    for (std::int64_t m = 0; m < count; ++m) nets.emplace_back();
    return nets;
  }
  torch::nn::ModuleList members_;
};
TORCH_MODULE(DigitClassifier);

// ---- training ----------------------------------------------------------------------------------

struct ClassifierOptions {
  int epochs = 12;
  std::int64_t batch_size = 64;
  double learning_rate = 2e-3;   ///< peak of the one-cycle schedule (AdamW)
  std::uint64_t seed = 0;        ///< member m trains from seed + m
  /// Ensemble size (1–16). Two: each network costs a full training run (about 2.5 minutes on one
  /// core of the development machine), and the README's measurements show two reaching the 99%
  /// bar where single networks of different seeds fall on either side of it.
  std::int64_t members = 2;
  torch::Device device = torch::kCPU;
  double weight_decay = 5e-4;    ///< AdamW's decoupled weight decay (Loshchilov & Hutter 2019)
  bool augment = true;           ///< distort the real images as `augmentation` says
  Augmentation augmentation = {};
  RejectTraining reject = {};
};

/// Training progress: (member, epoch from 1, mean loss of that epoch).
using ClassifierProgress = std::function<void(std::int64_t, int, double)>;

namespace detail {
/// One-cycle learning rate (Smith & Topin 2019): linear warm-up from peak/25 over the first 20%
/// of the steps, then cosine annealing to peak/10⁴.
inline double one_cycle_lr(double peak, std::int64_t step, std::int64_t total) {
  const double warm = std::max(1.0, 0.2 * static_cast<double>(total));
  const double s = static_cast<double>(step);
  if (s < warm) return peak / 25 + (peak - peak / 25) * s / warm;
  const double progress = std::min(1.0, (s - warm) / std::max(1.0, static_cast<double>(total) - warm));
  return peak / 1e4 + (peak - peak / 1e4) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
}

/// Trains one network from `seed` (its initial weights, batch order, augmentation and reject
/// examples all follow from it, so member m of an ensemble equals a lone network trained from
/// seed + m).
inline DigitClassifierNet train_classifier_net(const ImageDataset& data, const ClassifierOptions& options, std::uint64_t seed,
                                               const std::function<void(int, double)>& on_epoch) {
  torch::manual_seed(seed);
  DigitClassifierNet net;
  net->to(options.device);
  net->train();
  torch::optim::AdamW optimizer(net->parameters(),
                                torch::optim::AdamWOptions(options.learning_rate).weight_decay(options.weight_decay));
  const std::int64_t n = data.size();
  const std::int64_t batches = batch_count(n, options.batch_size, false);
  const std::int64_t total_steps = batches * options.epochs;
  // One training batch: the real images (augmented), then reject examples made from them.
  auto make_batch = [&](const torch::Tensor& idx) {
    torch::NoGradGuard no_grad;
    auto images = data.images.index_select(0, idx);
    const auto labels = data.labels.index_select(0, idx);
    if (options.augment) images = augment_real(images, options.augmentation);
    const auto rejects = static_cast<std::int64_t>(std::llround(options.reject.fraction * static_cast<double>(images.size(0))));
    return std::pair{torch::cat({images, reject_examples(images, labels, rejects, options.reject)}, 0),
                     torch::cat({labels, torch::full({rejects}, DigitClassifierNetImpl::kReject, labels.options())}, 0)};
  };
  auto epoch_order = [&](int epoch) { return torch::tensor(shuffled_order(n, seed, epoch), torch::kLong).to(options.device); };
  std::int64_t step = 0;
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    const auto order = epoch_order(epoch);
    double total = 0;
    for (std::int64_t start = 0; start < n; start += options.batch_size, ++step) {
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(one_cycle_lr(options.learning_rate, step, total_steps));
      const auto [x, y] = make_batch(order.slice(0, start, std::min(n, start + options.batch_size)));
      auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      total += loss.item<double>();
    }
    if (on_epoch) on_epoch(epoch + 1, total / static_cast<double>(batches));
  }
  // BatchNorm's running statistics trail the weights by their momentum; after a short run they
  // are far from the final weights' batch statistics and eval mode would read nonsense. Replace
  // them by the plain average over one more pass of training batches at the final weights
  // ("precise BN", Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", §3).
  training::recompute_batchnorm_statistics(net, [&] {
    const auto order = epoch_order(options.epochs);
    for (std::int64_t start = 0; start < n; start += options.batch_size) {
      const auto [x, y] = make_batch(order.slice(0, start, std::min(n, start + options.batch_size)));
      net->forward(x);
    }
  });
  net->eval();
  return net;
}
}  // namespace detail

/// Trains the evaluator on a labelled data set of [N,1,28,28] images in [0, 1] with labels in
/// [0, 10): options.members networks one after another, member m from seed + m, each with AdamW
/// and a one-cycle schedule, cross-entropy over the 11 logits, shuffled batches (batching.hpp's
/// shuffled_order), each batch distorted as `augmentation` says and extended by
/// reject.fraction × batch_size reject examples made from it (degradations.hpp); then BatchNorm's
/// statistics are re-estimated at the final weights. `on_epoch(member, epoch, mean_loss)` reports
/// progress. The defaults train MNIST's 9,000 digits in about 5 minutes on one CPU core.
inline DigitClassifier train_classifier(const ImageDataset& train, const ClassifierOptions& options = {},
                                        const ClassifierProgress& on_epoch = {}) {
  detail::require(options.epochs >= 1, "classifier.epochs", options.epochs, "must be at least 1");
  detail::require(options.batch_size >= 2, "classifier.batch_size", options.batch_size, "must be at least 2");
  detail::require(options.learning_rate > 0 && std::isfinite(options.learning_rate), "classifier.learning_rate",
                  options.learning_rate, "must be positive and finite");
  detail::require(options.weight_decay >= 0 && std::isfinite(options.weight_decay), "classifier.weight_decay",
                  options.weight_decay, "must be ≥ 0 and finite");
  detail::require(options.members >= 1 && options.members <= DigitClassifierImpl::kMaxMembers, "classifier.members",
                  options.members, "must be between 1 and 16 (kMaxMembers)");
  detail::check_reject_training(options.reject);
  detail::check_dataset(train, "train_classifier");
  detail::check_eval_images(train.images, "train_classifier");
  detail::check_eval_labels(train.labels, train.size(), DigitClassifierImpl::kClasses, "train_classifier");

  const auto data = ImageDataset{train.images.to(torch::kFloat32), train.labels.to(torch::kLong)}.to(options.device);
  std::vector<DigitClassifierNet> members;
  for (std::int64_t m = 0; m < options.members; ++m)
    members.push_back(detail::train_classifier_net(data, options, options.seed + static_cast<std::uint64_t>(m),
                                                   [&](int epoch, double loss) { if (on_epoch) on_epoch(m, epoch, loss); }));
  DigitClassifier net(members);
  net->eval();
  return net;
}

// ---- the cached checkpoint ---------------------------------------------------------------------

/// Writes the weights, BatchNorm statistics, architecture version and member count atomically
/// (atomic_file.hpp).
inline void save_classifier(DigitClassifier& net, const std::filesystem::path& path) {
  write_atomically(path, [&](const std::filesystem::path& tmp) { torch::save(net, tmp.string()); });
}

/// Loads a checkpoint of this architecture (version 3) in eval mode; anything else, including a
/// checkpoint of an earlier evaluator (version 2: one network; before it, 2 conv + 2 linear and
/// no version), is an io_error that says so: delete the file and let the gallery retrain.
inline DigitClassifier load_classifier(const std::filesystem::path& path, torch::Device device = torch::kCPU) {
  const auto refuse = [&](const auto&... why) {
    detail::throw_io(path, "not a checkpoint of the scoreflow evaluator classifier (architecture version ",
                     DigitClassifierImpl::kArchitectureVersion,
                     "; a classifier cached by an older scoreflow must be deleted and retrained): ", why...);
  };
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string());
  } catch (const c10::Error& e) {
    refuse(std::string(e.what_without_backtrace()).substr(0, 200));
  }
  torch::Tensor version, count;
  if (!archive.try_read("architecture_version", version, /*is_buffer=*/true) || version.numel() != 1)
    refuse("it records no architecture version");
  if (version.item<std::int64_t>() != DigitClassifierImpl::kArchitectureVersion)
    detail::throw_io(path, "evaluator classifier of architecture version ", version.item<std::int64_t>(),
                     ", this scoreflow reads version ", DigitClassifierImpl::kArchitectureVersion, "; delete the file and retrain");
  if (!archive.try_read("member_count", count, /*is_buffer=*/true) || count.numel() != 1 || count.item<std::int64_t>() < 1 ||
      count.item<std::int64_t>() > DigitClassifierImpl::kMaxMembers)
    refuse("its member count is missing or outside [1, ", DigitClassifierImpl::kMaxMembers, "]");
  DigitClassifier net(count.item<std::int64_t>());
  try {
    net->load(archive);
  } catch (const c10::Error& e) {
    refuse(std::string(e.what_without_backtrace()).substr(0, 200));
  }
  net->to(device);
  net->eval();
  return net;
}

// ---- reading images ----------------------------------------------------------------------------

namespace detail {
template <class F>
torch::Tensor batched(const torch::Tensor& images, std::int64_t batch, F&& f) {
  std::vector<torch::Tensor> parts;
  for (std::int64_t s = 0; s < images.size(0); s += batch) parts.push_back(f(images.slice(0, s, s + batch)));
  return torch::cat(parts, 0);
}
inline torch::Device device_of(DigitClassifier& net) { return net->parameters().front().device(); }
}  // namespace detail

/// Logits [N, 11] (eval mode, no gradients, batches of 500) of images [N,1,28,28].
inline torch::Tensor classifier_logits(DigitClassifier& net, const torch::Tensor& images) {
  detail::check_eval_images(images, "classifier_logits");
  torch::NoGradGuard no_grad;
  net->eval();
  return detail::batched(images.to(detail::device_of(net)), 500, [&](const torch::Tensor& b) { return net->forward(b); });
}

/// Penultimate features [N, 128·M] for M members (eval mode, no gradients) of images [N,1,28,28].
inline torch::Tensor classifier_features(DigitClassifier& net, const torch::Tensor& images) {
  detail::check_eval_images(images, "classifier_features");
  torch::NoGradGuard no_grad;
  net->eval();
  return detail::batched(images.to(detail::device_of(net)), 500, [&](const torch::Tensor& b) { return net->features(b); });
}

/// Fraction of images read as their label; an image read as reject is wrong. For generated images
/// and the classes they were generated for this is the CAS (Ravuri & Vinyals 2019).
inline double classification_accuracy(DigitClassifier& net, const torch::Tensor& images, const torch::Tensor& labels) {
  detail::check_eval_images(images, "classification_accuracy");
  detail::check_eval_labels(labels, images.size(0), DigitClassifierImpl::kClasses, "classification_accuracy");
  const auto predicted = classifier_logits(net, images).argmax(1);
  return predicted.eq(labels.to(predicted.device(), torch::kLong)).to(torch::kFloat64).mean().item<double>();
}

/// Fréchet distance between Gaussians fitted to two feature matrices [N, D] (Heusel et al. 2017,
/// eq. 6): ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½), in float64 with symmetric
/// eigendecompositions (so the square roots are real and stable). Σ uses the unbiased 1/(N − 1)
/// estimate; the distance between finite samples is biased upwards, more so for small N, so
/// only distances at the same N compare (sample_quality.hpp's helpers fix N).
inline double frechet_distance(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined() || a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(1) || a.size(0) < 2 ||
      b.size(0) < 2)
    throw shape_error(detail::concat("frechet_distance: need two [N, D] feature matrices with the same D and N ≥ 2; got ",
                                     a.defined() ? detail::shape_text(a.sizes()) : "undefined", " and ",
                                     b.defined() ? detail::shape_text(b.sizes()) : "undefined"));
  if (!torch::isfinite(a).all().item<bool>() || !torch::isfinite(b).all().item<bool>())
    throw non_finite_error("frechet_distance: the feature matrices contain NaN or infinite values");
  auto stats = [](const torch::Tensor& f) {
    const auto x = f.to(torch::kCPU, torch::kFloat64);
    const auto mu = x.mean(0);
    const auto centred = x - mu;
    return std::pair{mu, centred.t().mm(centred) / static_cast<double>(x.size(0) - 1)};
  };
  const auto [mu1, s1] = stats(a);
  const auto [mu2, s2] = stats(b);
  const auto [w1, v1] = at::linalg_eigh(s1, "L");
  const auto s1_half = v1.mm(torch::diag(w1.clamp_min(0).sqrt())).mm(v1.t());
  const auto m = s1_half.mm(s2).mm(s1_half);
  const auto trace_sqrt = at::linalg_eigvalsh((m + m.t()) / 2, "L").clamp_min(0).sqrt().sum();
  return ((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * trace_sqrt).item<double>();
}

/// Fréchet distance in the classifier's feature space between real and generated images (all of
/// each; fix N with sample_quality.hpp's classifier_frechet_distance_at or read_frechet to compare numbers).
inline double classifier_frechet_distance(DigitClassifier& net, const torch::Tensor& real, const torch::Tensor& generated) {
  detail::check_eval_images(real, "classifier_frechet_distance (real)", 2);
  detail::check_eval_images(generated, "classifier_frechet_distance (generated)", 2);
  return frechet_distance(classifier_features(net, real), classifier_features(net, generated));
}

}  // namespace scoreflow
