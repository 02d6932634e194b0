// Seed Part B training: the objectives' formulas, loss that falls for every objective, data order,
// callbacks, and checkpoints (bit-exact resume, clear errors for foreign or mismatched files).
#include <doctest/doctest.h>

#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "torch/model_helpers.hpp"
#include "torch/scratch_dir.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/data/dataset.hpp"

namespace test_training {

using namespace scoreflow;
using namespace scoreflow::models;
using namespace scoreflow::training;
using sftest::SingleThread;
namespace fs = std::filesystem;

namespace {

struct Data {
  torch::Tensor images, labels;
};

/// Synthetic "digits" in [0, 1] of `classes` ≤ 10 classes: class k is a vertical bar at column
/// 3 + 2k and a horizontal bar at row 4 + 2k, with random brightness and a little noise.
Data synthetic_digits(std::int64_t n, std::uint64_t seed, std::int64_t classes = 10) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto templates = torch::zeros({10, 1, 28, 28});
  for (std::int64_t k = 0; k < 10; ++k) {
    templates.index_put_({k, 0, torch::indexing::Slice(4, 24), torch::indexing::Slice(3 + 2 * k, 5 + 2 * k)}, 1.0);
    templates.index_put_({k, 0, torch::indexing::Slice(4 + 2 * k, 6 + 2 * k), torch::indexing::Slice(4, 24)}, 1.0);
  }
  auto labels = torch::randint(classes, {n}, gen, torch::kLong);
  auto brightness = 0.7 + 0.3 * torch::rand({n, 1, 1, 1}, gen);
  auto images = templates.index_select(0, labels) * brightness + 0.05 * torch::randn({n, 1, 28, 28}, gen);
  return {images.clamp(0.0, 1.0), labels};
}

fs::path temp_dir(const std::string& name) { return sftest::scratch_dir("training", name); }


/// Mean training loss over the first and the last `window` steps of a run.
template <class Net, class Objective>
std::pair<double, double> loss_drop(Net net, Objective objective, const Data& data, std::int64_t steps,
                                    double lr, std::int64_t window = 10) {
  TrainOptions o{.epochs = 1000, .batch_size = 16, .lr = lr, .seed = 1, .max_steps = steps};
  Trainer trainer(net, objective, o);
  std::vector<double> losses;
  trainer.fit(tensor_source(data.images, data.labels), {.on_loss = [&](std::int64_t, std::int64_t, double l) {
                losses.push_back(l);
              }});
  REQUIRE(static_cast<std::int64_t>(losses.size()) == steps);
  double first = 0, last = 0;
  for (std::int64_t i = 0; i < window; ++i) {
    first += losses[static_cast<std::size_t>(i)];
    last += losses[losses.size() - 1 - static_cast<std::size_t>(i)];
  }
  MESSAGE("loss " << first / window << " -> " << last / window << " (ratio " << last / first << ")");
  return {first / window, last / window};
}

bool same_weights(torch::nn::Module& a, torch::nn::Module& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  auto ba = a.named_buffers(), bb = b.named_buffers();
  if (pa.size() != pb.size() || ba.size() != bb.size()) return false;
  for (const auto& p : pa)
    if (!torch::equal(p.value(), pb[p.key()])) return false;
  for (const auto& p : ba)
    if (!torch::equal(p.value(), bb[p.key()])) return false;
  return true;
}

/// A stand-in net that records what the objective feeds it: forward(x, t, c) = w · x.
struct RecorderImpl : torch::nn::Module {
  RecorderImpl() { w = register_parameter("w", torch::ones({1})); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) {
    seen_x = x.detach().clone();
    seen_t = t.detach().clone();
    seen_c = c.detach().clone();
    return w * x;
  }
  torch::Tensor w, seen_x, seen_t, seen_c;
};
TORCH_MODULE(Recorder);

struct TimeRecorderImpl : torch::nn::Module {
  TimeRecorderImpl() { w = register_parameter("w", torch::ones({1})); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) {
    seen_x = x.detach().clone();
    seen_t = t.detach().clone();
    return w * x;
  }
  torch::Tensor w, seen_x, seen_t;
};
TORCH_MODULE(TimeRecorder);

}  // namespace

// ---- objectives: formulas ------------------------------------------------------------------

