#include <filesystem>

#include <doctest/doctest.h>
#include <torch/torch.h>

#include "scoreflow/torch/eval/evaluator.hpp"

using namespace scoreflow;

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

TEST_CASE("classifier on Fashion-MNIST: learns, reports CAS, saves and loads") {
  const std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir)) {
    MESSAGE("Fashion-MNIST not installed (Debian dataset-fashion-mnist); skipped");
    return;
  }
  torch::set_num_threads(2);
  const auto paths = fashion_mnist_paths(dir);
  auto train = load_image_dataset(paths, Split::train);
  auto test = load_image_dataset(paths, Split::test);
  const ImageDataset small{train.images.slice(0, 0, 6000), train.labels.slice(0, 0, 6000)};
  std::vector<double> losses;
  auto net = train_classifier(small, ClassifierOptions{.epochs = 2}, [&](int, double loss) { losses.push_back(loss); });
  REQUIRE(losses.size() == 2);
  CHECK(losses[1] < losses[0]);
  const auto images = test.images.slice(0, 0, 2000), labels = test.labels.slice(0, 0, 2000);
  const double acc = classification_accuracy(net, images, labels);
  MESSAGE("Fashion-MNIST accuracy after 2 epochs on 6000 images: ", acc);
  CHECK(acc > 0.75);
  // Wrong labels score at chance level; the classifier really looks at the images.
  CHECK(classification_accuracy(net, images, (labels + 1) % 10) < 0.2);
  // Real vs real is close; real vs noise is far.
  const double fd_real = classifier_frechet_distance(net, images.slice(0, 0, 1000), images.slice(0, 1000, 2000));
  const double fd_noise = classifier_frechet_distance(net, images.slice(0, 0, 1000), torch::rand({1000, 1, 28, 28}));
  CHECK(fd_real * 10 < fd_noise);

  const auto file = std::filesystem::temp_directory_path() / "scoreflow_classifier_test.pt";
  save_classifier(net, file);
  auto loaded = load_classifier(file);
  CHECK(classification_accuracy(loaded, images, labels) == acc);
  std::filesystem::remove(file);
  const auto junk = std::filesystem::temp_directory_path() / "scoreflow_not_a_checkpoint.pt";
  { std::ofstream(junk) << "not a checkpoint"; }
  CHECK_THROWS_WITH_AS(load_classifier(junk), doctest::Contains("scoreflow_not_a_checkpoint.pt"), io_error);
  std::filesystem::remove(junk);
}
