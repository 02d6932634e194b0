#pragma once
// Sample quality for 28×28 class-labelled images (MNIST, Fashion-MNIST): a small CNN classifier
// trained on the real training set gives
//  - CAS, the classification accuracy score: the classifier's accuracy on generated samples
//    against the class they were generated for (Ravuri & Vinyals 2019);
//  - the Fréchet distance between its 128-d penultimate features of real test images and of
//    generated images (FID's formula, Heusel et al. 2017, with our classifier as feature map).
// Numbers from different classifiers are not comparable; the gallery reports which one it used.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>

#include <torch/nn.h>
#include <torch/optim.h>
#include <torch/serialize.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/io/atomic_file.hpp"

namespace scoreflow {

/// conv(1→32) → pool → conv(32→64) → pool → linear 3136→128 (features) → linear 128→10.
class DigitClassifierImpl : public torch::nn::Module {
 public:
  static constexpr std::int64_t kFeatures = 128;

  DigitClassifierImpl()
      : conv1_(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1)))),
        conv2_(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)))),
        fc1_(register_module("fc1", torch::nn::Linear(64 * 7 * 7, kFeatures))),
        fc2_(register_module("fc2", torch::nn::Linear(kFeatures, 10))) {}

  /// Penultimate activations [N, 128] of images [N, 1, 28, 28] in [0, 1] (clamped to that range).
  torch::Tensor features(const torch::Tensor& images) {
    if (images.dim() != 4 || images.size(1) != 1 || images.size(2) != 28 || images.size(3) != 28)
      throw shape_error(detail::concat("classifier: images must be [N, 1, 28, 28]; got ", images.sizes()));
    auto x = torch::max_pool2d(torch::relu(conv1_(images.clamp(0.0, 1.0))), 2);
    x = torch::max_pool2d(torch::relu(conv2_(x)), 2);
    return torch::relu(fc1_(x.flatten(1)));
  }
  torch::Tensor forward(const torch::Tensor& images) { return fc2_(features(images)); }

 private:
  torch::nn::Conv2d conv1_, conv2_;
  torch::nn::Linear fc1_, fc2_;
};
TORCH_MODULE(DigitClassifier);

struct ClassifierOptions {
  int epochs = 3;
  std::int64_t batch_size = 128;
  double learning_rate = 1e-3;
  std::uint64_t seed = 0;
  torch::Device device = torch::kCPU;
};

/// Trains the classifier on a labelled data set (Adam, cross-entropy, shuffled batches).
/// `on_epoch(epoch, mean_loss)` reports progress.
inline DigitClassifier train_classifier(const ImageDataset& train, const ClassifierOptions& options = {},
                                        const std::function<void(int, double)>& on_epoch = {}) {
  detail::require(options.epochs >= 1, "classifier.epochs", options.epochs, "must be at least 1");
  detail::require(options.batch_size >= 1, "classifier.batch_size", options.batch_size, "must be at least 1");
  torch::manual_seed(options.seed);
  DigitClassifier net;
  net->to(options.device);
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(options.learning_rate));
  const auto data = train.to(options.device);
  const std::int64_t n = data.size();
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    Generator gen(options.seed + static_cast<std::uint64_t>(epoch) * 7919);
    const auto order = torch::tensor(random_permutation(n, gen), torch::kLong).to(options.device);
    double total = 0;
    std::int64_t batches = 0;
    for (std::int64_t start = 0; start < n; start += options.batch_size) {
      const auto idx = order.slice(0, start, std::min(n, start + options.batch_size));
      auto loss = torch::nn::functional::cross_entropy(net->forward(data.images.index_select(0, idx)),
                                                       data.labels.index_select(0, idx));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      total += loss.item<double>();
      ++batches;
    }
    if (on_epoch) on_epoch(epoch + 1, total / static_cast<double>(batches));
  }
  net->eval();
  return net;
}

inline void save_classifier(DigitClassifier& net, const std::filesystem::path& path) {
  write_atomically(path, [&](const std::filesystem::path& tmp) { torch::save(net, tmp.string()); });
}

inline DigitClassifier load_classifier(const std::filesystem::path& path, torch::Device device = torch::kCPU) {
  DigitClassifier net;
  try {
    torch::load(net, path.string());
  } catch (const c10::Error& e) {
    detail::throw_io(path, "not a scoreflow classifier checkpoint (", std::string(e.what_without_backtrace()).substr(0, 200), ")");
  }
  net->to(device);
  net->eval();
  return net;
}

namespace detail {
template <class F>
torch::Tensor batched(const torch::Tensor& images, std::int64_t batch, F&& f) {
  std::vector<torch::Tensor> parts;
  for (std::int64_t s = 0; s < images.size(0); s += batch) parts.push_back(f(images.slice(0, s, s + batch)));
  return torch::cat(parts, 0);
}
}  // namespace detail

/// Accuracy of `net` on images against labels; for generated images and their intended classes
/// this is the CAS.
inline double classification_accuracy(DigitClassifier& net, const torch::Tensor& images, const torch::Tensor& labels) {
  if (images.size(0) != labels.size(0) || images.size(0) == 0)
    throw shape_error(detail::concat("accuracy: ", images.size(0), " images but ", labels.size(0), " labels"));
  torch::NoGradGuard no_grad;
  net->eval();
  const auto device = net->parameters().front().device();
  const auto predicted = detail::batched(images.to(device), 500, [&](const torch::Tensor& b) { return net->forward(b).argmax(1); });
  return predicted.eq(labels.to(device)).to(torch::kFloat64).mean().item<double>();
}

/// Fréchet distance between Gaussians fitted to two feature matrices [N, D]:
/// ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½), computed in float64 with symmetric
/// eigendecompositions (so the square roots are real and stable).
inline double frechet_distance(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(1) || a.size(0) < 2 || b.size(0) < 2)
    throw shape_error(detail::concat("frechet_distance: need two [N, D] feature matrices with N ≥ 2; got ", a.sizes(),
                                     " and ", b.sizes()));
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

/// Fréchet distance in the classifier's feature space between real and generated images.
inline double classifier_frechet_distance(DigitClassifier& net, const torch::Tensor& real, const torch::Tensor& generated) {
  torch::NoGradGuard no_grad;
  net->eval();
  const auto device = net->parameters().front().device();
  auto feats = [&](const torch::Tensor& images) {
    return detail::batched(images.to(device), 500, [&](const torch::Tensor& b) { return net->features(b); });
  };
  return frechet_distance(feats(real), feats(generated));
}

}  // namespace scoreflow