TEST_CASE_FIXTURE(SingleThread, "FlowMatching builds x_t = (1 − t) x₀ + t x₁ and regresses onto x₁ − x₀ (seed Part B §2.2)") {
  const auto data = synthetic_digits(6, 1);
  TimeRecorder net;
  TrainingRng rng(5), replay(5);
  const auto loss = FlowMatching{}(net, Batch{data.images, data.labels}, rng);
  const auto x0 = replay.normal_like(data.images);
  const auto t = replay.uniform(6, data.images.options());
  REQUIRE(net->seen_t.sizes() == torch::IntArrayRef{6, 1});
  CHECK(torch::equal(net->seen_t, t));
  CHECK(t.min().item<double>() >= 0.0);
  CHECK(t.max().item<double>() < 1.0);
  const auto tt = t.view({6, 1, 1, 1});
  const auto xt = (1 - tt) * x0 + tt * data.images;
  CHECK(torch::allclose(net->seen_x, xt));
  CHECK(loss.item<double>() == doctest::Approx(torch::mse_loss(xt, data.images - x0).item<double>()));
}

TEST_CASE_FIXTURE(SingleThread, "class dropout zeroes the one-hot condition with probability p_uncond per sample (seed Part B §2.4)") {
  const auto data = synthetic_digits(4000, 2);
  Recorder net;
  TrainingRng rng(3);
  FlowMatching{ClassDropout{.p_uncond = 0.3}}(net, Batch{data.images, data.labels}, rng);
  const auto c = net->seen_c;
  REQUIRE(c.sizes() == torch::IntArrayRef{4000, 10});
  const auto kept = c.sum(1);
  CHECK(((kept == 0) | (kept == 1)).all().item<bool>());
  const double dropped = (kept == 0).to(torch::kFloat64).mean().item<double>();
  CHECK(dropped == doctest::Approx(0.3).epsilon(0.1));  // ±0.03 (σ ≈ 0.007)
  const auto rows = kept == 1;
  CHECK(torch::equal(c.index({rows}).argmax(1), data.labels.index({rows})));
  // p_uncond = 0 keeps every class, 1 drops every class.
  FlowMatching{ClassDropout{.p_uncond = 0.0}}(net, Batch{data.images, data.labels}, rng);
  CHECK(net->seen_c.sum().item<double>() == 4000.0);
  FlowMatching{ClassDropout{.p_uncond = 1.0}}(net, Batch{data.images, data.labels}, rng);
  CHECK(net->seen_c.sum().item<double>() == 0.0);
  CHECK_THROWS_WITH_AS(FlowMatching{ClassDropout{.p_uncond = 1.5}}, doctest::Contains("p_uncond = 1.5"),
                       invalid_option);
  TrainingRng r(1);
  CHECK_THROWS_WITH_AS(FlowMatching{ClassDropout{}}(net, Batch{data.images, torch::Tensor{}}, r),
                       doctest::Contains("labels"), shape_error);
}

TEST_CASE_FIXTURE(SingleThread, "DiffusionObjective: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε with t ~ U{0 … T−1}; the net sees t/T") {
  const auto data = synthetic_digits(8, 3);
  const auto schedule = NoiseSchedule::cosine(50);
  TimeRecorder net;
  TrainingRng rng(9), replay(9);
  const auto loss = DiffusionObjective<NoClass>{schedule}(net, Batch{data.images, data.labels}, rng);
  const auto t = replay.integers(8, 50);
  const auto eps = replay.normal_like(data.images);
  CHECK(torch::allclose(net->seen_t, (t.to(torch::kFloat32) / 50.0).view({8, 1})));
  for (std::int64_t i = 0; i < 8; ++i) {
    const double ab = schedule.alpha_bar(static_cast<int>(t[i].item<std::int64_t>()));
    const auto expected = std::sqrt(ab) * data.images[i] + std::sqrt(1 - ab) * eps[i];
    CHECK(torch::allclose(net->seen_x[i], expected, 1e-5, 1e-6));
  }
  CHECK(loss.item<double>() == doctest::Approx(torch::mse_loss(net->seen_x, eps).item<double>()));
}

TEST_CASE_FIXTURE(SingleThread, "DiffusionObjective with a v or x₀ target: the same x_t, the loss against v = √ᾱ ε − √(1 − ᾱ) x₀ or x₀") {
  const auto data = synthetic_digits(8, 3);
  const auto schedule = NoiseSchedule::cosine(50);
  for (const auto target : {Parameterization::velocity, Parameterization::sample}) {
    CAPTURE(to_string(target));
    TimeRecorder net;  // returns its input, so the loss is ‖x_t − target‖²
    TrainingRng rng(9), replay(9);
    const DiffusionObjective<NoClass> objective{schedule, {}, target};
    CHECK(objective.target() == target);
    const auto loss = objective(net, Batch{data.images, data.labels}, rng);
    const auto t = replay.integers(8, 50);
    const auto eps = replay.normal_like(data.images);
    auto expected_target = data.images.clone();
    for (std::int64_t i = 0; i < 8; ++i) {
      const double ab = schedule.alpha_bar(static_cast<int>(t[i].item<std::int64_t>()));
      if (target == Parameterization::velocity) expected_target[i] = std::sqrt(ab) * eps[i] - std::sqrt(1 - ab) * data.images[i];
    }
    CHECK(loss.item<double>() == doctest::Approx(torch::mse_loss(net->seen_x, expected_target).item<double>()).epsilon(1e-5));
  }
}

