#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <vector>

#include <doctest/doctest.h>
#include <torch/torch.h>

#include "scoreflow/torch/eval/evaluator.hpp"
#include "scoreflow/torch/eval/sample_quality.hpp"

namespace test_evaluator {

using namespace scoreflow;

namespace {

/// Synthetic "digits", no data files needed: class c is (c / 5 + 1) parallel pen strokes at
/// angle (c mod 5)·36°, 14–18 px long and 1.5–2.5 px wide, shifted by up to ±2 px. 36° between
/// classes is well beyond the training augmentation's ±12° rotation.
ImageDataset synthetic_digits(std::int64_t per_class, std::uint64_t seed) {
  torch::manual_seed(seed);
  const auto labels = torch::arange(10, torch::kLong).repeat({per_class});
  const auto n = labels.size(0);
  const auto angle = (labels % 5).to(torch::kFloat32) * (std::numbers::pi / 5);
  const auto strokes = torch::div(labels, 5, "floor") + 1;
  const auto half = 7 + torch::rand({n}) * 2, width = 0.75 + torch::rand({n}) * 0.5;
  const auto cx = 13.5 + (torch::rand({n}) * 4 - 2), cy = 13.5 + (torch::rand({n}) * 4 - 2);
  const auto dx = torch::cos(angle), dy = torch::sin(angle);
  const auto grid = torch::arange(28, torch::kFloat32);
  const auto py = grid.view({1, 28, 1}), px = grid.view({1, 1, 28});
  auto image = torch::zeros({n, 28, 28});
  for (int s = 0; s < 2; ++s) {
    // Offset ±3 px across the stroke for two-stroke classes, none for one-stroke classes.
    const auto offset = torch::where(strokes == 2, torch::full({n}, s == 0 ? -3.0f : 3.0f), torch::zeros({n}));
    const auto ox = (cx - dy * offset).view({-1, 1, 1}), oy = (cy + dx * offset).view({-1, 1, 1});
    const auto along = (px - ox) * dx.view({-1, 1, 1}) + (py - oy) * dy.view({-1, 1, 1});
    const auto across = -(px - ox) * dy.view({-1, 1, 1}) + (py - oy) * dx.view({-1, 1, 1});
    const auto outside = (along.abs() - half.view({-1, 1, 1})).clamp_min(0);
    const auto distance = (across.pow(2) + outside.pow(2)).sqrt();
    image = torch::max(image, (width.view({-1, 1, 1}) - distance + 0.5).clamp(0, 1));
  }
  return {image.unsqueeze(1), labels};
}

/// A classifier trained briefly on synthetic digits, shared by the tests below (about 5 s).
DigitClassifier& synthetic_classifier() {
  static DigitClassifier net = [] {
    ClassifierOptions options;
    options.epochs = 4;
    options.batch_size = 50;
    options.reject.fraction = 0.5;
    options.members = 1;  // the ensemble has its own test case below
    return train_classifier(synthetic_digits(50, 1), options);
  }();
  return net;
}

/// A DigitClassifier with hand-set weights that reads a constant image of intensity v through
/// class scores d_k = slope·k·(v − k/20), k = 0..9 (class k wins for v in ((k − ½)/10, (k + ½)/10)),
/// and reject score z = 40·(v − 0.9) (so p(reject) = sigmoid(z) exceeds ½ above v = 0.9).
/// Convolutions pass channel 0 through (a centred delta kernel), BatchNorm is the identity
/// (running mean 0, running variance 1 − eps), max-pooling keeps a constant, and fc1's feature 0
/// averages the 49 cells of channel 0, so feature 0 = v.
DigitClassifier intensity_reader(double slope) {
  DigitClassifier net;
  torch::NoGradGuard no_grad;
  for (auto& p : net->named_parameters()) p.value().zero_();
  for (const auto& module : net->modules(false)) {
    if (auto* conv = module->as<torch::nn::Conv2dImpl>()) conv->weight[0][0][1][1] = 1.0;
    if (auto* bn = module->as<torch::nn::BatchNorm2dImpl>()) {
      bn->weight.fill_(1.0);
      bn->running_mean.zero_();
      bn->running_var.fill_(1.0 - bn->options.eps());
    }
  }
  auto params = net->member(0)->named_parameters();
  params["fc1.weight"][0].slice(0, 0, 49).fill_(1.0 / 49);
  for (std::int64_t k = 0; k < 10; ++k) {
    params["fc2.weight"][k][0] = slope * static_cast<double>(k);
    params["fc2.bias"][k] = -slope * static_cast<double>(k * k) / 20;
  }
  params["fc2.weight"][10][0] = 40.0;
  params["fc2.bias"][10] = -36.0;
  net->eval();
  return net;
}

/// The intensity reader's 11 probabilities, by hand in double precision: the 11 logits are d and
/// z + logsumexp(d) (DigitClassifierImpl::forward).
std::vector<double> hand_softmax(double slope, double v) {
  std::vector<double> logit(11);
  double lse = 0;
  for (int k = 0; k < 10; ++k) lse += std::exp(logit[k] = slope * k * (v - k / 20.0));
  logit[10] = 40 * (v - 0.9) + std::log(lse);
  double total = 0;
  for (auto& x : logit) total += x = std::exp(x);
  for (auto& x : logit) x /= total;
  CHECK(logit[10] == doctest::Approx(1 / (1 + std::exp(-40 * (v - 0.9)))));  // p(reject) = sigmoid(z)
  return logit;
}

/// Float64 samples [n, d] whose sample mean is exactly `mean` and sample covariance (1/(n − 1))
/// exactly `cov`: whitened Gaussian draws, recoloured by the Cholesky factor of `cov`.
torch::Tensor exact_gaussian_sample(std::int64_t n, const torch::Tensor& mean, const torch::Tensor& cov) {
  auto z = torch::randn({n, mean.size(0)}, torch::kFloat64);
  z = z - z.mean(0);
  const auto c = z.t().mm(z) / static_cast<double>(n - 1);
  const auto white = torch::linalg_solve(torch::linalg_cholesky(c), z.t()).t();  // sample covariance I
  return white.mm(torch::linalg_cholesky(cov).t()) + mean;
}

}  // namespace

TEST_CASE("Fréchet distance: zero for equal sets, ‖Δμ‖² for a shift, Σ(s₁ − s₂)² for scaled Gaussians") {
  torch::manual_seed(0);
  const auto x = torch::randn({20000, 4}, torch::kFloat64);
  CHECK(frechet_distance(x, x) == doctest::Approx(0.0).epsilon(1e-9).scale(1.0));
  const auto shift = torch::tensor({1.0, -2.0, 0.5, 0.0}, torch::kFloat64);
  CHECK(frechet_distance(x, x + shift) == doctest::Approx(5.25).epsilon(1e-6));
  // N(0, I) vs N(0, 4I) in 4-D: Σ (1 − 2)² = 4 (sampling error ~ a few 1e-2).
  const auto y = torch::randn({20000, 4}, torch::kFloat64) * 2;
  CHECK(frechet_distance(x, y) == doctest::Approx(4.0).epsilon(0.03));
  CHECK_THROWS_AS(frechet_distance(x, torch::randn({10, 3})), shape_error);
}

TEST_CASE("Fréchet distance equals the closed form for samples with exactly known mean and covariance") {
  torch::manual_seed(3);
  // Non-commuting 2×2 covariances: for 2×2 PSD M, Tr √M = √(Tr M + 2√det M), and
  // M = Σ₁^½ Σ₂ Σ₁^½ has Tr M = Tr(Σ₁Σ₂) and det M = det Σ₁ · det Σ₂.
  const auto mu1 = torch::tensor({0.5, -1.0}, torch::kFloat64), mu2 = torch::tensor({2.0, 1.0}, torch::kFloat64);
  const auto s1 = torch::tensor({{2.0, 0.6}, {0.6, 1.0}}, torch::kFloat64);
  const auto s2 = torch::tensor({{1.0, -0.4}, {-0.4, 3.0}}, torch::kFloat64);
  const double tr_s1s2 = s1.mm(s2).trace().item<double>();
  const double det = torch::det(s1).item<double>() * torch::det(s2).item<double>();
  const double expected = (1.5 * 1.5 + 2.0 * 2.0) + 3.0 + 4.0 - 2 * std::sqrt(tr_s1s2 + 2 * std::sqrt(det));
  const auto a = exact_gaussian_sample(50, mu1, s1), b = exact_gaussian_sample(80, mu2, s2);
  CHECK(frechet_distance(a, b) == doctest::Approx(expected).epsilon(1e-9));
  CHECK(frechet_distance(b, a) == doctest::Approx(expected).epsilon(1e-9));
  // Diagonal covariances diag(1, 4, 9) and diag(4, 1, 16): Tr √(Σ₁Σ₂) = 2 + 2 + 12, so the
  // distance is ‖Δμ‖² + 14 + 21 − 32 = ‖Δμ‖² + 3; float32 features give the same to 1e-5.
  const auto d1 = exact_gaussian_sample(40, torch::zeros({3}, torch::kFloat64), torch::diag(torch::tensor({1.0, 4.0, 9.0}, torch::kFloat64)));
  const auto d2 = exact_gaussian_sample(40, torch::tensor({1.0, 0.0, -1.0}, torch::kFloat64),
                                        torch::diag(torch::tensor({4.0, 1.0, 16.0}, torch::kFloat64)));
  CHECK(frechet_distance(d1.to(torch::kFloat32), d2.to(torch::kFloat32)) == doctest::Approx(2.0 + 3.0).epsilon(1e-5));
}

TEST_CASE("read_classes: per-class CAS, confidence and confusion of a hand-set net equal the hand-computed values") {
  constexpr double slope = 8;
  auto net = intensity_reader(slope);
  // Intensity → class read: 0.0 → 0, 0.02 → 0, 0.1 → 1, 0.31 → 3, 0.29 → 3, 0.62 → 6, 1.0 and
  // 0.98 → reject.
  const std::vector<double> v = {0.0, 0.02, 0.1, 0.31, 0.29, 0.62, 1.0, 0.98};
  const std::vector<std::int64_t> intended = {0, 0, 0, 3, 2, 6, 6, 9};
  std::vector<torch::Tensor> images;
  for (double x : v) images.push_back(torch::full({1, 1, 28, 28}, x));
  const auto batch = torch::cat(images);
  const auto labels = torch::tensor(intended, torch::kLong);
  const auto r = read_classes(net, batch, labels);

  CHECK(r.count == 8);
  CHECK(r.cas == doctest::Approx(4.0 / 8));  // images 0, 1, 3, 5 read as intended
  CHECK(r.rejected == doctest::Approx(2.0 / 8));
  CHECK(classification_accuracy(net, batch, labels) == doctest::Approx(r.cas));
  REQUIRE(r.confusion.dim() == 2);
  REQUIRE(r.confusion.size(0) == 10);
  REQUIRE(r.confusion.size(1) == 11);
  CHECK((r.confusion.scalar_type() == torch::kLong));
  CHECK(r.confusion.sum().item<std::int64_t>() == 8);
  const std::vector<std::tuple<int, int, int>> cells = {{0, 0, 2}, {0, 1, 1}, {3, 3, 1}, {2, 3, 1}, {6, 6, 1}, {6, 10, 1}, {9, 10, 1}};
  for (const auto& [row, col, count] : cells) CHECK(r.confusion[row][col].item<std::int64_t>() == count);

  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> cas = {2.0 / 3, nan, 0.0, 1.0, nan, nan, 0.5, nan, nan, 0.0};
  for (int c = 0; c < 10; ++c) {
    CAPTURE(c);
    if (std::isnan(cas[c])) {
      CHECK(std::isnan(r.per_class_cas[c]));
      CHECK(std::isnan(r.mean_confidence[c]));
    } else {
      CHECK(r.per_class_cas[c] == doctest::Approx(cas[c]));
    }
  }
  // Mean softmax probability of the intended class, from the closed-form logits.
  auto p = [&](int i) { return hand_softmax(slope, v[i])[intended[i]]; };
  CHECK(r.mean_confidence[0] == doctest::Approx((p(0) + p(1) + p(2)) / 3).epsilon(1e-5));
  CHECK(r.mean_confidence[2] == doctest::Approx(p(4)).epsilon(1e-5));
  CHECK(r.mean_confidence[3] == doctest::Approx(p(3)).epsilon(1e-5));
  CHECK(r.mean_confidence[6] == doctest::Approx((p(5) + p(6)) / 2).epsilon(1e-5));
  CHECK(r.mean_confidence[9] == doctest::Approx(p(7)).epsilon(1e-5));
}

TEST_CASE("the reject class: a briefly trained evaluator reads synthetic digits, rejects heavily blurred ones") {
  auto& net = synthetic_classifier();
  const auto test = synthetic_digits(30, 99);
  const auto clean = read_classes(net, test.images, test.labels);
  MESSAGE("synthetic held-out: CAS ", clean.cas, ", rejected ", clean.rejected);
  CHECK(clean.cas > 0.9);
  CHECK(clean.rejected < 0.05);
  // Confusion counts sum to N, their trace is the CAS and the last column the rejected share.
  CHECK(clean.confusion.sum().item<std::int64_t>() == test.size());
  CHECK(clean.confusion.diagonal().sum().item<double>() / test.size() == doctest::Approx(clean.cas));
  CHECK(clean.confusion.select(1, 10).sum().item<double>() / test.size() == doctest::Approx(clean.rejected));
  CHECK(classification_accuracy(net, test.images, test.labels) == doctest::Approx(clean.cas));
  // Wrong labels score near zero: the classifier looks at the images.
  CHECK(classification_accuracy(net, test.images, (test.labels + 1) % 10) < 0.1);

  const auto blurred = read_classes(net, gaussian_blur(test.images, 3.0), test.labels);
  MESSAGE("blurred (σ = 3): CAS ", blurred.cas, ", rejected ", blurred.rejected);
  CHECK(blurred.rejected > 0.8);
  CHECK(blurred.cas < 0.15);
  // Noise is no digit either.
  torch::manual_seed(5);
  CHECK(read_classes(net, torch::rand({100, 1, 28, 28}), test.labels.slice(0, 0, 100)).rejected > 0.8);
}

TEST_CASE("classifier features: real vs real is close, real vs noise far; save and load keep every reading") {
  auto& net = synthetic_classifier();
  const auto a = synthetic_digits(40, 11), b = synthetic_digits(40, 12);
  const auto features = classifier_features(net, a.images);
  CHECK(features.size(0) == 400);
  CHECK(features.size(1) == DigitClassifierImpl::kMemberFeatures);
  CHECK(net->feature_count() == DigitClassifierImpl::kMemberFeatures);
  CHECK(net->forward(a.images.slice(0, 0, 3)).size(1) == 11);
  const double fd_real = classifier_frechet_distance(net, a.images, b.images);
  torch::manual_seed(6);
  const double fd_noise = classifier_frechet_distance(net, a.images, torch::rand({400, 1, 28, 28}));
  MESSAGE("FD real vs real ", fd_real, ", real vs noise ", fd_noise);
  CHECK(fd_real * 10 < fd_noise);
  CHECK(classifier_frechet_distance_at(net, a.images, b.images, 100) ==
        doctest::Approx(classifier_frechet_distance(net, a.images.slice(0, 0, 100), b.images.slice(0, 0, 100))));

  const auto file = std::filesystem::temp_directory_path() / "scoreflow_classifier_test.pt";
  save_classifier(net, file);
  CHECK_FALSE(std::filesystem::exists(temp_path_for(file)));
  auto loaded = load_classifier(file);
  CHECK(torch::equal(classifier_logits(loaded, a.images), classifier_logits(net, a.images)));
  CHECK(classifier_frechet_distance(loaded, a.images, b.images) == fd_real);
  std::filesystem::remove(file);

  const auto junk = std::filesystem::temp_directory_path() / "scoreflow_not_a_checkpoint.pt";
  { std::ofstream(junk) << "not a checkpoint"; }
  CHECK_THROWS_WITH_AS(load_classifier(junk), doctest::Contains("scoreflow_not_a_checkpoint.pt"), io_error);
  // A checkpoint of another module (e.g. the 2-conv classifier of earlier versions) says so.
  torch::nn::Linear other(3, 2);
  torch::save(other, junk.string());
  CHECK_THROWS_WITH_AS(load_classifier(junk), doctest::Contains("records no architecture version"), io_error);
  // The one-network evaluator of version 2 is refused by its version, not by a torch error.
  struct Version2 : torch::nn::Module {
    Version2() { register_buffer("architecture_version", torch::full({1}, 2, torch::kLong)); }
  };
  torch::save(std::make_shared<Version2>(), junk.string());
  CHECK_THROWS_WITH_AS(load_classifier(junk), doctest::Contains("architecture version 2, this scoreflow reads version 3"), io_error);
  std::filesystem::remove(junk);
}

TEST_CASE("evaluator ensemble: mean member probabilities, concatenated features, member m = a lone net from seed + m") {
  // Two hand-set readers: the ensemble's softmax is the mean of their closed-form softmaxes.
  auto a = intensity_reader(1.0), b = intensity_reader(8.0);
  DigitClassifier both(std::vector<DigitClassifierNet>{a->member(0), b->member(0)});
  CHECK(both->member_count() == 2);
  CHECK(both->feature_count() == 2 * DigitClassifierImpl::kMemberFeatures);
  const std::vector<double> v = {0.05, 0.31, 0.62, 0.93};
  std::vector<torch::Tensor> images;
  for (double x : v) images.push_back(torch::full({1, 1, 28, 28}, x));
  const auto batch = torch::cat(images);
  const auto probs = torch::softmax(classifier_logits(both, batch).to(torch::kFloat64), 1);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto pa = hand_softmax(1.0, v[i]), pb = hand_softmax(8.0, v[i]);
    for (int k = 0; k < 11; ++k) {
      CAPTURE(i);
      CAPTURE(k);
      CHECK(probs[static_cast<std::int64_t>(i)][k].item<double>() == doctest::Approx((pa[k] + pb[k]) / 2).epsilon(1e-5).scale(1e-6));
    }
  }
  const auto f = classifier_features(both, batch);
  CHECK(torch::equal(f, torch::cat({classifier_features(a, batch), classifier_features(b, batch)}, 1)));