TEST_CASE_FIXTURE(SingleThread, "Denoising: z = x + σε (σ = 0.5) or z = ε, target x (seed Part B §1.2.1, §1.2.3)") {
  struct IdentityImpl : torch::nn::Module {
    IdentityImpl() { w = register_parameter("w", torch::ones({1})); }
    torch::Tensor forward(const torch::Tensor& z) { return w * z; }
    torch::Tensor w;
  };
  auto net = std::make_shared<IdentityImpl>();
  const auto data = synthetic_digits(4, 4);
  TrainingRng rng(2), replay(2);
  const auto l = Denoising{0.5}(net, Batch{data.images, {}}, rng);
  const auto eps = replay.normal_like(data.images);
  CHECK(l.item<double>() == doctest::Approx((0.25 * eps.square().mean()).item<double>()).epsilon(1e-5));
  const auto p = Denoising::pure_noise()(net, Batch{data.images, {}}, rng);
  const auto eps2 = replay.normal_like(data.images);
  CHECK(p.item<double>() == doctest::Approx(torch::mse_loss(eps2, data.images).item<double>()).epsilon(1e-5));
  CHECK_THROWS_AS(Denoising{-0.1}, invalid_option);
}

// ---- training lowers the loss ----------------------------------------------------------------

TEST_CASE_FIXTURE(SingleThread, "training lowers the loss for every objective (D = 8, 320 synthetic digits, 80 steps)") {
  const auto data = synthetic_digits(320, 10);
  const std::int64_t steps = 80;
  const double lr = 3e-3;
  SUBCASE("one-step denoiser, σ = 0.5 (seed §1.2.1)") {
    torch::manual_seed(0);
    auto [before, after] = loss_drop(UnconditionalUNet(UNetOptions{.hidden = 8}), Denoising{0.5}, data, steps, lr);
    CHECK(after < 0.7 * before);
  }
  SUBCASE("pure-noise denoiser (seed §1.2.3), on one class: it learns the mean image") {
    // Its loss cannot fall below the data's pixel variance, so the data here has little.
    torch::manual_seed(0);
    auto [before, after] = loss_drop(UnconditionalUNet(UNetOptions{.hidden = 8}), Denoising::pure_noise(),
                                     synthetic_digits(320, 10, 1), steps, lr);
    CHECK(after < 0.7 * before);
  }
  SUBCASE("time-conditioned flow matching (seed §2.2)") {
    torch::manual_seed(0);
    auto [before, after] = loss_drop(TimeConditionalUNet(UNetOptions{.hidden = 8}), FlowMatching{}, data, steps, lr);
    CHECK(after < 0.7 * before);
  }
  SUBCASE("class-conditioned flow matching with p_uncond = 0.1 (seed §2.5)") {
    torch::manual_seed(0);
    auto [before, after] = loss_drop(ClassConditionalUNet(UNetOptions{.hidden = 8}), FlowMatching{ClassDropout{}},
                                     data, steps, lr);
    CHECK(after < 0.7 * before);
  }
  SUBCASE("DDPM ε-prediction, cosine schedule, class dropout") {
    torch::manual_seed(0);
    auto [before, after] = loss_drop(ClassConditionalUNet(UNetOptions{.hidden = 8}), DiffusionObjective{}, data, steps, lr);
    CHECK(after < 0.7 * before);
  }
}

// ---- data order --------------------------------------------------------------------------------

TEST_CASE_FIXTURE(SingleThread, "shuffled_order is a permutation fixed by (seed, epoch)") {
  const auto a = shuffled_order(100, 7, 0);
  CHECK(std::set<std::int64_t>(a.begin(), a.end()).size() == 100);
  CHECK(*std::min_element(a.begin(), a.end()) == 0);
  CHECK(*std::max_element(a.begin(), a.end()) == 99);
  CHECK(a == shuffled_order(100, 7, 0));
  CHECK(a != shuffled_order(100, 7, 1));
  CHECK(a != shuffled_order(100, 8, 0));
  std::vector<std::int64_t> identity(100);
  std::iota(identity.begin(), identity.end(), 0);
  CHECK(a != identity);
  CHECK(shuffled_order(0, 1, 0).empty());
  // Pinned: every trained model of the seed's deliverables (and every checkpoint to resume) was
  // shuffled with this order.
  CHECK(shuffled_order(10, 1, 0) == std::vector<std::int64_t>{7, 6, 5, 9, 8, 0, 1, 2, 3, 4});
  CHECK(shuffled_order(10, 1, 2) == std::vector<std::int64_t>{4, 0, 2, 3, 7, 6, 8, 5, 1, 9});
}

TEST_CASE_FIXTURE(SingleThread, "tensor_source: every sample once per epoch, labels follow images, short last batch") {
  const auto images = torch::arange(10, torch::kFloat32).view({10, 1, 1, 1}).expand({10, 1, 2, 2}).contiguous();
  const auto labels = torch::arange(10, torch::kLong);
  auto source = tensor_source(images, labels);
  CHECK(source.batches_per_epoch(4) == 3);
  auto stream = source.open({0, 4, 1});
  std::vector<std::int64_t> seen, sizes;
  while (auto b = stream()) {
    sizes.push_back(b->images.size(0));
    CHECK(torch::equal(b->images.select(1, 0).select(1, 0).select(1, 0).to(torch::kLong), b->labels));
    for (std::int64_t i = 0; i < b->labels.size(0); ++i) seen.push_back(b->labels[i].item<std::int64_t>());
  }
  CHECK(sizes == std::vector<std::int64_t>{4, 4, 2});
  CHECK(seen == shuffled_order(10, 1, 0));
  auto dropping = tensor_source(images, labels, /*drop_last=*/true);
  CHECK(dropping.batches_per_epoch(4) == 2);
  auto s2 = dropping.open({0, 4, 1});
  int n = 0;
  while (s2()) ++n;
  CHECK(n == 2);
  CHECK_THROWS_AS(tensor_source(images, torch::arange(9, torch::kLong)), shape_error);
}

TEST_CASE_FIXTURE(SingleThread, "loader_source plugs scoreflow::BatchLoader (dataset.hpp) into the trainer") {
  const auto data = synthetic_digits(40, 13);
  const BatchLoader loader(ImageDataset{data.images, data.labels}, {.batch_size = 16, .seed = 4});
  auto source = loader_source(loader);
  CHECK(source.batches_per_epoch(16) == 3);
  const auto epoch = loader.epoch(1);
  const auto yields_epoch = [&](BatchStream stream) {
    for (std::int64_t i = 0; i < epoch.size(); ++i) {
      auto b = stream();
      REQUIRE(b.has_value());
      CHECK(torch::equal(b->images, epoch[i].images));
      CHECK(torch::equal(b->labels, epoch[i].labels));
    }
    CHECK_FALSE(stream().has_value());
  };
  // The stream yields the loader's own batches, in its order (the request's seed is not used).
  yields_epoch(source.open({1, 16, 0}));
  CHECK_THROWS_WITH_AS(source.open({0, 32, 0}), doctest::Contains("batch_size = 32"), invalid_option);
  // One batching path: a loader with the trainer's seed yields tensor_source's batches.
  yields_epoch(tensor_source(data.images, data.labels).open({1, 16, 4}));

  torch::manual_seed(0);
  Trainer trainer(ClassConditionalUNet(UNetOptions{.hidden = 2}), FlowMatching{ClassDropout{}},
                  TrainOptions{.epochs = 2, .batch_size = 16, .lr = 1e-3, .log_every = 1});
  std::optional<std::int64_t> total;
  trainer.fit(source, {.on_progress = [&](const TrainProgress& p) { total = p.total_steps; }});
  CHECK(trainer.state().step == 6);
  CHECK(total == 6);
}

// ---- the trainer --------------------------------------------------------------------------------

TEST_CASE_FIXTURE(SingleThread, "trainer options are validated by name") {
  torch::manual_seed(0);
  UnconditionalUNet net(UNetOptions{.hidden = 2});
  auto make = [&](TrainOptions o) { Trainer t(net, Denoising{}, o); };
  CHECK_THROWS_WITH_AS(make({.epochs = 0}), doctest::Contains("epochs = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.batch_size = 0}), doctest::Contains("batch_size = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.lr = -1.0}), doctest::Contains("lr = -1"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.lr_decay = 1.5}), doctest::Contains("lr_decay = 1.5"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.log_every = 0}), doctest::Contains("log_every = 0"), invalid_option);
  CHECK(seed_lr_decay(10) == doctest::Approx(std::pow(0.1, 0.1)));
}