  // Training: member m of a 2-member run equals a 1-member run from seed + m (weights, batch
  // order, augmentation and reject examples all follow the member's seed).
  const auto set = synthetic_digits(8, 31);
  ClassifierOptions options;
  options.epochs = 1;
  options.batch_size = 40;
  options.seed = 5;
  options.members = 2;
  std::vector<std::pair<std::int64_t, int>> progress;
  auto ensemble = train_classifier(set, options, [&](std::int64_t m, int e, double) { progress.emplace_back(m, e); });
  const std::vector<std::pair<std::int64_t, int>> expected_progress = {{0, 1}, {1, 1}};
  CHECK(progress == expected_progress);
  options.members = 1;
  auto first = train_classifier(set, options);
  options.seed = 6;
  auto second = train_classifier(set, options);
  const auto probe = synthetic_digits(2, 32).images;
  torch::NoGradGuard no_grad;
  CHECK(torch::equal(ensemble->member(0)->forward(probe), first->forward(probe)));
  CHECK(torch::equal(ensemble->member(1)->forward(probe), second->forward(probe)));
  CHECK_FALSE(torch::equal(first->forward(probe), second->forward(probe)));

  // Save and load keep the member count and every reading.
  const auto file = std::filesystem::temp_directory_path() / "scoreflow_ensemble_test.pt";
  save_classifier(ensemble, file);
  auto loaded = load_classifier(file);
  CHECK(loaded->member_count() == 2);
  CHECK(torch::equal(classifier_logits(loaded, probe), classifier_logits(ensemble, probe)));
  CHECK(torch::equal(classifier_features(loaded, probe), classifier_features(ensemble, probe)));
  std::filesystem::remove(file);

  CHECK_THROWS_WITH_AS(DigitClassifier(std::int64_t{0}), doctest::Contains("classifier.members = 0"), invalid_option);
  CHECK_THROWS_AS(DigitClassifier(std::int64_t{17}), invalid_option);
  CHECK_THROWS_AS(DigitClassifier(std::vector<DigitClassifierNet>{}), invalid_option);
  CHECK_THROWS_WITH_AS(ensemble->member(2), doctest::Contains("the ensemble has 2 members"), invalid_option);
  options.members = 0;
  CHECK_THROWS_WITH_AS(train_classifier(set, options), doctest::Contains("classifier.members = 0"), invalid_option);
}

TEST_CASE("class-balanced selection and the real-vs-real Fréchet reference") {
  // Labels sorted by class, with class 3 short: 30 of each class except 12 of class 3.
  std::vector<std::int64_t> values;
  for (std::int64_t c = 0; c < 10; ++c)
    for (int i = 0; i < (c == 3 ? 12 : 30); ++i) values.push_back(c);
  const auto labels = torch::tensor(values, torch::kLong);
  const auto idx = class_balanced_indices(labels, 105, 7);
  REQUIRE(idx.size(0) == 105);
  const auto counts = torch::bincount(labels.index_select(0, idx), {}, 10);
  for (int c = 0; c < 10; ++c) CHECK(counts[c].item<std::int64_t>() == (c < 5 ? 11 : 10));  // 105 = 10·10 + 5
  CHECK(torch::bincount(idx).max().item<std::int64_t>() == 1);  // without replacement
  CHECK(torch::equal(idx, class_balanced_indices(labels, 105, 7)));
  CHECK_FALSE(torch::equal(idx, class_balanced_indices(labels, 105, 8)));
  const auto some = class_balanced_indices(labels, 9, 0, {2, 5, 7});
  CHECK(torch::equal(torch::bincount(labels.index_select(0, some), {}, 10),
                     torch::tensor({0, 0, 3, 0, 0, 3, 0, 3, 0, 0}, torch::kLong)));
  CHECK_THROWS_WITH_AS(class_balanced_indices(labels, 150, 0), doctest::Contains("class 3 has 12 images"), invalid_option);
  CHECK_THROWS_AS(class_balanced_indices(labels, 0, 0), invalid_option);

  auto& net = synthetic_classifier();
  // The training set sorted by class: its first 50 hold classes 0–2 only, a balanced 50 has 5 of each.
  const auto raw = synthetic_digits(20, 21), held = synthetic_digits(20, 22);
  const auto order = raw.labels.argsort();
  const ImageDataset train{raw.images.index_select(0, order), raw.labels.index_select(0, order)};
  const double reference = real_frechet_distance(net, train, held, 50, 4);
  const auto a = train.images.index_select(0, class_balanced_indices(train.labels, 50, 4));
  const auto b = held.images.index_select(0, class_balanced_indices(held.labels, 50, 5));
  CHECK(reference == doctest::Approx(frechet_distance(classifier_features(net, a), classifier_features(net, b))));
  const double first_n = classifier_frechet_distance_at(net, train.images, held.images, 50);
  MESSAGE("FD at n = 50: class-balanced ", reference, ", first 50 of a class-sorted set ", first_n);
  CHECK(reference * 3 < first_n);

  // read_frechet: generated images of classes {1, 4} only are compared with real ones of {1, 4}.
  const auto gen_idx = class_balanced_indices(held.labels, 40, 9, {1, 4});
  const auto generated = gaussian_blur(held.images.index_select(0, gen_idx), 2.0);
  const auto reading = read_frechet(net, generated, held.labels.index_select(0, gen_idx), train, held, 30);
  CHECK(reading.n == 30);
  const auto real14 = held.images.index_select(0, class_balanced_indices(held.labels, 30, 1, {1, 4}));
  const auto gen14 = generated.index_select(0, class_balanced_indices(held.labels.index_select(0, gen_idx), 30, 0, {1, 4}));
  const auto train14 = train.images.index_select(0, class_balanced_indices(train.labels, 30, 2, {1, 4}));
  const auto real_features = classifier_features(net, real14);
  CHECK(reading.fd == doctest::Approx(frechet_distance(classifier_features(net, gen14), real_features)));
  CHECK(reading.real_reference == doctest::Approx(frechet_distance(classifier_features(net, train14), real_features)));
  CHECK(reading.real_reference < reading.fd);
}