TEST_CASE_FIXTURE(SingleThread, "callbacks: per-step loss, progress every k steps with images/s and ETA, epoch ends, lr decay") {
  const auto data = synthetic_digits(40, 5);
  torch::manual_seed(0);
  const double gamma = seed_lr_decay(3);
  Trainer trainer(TimeConditionalUNet(UNetOptions{.hidden = 2}), FlowMatching{},
                  TrainOptions{.epochs = 3, .batch_size = 16, .lr = 1e-3, .lr_decay = gamma, .log_every = 2});
  std::vector<std::int64_t> loss_steps, epochs_seen;
  std::vector<TrainProgress> progress;
  std::vector<EpochSummary> ends;
  std::vector<double> lrs_at_end;
  trainer.fit(tensor_source(data.images, data.labels),
              {.on_loss = [&](std::int64_t step, std::int64_t epoch, double) {
                 loss_steps.push_back(step);
                 epochs_seen.push_back(epoch);
               },
               .on_progress = [&](const TrainProgress& p) { progress.push_back(p); },
               .on_epoch_end = [&](const EpochSummary& s) {
                 ends.push_back(s);
                 lrs_at_end.push_back(trainer.current_lr());
               }});
  // 40 images, batches of 16: 3 batches per epoch, 9 steps.
  REQUIRE(loss_steps.size() == 9);
  CHECK(loss_steps.front() == 1);
  CHECK(loss_steps.back() == 9);
  CHECK(epochs_seen == std::vector<std::int64_t>{0, 0, 0, 1, 1, 1, 2, 2, 2});
  REQUIRE(progress.size() == 4);  // steps 2, 4, 6, 8
  CHECK(progress[0].step == 2);
  CHECK(progress[3].step == 8);
  CHECK(progress[0].total_steps == 9);
  CHECK(progress[0].images_per_second > 0.0);
  REQUIRE(progress[3].eta_seconds.has_value());
  CHECK(*progress[3].eta_seconds >= 0.0);
  CHECK(progress[3].epoch == 2);
  CHECK(progress[3].lr == doctest::Approx(1e-3 * gamma * gamma));
  REQUIRE(ends.size() == 3);
  CHECK(ends[0].epoch == 1);
  CHECK(ends[2].epoch == 3);
  CHECK(ends[2].step == 9);
  CHECK(std::isfinite(ends[1].mean_loss));
  CHECK(lrs_at_end[0] == doctest::Approx(1e-3));
  CHECK(lrs_at_end[1] == doctest::Approx(1e-3 * gamma));
  CHECK(trainer.state().epoch == 3);
  CHECK(trainer.state().step == 9);
  // A finished run does nothing more.
  trainer.fit(tensor_source(data.images, data.labels));
  CHECK(trainer.state().step == 9);
}

TEST_CASE_FIXTURE(SingleThread, "training is deterministic for a seed; another seed gives another run") {
  const auto data = synthetic_digits(48, 6);
  auto run = [&](std::uint64_t seed) {
    torch::manual_seed(42);
    ClassConditionalUNet net(UNetOptions{.hidden = 2});
    Trainer trainer(net, FlowMatching{ClassDropout{}}, TrainOptions{.epochs = 2, .batch_size = 16, .lr = 1e-3, .seed = seed});
    trainer.fit(tensor_source(data.images, data.labels));
    return net;
  };
  auto a = run(1), b = run(1), c = run(2);
  CHECK(same_weights(*a, *b));
  CHECK_FALSE(same_weights(*a, *c));
}

TEST_CASE_FIXTURE(SingleThread, "a NaN loss stops training with the step named") {
  auto data = synthetic_digits(8, 7);
  data.images[3].fill_(std::nan(""));
  torch::manual_seed(0);
  Trainer trainer(UnconditionalUNet(UNetOptions{.hidden = 2}), Denoising{}, TrainOptions{.batch_size = 8});
  CHECK_THROWS_WITH_AS(trainer.fit(tensor_source(data.images, data.labels)), doctest::Contains("step 1"),
                       non_finite_error);
}

// ---- checkpoints ----------------------------------------------------------------------------------