TEST_CASE("evaluator inputs: bad shapes, labels, sizes and NaN images are clear scoreflow errors") {
  auto net = intensity_reader(1.0);
  const auto images = torch::rand({4, 1, 28, 28});
  const auto labels = torch::tensor({0, 1, 2, 3}, torch::kLong);
  CHECK_THROWS_WITH_AS(classification_accuracy(net, torch::rand({4, 28, 28}), labels), doctest::Contains("[N, 1, 28, 28]"), shape_error);
  CHECK_THROWS_WITH_AS(read_classes(net, torch::rand({4, 3, 28, 28}), labels), doctest::Contains("[4, 3, 28, 28]"), shape_error);
  CHECK_THROWS_WITH_AS(read_classes(net, images, labels.slice(0, 0, 3)), doctest::Contains("one per image"), shape_error);
  CHECK_THROWS_WITH_AS(read_classes(net, images, torch::tensor({0, 1, 2, 10}, torch::kLong)), doctest::Contains("[0, 10)"),
                       invalid_option);
  CHECK_THROWS_AS(read_classes(net, images, torch::tensor({0, -1, 2, 3}, torch::kLong)), invalid_option);
  CHECK_THROWS_WITH_AS(read_classes(net, images, labels.to(torch::kFloat32)), doctest::Contains("integers"), shape_error);
  CHECK_THROWS_WITH_AS(read_classes(net, (images * 255).to(torch::kUInt8), labels), doctest::Contains("floating point"), shape_error);
  CHECK_THROWS_AS(read_classes(net, torch::rand({0, 1, 28, 28}), torch::zeros({0}, torch::kLong)), shape_error);
  auto with_nan = images.clone();
  with_nan[2][0][5][5] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(read_classes(net, with_nan, labels), doctest::Contains("image 2"), non_finite_error);
  CHECK_THROWS_AS(classification_accuracy(net, with_nan, labels), non_finite_error);
  CHECK_THROWS_AS(classifier_frechet_distance(net, images, with_nan), non_finite_error);
  CHECK_THROWS_WITH_AS(classifier_frechet_distance(net, images, images.slice(0, 0, 1)), doctest::Contains("at least 2"), shape_error);
  CHECK_THROWS_AS(classifier_frechet_distance_at(net, images, images, 5), shape_error);
  CHECK_THROWS_AS(classifier_frechet_distance_at(net, images, images, 1), invalid_option);
  CHECK_THROWS_AS(frechet_distance(torch::rand({1, 3}), torch::rand({5, 3})), shape_error);
  CHECK_THROWS_AS(frechet_distance(torch::full({3, 2}, std::nan("")), torch::rand({5, 2})), non_finite_error);
  const ImageDataset set{images, labels};
  CHECK_THROWS_AS(real_frechet_distance(net, set, set, 1), invalid_option);
  CHECK_THROWS_AS(read_frechet(net, images, labels, set, set, 8), shape_error);
  CHECK_THROWS_AS(gaussian_blur(images, 0.0), invalid_option);
  CHECK_THROWS_AS(net->features(torch::rand({2, 1, 14, 14})), shape_error);

  ClassifierOptions bad;
  bad.epochs = 0;
  CHECK_THROWS_WITH_AS(train_classifier(set, bad), doctest::Contains("classifier.epochs = 0"), invalid_option);
  bad = {};
  bad.reject.blur_sigma_min = -1;
  CHECK_THROWS_WITH_AS(train_classifier(set, bad), doctest::Contains("reject.blur_sigma_min = -1"), invalid_option);
  CHECK_THROWS_AS(train_classifier({images, torch::tensor({0, 1, 2, 11}, torch::kLong)}), invalid_option);

  CHECK_NOTHROW(require_accuracy(0.995, 0.99, "mnist"));
  CHECK_NOTHROW(require_accuracy(0.99, 0.99, "mnist"));
  CHECK_THROWS_WITH_AS(require_accuracy(0.987, 0.99, "mnist"), doctest::Contains("mnist is 98.70%, below the required 99.00%"),
                       evaluator_accuracy_error);
  CHECK_THROWS_AS(require_accuracy(std::nan(""), 0.5, "fashion"), evaluator_accuracy_error);
  CHECK_THROWS_AS(require_accuracy(0.9, 1.5, "fashion"), invalid_option);
}
}  // namespace test_evaluator