TEST_CASE_FIXTURE(SingleThread, "resume is bit-exact: N steps at once = N/2, checkpoint, fresh objects, N/2 more (mid-epoch, across an epoch and lr decay)") {
  const auto data = synthetic_digits(50, 8);  // batches of 16: 4 per epoch (16, 16, 16, 2)
  const auto dir = temp_dir("resume");
  const TrainOptions options{.epochs = 3, .batch_size = 16, .lr = 2e-3, .lr_decay = 0.5, .seed = 11};
  auto fresh_net = [](std::int64_t init_seed) {
    torch::manual_seed(init_seed);
    return ClassConditionalUNet(UNetOptions{.hidden = 4});
  };
  std::vector<double> mean_losses_once, mean_losses_resumed;
  auto record = [](std::vector<double>& into) {
    return TrainCallbacks{.on_epoch_end = [&into](const EpochSummary& s) { into.push_back(s.mean_loss); }};
  };

  auto once = fresh_net(1);
  TrainOptions o_once = options;
  o_once.max_steps = 10;
  Trainer t_once(once, FlowMatching{ClassDropout{}}, o_once);
  t_once.fit(tensor_source(data.images, data.labels), record(mean_losses_once));
  CHECK(t_once.state().step == 10);

  {
    auto first = fresh_net(1);
    TrainOptions o = options;
    o.max_steps = 5;  // stops inside epoch 1 (second epoch)
    Trainer t(first, FlowMatching{ClassDropout{}}, o);
    t.fit(tensor_source(data.images, data.labels), record(mean_losses_resumed));
    CHECK(t.state().step == 5);
    CHECK(t.state().epoch == 1);
    CHECK(t.state().batch_in_epoch == 1);
    t.save_checkpoint(dir / "half.pt");
    CHECK_FALSE(fs::exists(dir / "half.pt.tmp"));
  }
  auto second = fresh_net(99);  // different initial weights: everything must come from the file
  TrainOptions o = options;
  o.max_steps = 10;
  Trainer t2(second, FlowMatching{ClassDropout{}}, o);
  t2.load_checkpoint(dir / "half.pt");
  CHECK(t2.state().step == 5);
  CHECK(t2.current_lr() == doctest::Approx(2e-3 * 0.5));
  t2.fit(tensor_source(data.images, data.labels), record(mean_losses_resumed));
  CHECK(t2.state().step == 10);
  CHECK(same_weights(*once, *second));
  // The epoch that straddled the checkpoint reports the same mean loss.
  REQUIRE(mean_losses_once.size() == 2);
  CHECK(mean_losses_resumed == mean_losses_once);
  fs::remove_all(dir);
}

TEST_CASE_FIXTURE(SingleThread, "automatic checkpoints: written at epoch ends and on stop; resume() picks them up") {
  const auto data = synthetic_digits(32, 9);
  const auto dir = temp_dir("auto");
  const TrainOptions options{.epochs = 2, .batch_size = 16, .lr = 1e-3, .seed = 3, .checkpoint_dir = dir};
  torch::manual_seed(5);
  TimeConditionalUNet once(UNetOptions{.hidden = 2});
  {
    TrainOptions o = options;
    o.checkpoint_dir.clear();
    Trainer t(once, FlowMatching{}, o);
    t.fit(tensor_source(data.images, data.labels));
  }
  torch::manual_seed(5);
  TimeConditionalUNet split(UNetOptions{.hidden = 2});
  {
    TrainOptions o = options;
    o.max_steps = 3;
    Trainer t(split, FlowMatching{}, o);
    CHECK_FALSE(t.resume());  // nothing there yet
    t.fit(tensor_source(data.images, data.labels));
    CHECK(fs::exists(t.checkpoint_path()));
  }
  torch::manual_seed(77);
  TimeConditionalUNet resumed(UNetOptions{.hidden = 2});
  Trainer t(resumed, FlowMatching{}, options);
  CHECK(t.resume());
  CHECK(t.state().step == 3);
  t.fit(tensor_source(data.images, data.labels));
  CHECK(t.state().epoch == 2);
  CHECK(same_weights(*once, *resumed));
  fs::remove_all(dir);
}

TEST_CASE_FIXTURE(SingleThread, "a crash mid-run loses at most checkpoint_every steps; the resumed run equals the uninterrupted one") {
  const auto data = synthetic_digits(48, 14);
  const auto dir = temp_dir("crash");
  const TrainOptions options{.epochs = 2, .batch_size = 16, .lr = 1e-3, .seed = 8, .checkpoint_dir = dir,
                             .checkpoint_every = 2};
  torch::manual_seed(3);
  UnconditionalUNet once(UNetOptions{.hidden = 2});
  {
    TrainOptions o = options;
    o.checkpoint_dir.clear();
    Trainer(once, Denoising{}, o).fit(tensor_source(data.images, data.labels));
  }
  struct Crash {};
  torch::manual_seed(3);
  {
    Trainer t(UnconditionalUNet(UNetOptions{.hidden = 2}), Denoising{}, options);
    CHECK_THROWS_AS(t.fit(tensor_source(data.images, data.labels),
                          {.on_loss = [](std::int64_t step, std::int64_t, double) {
                            if (step == 5) throw Crash{};
                          }}),
                    Crash);
  }
  torch::manual_seed(4);
  UnconditionalUNet resumed(UNetOptions{.hidden = 2});
  Trainer t(resumed, Denoising{}, options);
  REQUIRE(t.resume());
  CHECK(t.state().step == 4);  // the checkpoint of step 4; step 5 was lost
  CHECK(t.state().epoch == 1);
  CHECK(t.state().batch_in_epoch == 1);
  t.fit(tensor_source(data.images, data.labels));
  CHECK(t.state().step == 6);
  CHECK(same_weights(*once, *resumed));
  fs::remove_all(dir);
}

TEST_CASE_FIXTURE(SingleThread, "a checkpoint of another configuration fails, naming the parameter") {
  const auto dir = temp_dir("mismatch");
  const auto data = synthetic_digits(16, 1);
  torch::manual_seed(0);
  Trainer small(ClassConditionalUNet(UNetOptions{.hidden = 4}), FlowMatching{ClassDropout{}},
                TrainOptions{.batch_size = 16});
  small.fit(tensor_source(data.images, data.labels));
  small.save_checkpoint(dir / "d4.pt");

  SUBCASE("another hidden size") {
    ClassConditionalUNet big(UNetOptions{.hidden = 8});
    const auto before = big->backbone->in_block->conv1->conv->weight.clone();
    Trainer t(big, FlowMatching{ClassDropout{}}, TrainOptions{.batch_size = 16});
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "d4.pt"),
                         doctest::Contains("parameter 'backbone.in_block.conv1.conv.weight' has shape [4, 1, 3, 3]"),
                         checkpoint_error);
    CHECK(torch::equal(big->backbone->in_block->conv1->conv->weight, before));  // untouched
    CHECK(t.state().step == 0);
  }
  SUBCASE("a model without the class blocks") {
    Trainer t(TimeConditionalUNet(UNetOptions{.hidden = 4}), FlowMatching{}, TrainOptions{.batch_size = 16});
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "d4.pt"), doctest::Contains("entry 'fc1_c'"), checkpoint_error);
  }
  SUBCASE("a model with more blocks than the file") {
    Trainer tt(TimeConditionalUNet(UNetOptions{.hidden = 4}), FlowMatching{}, TrainOptions{.batch_size = 16});
    tt.save_checkpoint(dir / "time.pt");
    CHECK_THROWS_WITH_AS(small.load_checkpoint(dir / "time.pt"), doctest::Contains("submodule 'fc1_c'"),
                         checkpoint_error);
  }
  SUBCASE("another seed") {
    Trainer t(ClassConditionalUNet(UNetOptions{.hidden = 4}), FlowMatching{ClassDropout{}},
              TrainOptions{.batch_size = 16, .seed = 5});
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "d4.pt"), doctest::Contains("seed = 0, but options.seed = 5"),
                         checkpoint_error);
  }
  fs::remove_all(dir);
}

TEST_CASE_FIXTURE(SingleThread, "load_checkpoint (the one way in) restores everything, and checks the seed when asked") {
  const auto dir = temp_dir("free");
  const auto data = synthetic_digits(32, 2);
  torch::manual_seed(0);
  TimeConditionalUNet net(UNetOptions{.hidden = 2});
  Trainer t(net, FlowMatching{}, TrainOptions{.epochs = 2, .batch_size = 16, .lr = 1e-3, .seed = 6, .max_steps = 3});
  t.fit(tensor_source(data.images, data.labels));
  t.save_checkpoint(dir / "c.pt");

  torch::manual_seed(1);
  TimeConditionalUNet other(UNetOptions{.hidden = 2});
  torch::optim::Adam adam(other->parameters());
  TrainingState state;
  TrainingRng rng(0);
  CHECK_THROWS_WITH_AS(load_checkpoint(dir / "c.pt", *other, adam, state, rng, std::uint64_t{7}),
                       doctest::Contains("seed = 6, but options.seed = 7"), checkpoint_error);
  CHECK_FALSE(same_weights(*net, *other));  // a refused checkpoint leaves the model as it was
  load_checkpoint(dir / "c.pt", *other, adam, state, rng, std::uint64_t{6});
  CHECK(same_weights(*net, *other));
  CHECK(state.step == 3);
  CHECK(state.epoch == 1);
  CHECK(state.batch_in_epoch == 1);
  CHECK(state.seed == 6);
  state = {};
  load_checkpoint(dir / "c.pt", *other, adam, state, rng);  // no seed expected: any run's
  CHECK(state.seed == 6);
  fs::remove_all(dir);
}

TEST_CASE("the former names DDPMNoise and TrainingBatch still compile, as deprecated aliases") {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  static_assert(std::is_same_v<DDPMNoise<NoClass>, DiffusionObjective<NoClass>>);
  static_assert(std::is_same_v<DDPMNoise<>, DiffusionObjective<ClassDropout>>);
  static_assert(std::is_same_v<TrainingBatch, scoreflow::Batch>);
#pragma GCC diagnostic pop
  // One batch type from the data layer to the objectives.
  CHECK(std::is_same_v<decltype(std::declval<BatchStream&>()()), std::optional<scoreflow::Batch>>);
}

TEST_CASE_FIXTURE(SingleThread, "unreadable files give checkpoint_error naming the file") {
  const auto dir = temp_dir("bad");
  torch::manual_seed(0);
  Trainer t(UnconditionalUNet(UNetOptions{.hidden = 2}), Denoising{}, TrainOptions{});
  t.save_checkpoint(dir / "good.pt");
  const auto size = fs::file_size(dir / "good.pt");

  SUBCASE("truncated") {
    fs::copy_file(dir / "good.pt", dir / "cut.pt");
    fs::resize_file(dir / "cut.pt", size / 2);
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "cut.pt"), doctest::Contains("cut.pt"), checkpoint_error);
  }
  SUBCASE("not an archive") {
    std::ofstream(dir / "text.pt") << "hello, not a checkpoint";
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "text.pt"), doctest::Contains("text.pt"), checkpoint_error);
  }
  SUBCASE("a torch archive of something else") {
    torch::save(torch::ones({3}), (dir / "tensor.pt").string());
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "tensor.pt"), doctest::Contains("not a scoreflow checkpoint"),
                         checkpoint_error);
  }
  SUBCASE("missing") {
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "nope.pt"), doctest::Contains("nope.pt' does not exist"),
                         checkpoint_error);
  }
  SUBCASE("weights are not a training checkpoint") {
    save_weights(dir / "weights.pt", *t.net());
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "weights.pt"), doctest::Contains("weights only"), checkpoint_error);
  }
  SUBCASE("cannot write") {
    CHECK_THROWS_AS(t.save_checkpoint(dir / "good.pt" / "inside.pt"), checkpoint_error);
  }
  // checkpoint_error is a std::runtime_error.
  CHECK_THROWS_AS(load_weights(dir / "nope.pt", *t.net()), std::runtime_error);
  fs::remove_all(dir);
}

TEST_CASE_FIXTURE(SingleThread, "weights round-trip; load_weights also reads a checkpoint's model") {
  const auto dir = temp_dir("weights");
  const auto data = synthetic_digits(32, 12);
  torch::manual_seed(1);
  TimeConditionalUNet net(UNetOptions{.hidden = 4});
  Trainer t(net, FlowMatching{}, TrainOptions{.batch_size = 16, .lr = 1e-3});
  t.fit(tensor_source(data.images, data.labels));
  save_weights(dir / "w.pt", *net);
  t.save_checkpoint(dir / "c.pt");
  for (const char* file : {"w.pt", "c.pt"}) {
    torch::manual_seed(2);
    TimeConditionalUNet other(UNetOptions{.hidden = 4});
    CHECK_FALSE(same_weights(*net, *other));
    load_weights(dir / file, *other);
    CHECK(same_weights(*net, *other));
  }
  ClassConditionalUNet wrong(UNetOptions{.hidden = 4});
  CHECK_THROWS_WITH_AS(load_weights(dir / "w.pt", *wrong), doctest::Contains("fc1_c"), checkpoint_error);
  fs::remove_all(dir);
}

TEST_CASE_FIXTURE(SingleThread, "load_sampling_weights: a checkpoint with an EMA gives the average, one without gives the weights") {
  const auto dir = temp_dir("sampling_weights");
  const auto data = synthetic_digits(32, 13);
  torch::manual_seed(1);
  TimeConditionalUNet net(UNetOptions{.hidden = 4});
  Trainer t(net, FlowMatching{}, TrainOptions{.batch_size = 16, .lr = 1e-3, .ema = EmaOptions{.decay = 0.9}});
  t.fit(tensor_source(data.images, data.labels));
  t.save_checkpoint(dir / "ema.pt");
  torch::manual_seed(3);
  TimeConditionalUNet averaged(UNetOptions{.hidden = 4});
  t.copy_ema_to(*averaged);
  REQUIRE_FALSE(same_weights(*net, *averaged));  // the average differs from the last iterate
  torch::manual_seed(2);
  TimeConditionalUNet other(UNetOptions{.hidden = 4});
  CHECK(load_sampling_weights(dir / "ema.pt", *other));
  CHECK(same_weights(*averaged, *other));
  Trainer plain(net, FlowMatching{}, TrainOptions{.batch_size = 16, .lr = 1e-3});
  plain.save_checkpoint(dir / "plain.pt");
  save_weights(dir / "w.pt", *net);
  for (const char* file : {"plain.pt", "w.pt"}) {
    CHECK_FALSE(load_sampling_weights(dir / file, *other));
    CHECK(same_weights(*net, *other));
  }
  ClassConditionalUNet wrong(UNetOptions{.hidden = 4});
  CHECK_THROWS_WITH_AS(load_sampling_weights(dir / "ema.pt", *wrong), doctest::Contains("fc1_c"), checkpoint_error);
  fs::remove_all(dir);
}
}  // namespace test_training
