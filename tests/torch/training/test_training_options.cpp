// The trainer's options beyond the seed (issue 15): EMA of the weights (constant decay with
// warm-up, EDM2's power function), AdamW, gradient clipping, the per-step lr schedule — their
// formulas on a tiny net with hand-computed values, bit-exact resume with every option on, the
// checkpoint rules, and every validation error.
#include <doctest/doctest.h>

#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <vector>

#include "torch/model_helpers.hpp"
#include "torch/scratch_dir.hpp"
#include "scoreflow/torch.hpp"

namespace test_training_options {

using namespace scoreflow;
using namespace scoreflow::models;
using namespace scoreflow::training;
using sftest::SingleThread;
namespace fs = std::filesystem;

namespace {

/// Four weights and a counter buffer (as BatchNorm's num_batches_tracked): forward() counts its calls.
struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    w = register_parameter("w", torch::tensor({1.0f, -2.0f, 0.5f, 3.0f}));
    calls = register_buffer("calls", torch::zeros({1}, torch::kLong));
  }
  torch::Tensor forward() {
    calls.add_(1);
    return w;
  }
  torch::Tensor w, calls;
};
TORCH_MODULE(Tiny);

/// loss = ½ Σ cᵢ wᵢ² with c = (1, 2, 3, 4): the gradient is c ⊙ w, (1, −4, 1.5, 12) at the start.
struct Quadratic {
  template <class Net>
  torch::Tensor operator()(Net& net, const Batch& b, TrainingRng&) const {
    const auto c = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f});
    return 0.5 * (c * net->forward().square()).sum() + 0.0 * b.images.mean();
  }
};

/// loss = Σ √w at w = 0: finite loss (0), infinite gradient.
struct SqrtAtZero {
  template <class Net>
  torch::Tensor operator()(Net& net, const Batch&, TrainingRng&) const {
    return torch::sqrt(net->forward()).sum();
  }
};

DataSource zeros_source(std::int64_t n) { return tensor_source(torch::zeros({n, 1, 2, 2})); }

std::vector<double> values(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous().view({-1});
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

void check_values(const torch::Tensor& t, const std::vector<double>& expected, double eps = 1e-6) {
  const auto v = values(t);
  REQUIRE(v.size() == expected.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    CAPTURE(i);
    CHECK(v[i] == doctest::Approx(expected[i]).epsilon(eps));
  }
}

void set_w(Tiny& net, std::vector<float> w) {
  torch::NoGradGuard g;
  net->w.copy_(torch::tensor(w));
}

fs::path temp_dir(const std::string& name) { return sftest::scratch_dir("options", name); }

bool equal_dicts(const torch::OrderedDict<std::string, torch::Tensor>& a,
                 const torch::OrderedDict<std::string, torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].key() != b[i].key() || !torch::equal(a[i].value(), b[i].value())) return false;
  return true;
}

bool same_weights(const torch::nn::Module& a, const torch::nn::Module& b) {
  return equal_dicts(a.named_parameters(), b.named_parameters()) && equal_dicts(a.named_buffers(), b.named_buffers());
}

/// Synthetic 28×28 images and labels (noise: the resume tests need batches, not digits).
struct Data {
  torch::Tensor images, labels;
};
Data noise_images(std::int64_t n, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return {torch::rand({n, 1, 28, 28}, gen), torch::randint(10, {n}, gen, torch::kLong)};
}

}  // namespace

// ---- EMA: formulas ------------------------------------------------------------------------------

TEST_CASE_FIXTURE(SingleThread, "EMA with warm-up: β = min(decay, (1 + n)/(10 + n)); hand values after 1, 2, 3 updates; buffers copied") {
  Tiny net;
  ExponentialMovingAverage ema(*net, EmaOptions{.decay = 0.2, .warmup = true});
  CHECK(ema.beta(0) == doctest::Approx(0.1));        // 1/10
  CHECK(ema.beta(1) == doctest::Approx(2.0 / 11.0));  // 2/11 < 0.2
  CHECK(ema.beta(2) == doctest::Approx(0.2));         // min(0.2, 3/12)
  CHECK(ema.updates() == 0);
  check_values(ema.parameters()["w"], {1.0, -2.0, 0.5, 3.0});  // starts at the net's weights
  // θ₁ = 2: 0.1·θ̂₀ + 0.9·2
  set_w(net, {2, 2, 2, 2});
  net->forward();  // calls = 1
  ema.update(*net);
  check_values(ema.parameters()["w"], {1.9, 1.6, 1.85, 2.1});
  CHECK(ema.buffers()["calls"].item<std::int64_t>() == 1);
  // θ₂ = 0: (2/11)·θ̂₁
  set_w(net, {0, 0, 0, 0});
  net->forward();
  ema.update(*net);
  check_values(ema.parameters()["w"], {0.3454545455, 0.2909090909, 0.3363636364, 0.3818181818});
  // θ₃ = 1: 0.2·θ̂₂ + 0.8
  set_w(net, {1, 1, 1, 1});
  net->forward();
  ema.update(*net);
  check_values(ema.parameters()["w"], {0.8690909091, 0.8581818182, 0.8672727273, 0.8763636364});
  CHECK(ema.updates() == 3);
  CHECK(ema.buffers()["calls"].item<std::int64_t>() == 3);  // copied, not averaged
  CHECK_FALSE(ema.gamma().has_value());
}

TEST_CASE_FIXTURE(SingleThread, "EMA without warm-up: β = decay from the first update") {
  Tiny net;
  ExponentialMovingAverage ema(*net, EmaOptions{.decay = 0.2, .warmup = false});
  for (std::int64_t n : {0, 1, 2, 1000}) CHECK(ema.beta(n) == 0.2);
  set_w(net, {2, 2, 2, 2});
  ema.update(*net);
  check_values(ema.parameters()["w"], {1.8, 1.2, 1.7, 2.2});
  set_w(net, {0, 0, 0, 0});
  ema.update(*net);
  check_values(ema.parameters()["w"], {0.36, 0.24, 0.34, 0.44});
  set_w(net, {1, 1, 1, 1});
  ema.update(*net);
  check_values(ema.parameters()["w"], {0.872, 0.848, 0.868, 0.888});
}

TEST_CASE_FIXTURE(SingleThread, "power-function EMA (EDM2): γ from σ_rel, β_t = (1 − 1/t)^(γ+1), hand values") {
  // EDM2 Sec. 3.1: σ_rel = 0.05 ↔ γ = 16.97, σ_rel = 0.10 ↔ γ = 6.94.
  CHECK(power_ema_gamma(0.05) == doctest::Approx(16.97).epsilon(3e-4));
  CHECK(power_ema_gamma(0.10) == doctest::Approx(6.94).epsilon(5e-4));
  for (double s : {0.01, 0.05, 0.1, 0.2, 0.29, power_ema_max_sigma_rel()}) {
    CAPTURE(s);
    const double g = power_ema_gamma(s);
    CHECK(power_ema_sigma_rel(g) == doctest::Approx(s).epsilon(1e-12));
    CHECK(g >= power_ema_peak_gamma() - 1e-12);  // the largest root of the cubic
    // The cubic of EDM2 Alg. 2: γ³ + 7γ² + (16 − σ⁻²)γ + (12 − σ⁻²) = 0.
    const double k = 1.0 / (s * s);
    CHECK(g * g * g + 7 * g * g + (16 - k) * g + (12 - k) == doctest::Approx(0.0).epsilon(1e-9).scale(k));
  }
  CHECK(power_ema_gamma(0.3) == doctest::Approx(-1.0 / 3.0));  // σ_rel(−1/3) = 0.3 exactly
  CHECK(power_ema_max_sigma_rel() == doctest::Approx(0.3002831060));

  Tiny net;
  ExponentialMovingAverage ema(*net, EmaOptions{.sigma_rel = 0.10});
  const double gamma = *ema.gamma();
  CHECK(gamma == doctest::Approx(6.9372039376));
  CHECK(ema.beta(0) == 0.0);  // t = 1: the initial weights get no weight
  CHECK(ema.beta(1) == doctest::Approx(0.0040800317));  // (1/2)^7.937
  CHECK(ema.beta(2) == doctest::Approx(0.0400246705));  // (2/3)^7.937
  CHECK(ema.beta(99) == doctest::Approx(std::pow(0.99, gamma + 1)));
  set_w(net, {2, 2, 2, 2});
  ema.update(*net);
  check_values(ema.parameters()["w"], {2, 2, 2, 2});  // = θ₁, whatever θ̂₀ was
  set_w(net, {0, 0, 0, 0});
  ema.update(*net);
  check_values(ema.parameters()["w"], std::vector<double>(4, 2 * 0.0040800317));
  set_w(net, {1, 1, 1, 1});
  ema.update(*net);
  check_values(ema.parameters()["w"], std::vector<double>(4, 0.0400246705 * 2 * 0.0040800317 + (1 - 0.0400246705)));
}

TEST_CASE_FIXTURE(SingleThread, "the trainer's EMA updates after every optimizer step, from the initial weights") {
  Tiny net;
  std::vector<torch::Tensor> seen{net->w.detach().clone()};
  Trainer trainer(net, Quadratic{}, TrainOptions{.epochs = 5, .batch_size = 4, .lr = 0.1,
                                                 .ema = EmaOptions{.decay = 0.5, .warmup = false}});
  trainer.fit(zeros_source(4), {.on_loss = [&](std::int64_t, std::int64_t, double) {
                seen.push_back(net->w.detach().clone());
              }});
  REQUIRE(seen.size() == 6);
  auto expected = seen[0].to(torch::kFloat64);
  for (std::size_t k = 1; k < seen.size(); ++k) expected = 0.5 * expected + 0.5 * seen[k].to(torch::kFloat64);
  CHECK(trainer.ema().updates() == 5);
  CHECK(torch::allclose(trainer.ema().parameters()["w"].to(torch::kFloat64), expected, 1e-6, 1e-7));
  CHECK_FALSE(torch::allclose(trainer.ema().parameters()["w"], net->w));  // it lags the weights
  CHECK(torch::equal(trainer.ema().buffers()["calls"], net->calls));
  CHECK(net->calls.item<std::int64_t>() == 5);
}

// ---- EMA: checkpoints and use -------------------------------------------------------------------

TEST_CASE_FIXTURE(SingleThread, "resume with the new options is bit-exact: N steps = N/2, checkpoint, fresh trainer, N/2 (weights and EMA)") {
  const auto data = noise_images(50, 21);  // batches of 16: 4 per epoch, 12 planned steps in 3 epochs
  const auto dir = temp_dir("resume");
  TrainOptions options{.epochs = 3, .batch_size = 16, .lr = 2e-3, .seed = 5};
  SUBCASE("Adam, per-epoch decay, EMA with warm-up") {
    options.lr_decay = 0.5;
    options.ema = EmaOptions{.decay = 0.9};
  }
  SUBCASE("AdamW, clipping, warm-up + cosine, power-function EMA") {
    options.optimizer = OptimizerKind::adamw;
    options.betas = {0.8, 0.95};
    options.weight_decay = 0.05;
    options.clip_grad_norm = 0.5;
    options.lr_schedule = LrSchedule{.warmup_steps = 3, .cosine = true, .min_lr = 1e-4};
    options.ema = EmaOptions{.sigma_rel = 0.1};
  }
  auto fresh_net = [](std::int64_t init_seed) {
    torch::manual_seed(init_seed);
    return ClassConditionalUNet(UNetOptions{.hidden = 4});
  };
  auto source = tensor_source(data.images, data.labels);
  auto once = fresh_net(1);
  TrainOptions o_once = options;
  o_once.max_steps = 10;
  Trainer t_once(once, FlowMatching{ClassDropout{}}, o_once);
  std::vector<double> lrs_once, lrs_resumed;
  auto record = [](std::vector<double>& into, auto& trainer) {
    return TrainCallbacks{.on_loss = [&into, &trainer](std::int64_t, std::int64_t, double) {
      into.push_back(trainer.current_lr());
    }};
  };
  t_once.fit(source, record(lrs_once, t_once));
  {
    TrainOptions o = options;
    o.max_steps = 5;  // inside epoch 1
    Trainer t(fresh_net(1), FlowMatching{ClassDropout{}}, o);
    t.fit(source, record(lrs_resumed, t));
    CHECK(t.lr_horizon() == 12);  // epochs × batches, not max_steps: the same curve as the whole run
    t.save_checkpoint(dir / "half.pt");
  }
  auto second = fresh_net(99);  // other initial weights: everything must come from the file
  TrainOptions o = options;
  o.max_steps = 10;
  Trainer t2(second, FlowMatching{ClassDropout{}}, o);
  t2.load_checkpoint(dir / "half.pt");
  CHECK(t2.ema().updates() == 5);
  t2.fit(source, record(lrs_resumed, t2));
  CHECK(t2.state().step == 10);
  CHECK(same_weights(*once, *second));
  CHECK(t2.ema().updates() == t_once.ema().updates());
  CHECK(equal_dicts(t2.ema().parameters(), t_once.ema().parameters()));
  CHECK(equal_dicts(t2.ema().buffers(), t_once.ema().buffers()));
  CHECK(lrs_resumed == lrs_once);  // the same rate at every step, also across the split
  CHECK_FALSE(equal_dicts(t_once.ema().parameters(), once->named_parameters()));
  fs::remove_all(dir);
}

TEST_CASE_FIXTURE(SingleThread, "checkpoint rules: no EMA in the file, other EMA options, EMA ignored without one, Adam vs AdamW") {
  const auto dir = temp_dir("rules");
  const auto data = noise_images(16, 2);
  const auto source = tensor_source(data.images, data.labels);
  auto net = [] {
    torch::manual_seed(0);
    return TimeConditionalUNet(UNetOptions{.hidden = 2});
  };
  const TrainOptions plain{.batch_size = 16, .lr = 1e-3};
  TrainOptions with_ema = plain;
  with_ema.ema = EmaOptions{.decay = 0.9};
  {
    Trainer a(net(), FlowMatching{}, plain);
    a.fit(source);
    a.save_checkpoint(dir / "plain.pt");
    Trainer b(net(), FlowMatching{}, with_ema);
    b.fit(source);
    b.save_checkpoint(dir / "ema.pt");
  }
  SUBCASE("a checkpoint without EMA into a run with one: an error, the trainer untouched") {
    Trainer t(net(), FlowMatching{}, with_ema);
    const auto before = t.net()->named_parameters()[0].value().clone();
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "plain.pt"), doctest::Contains("holds no EMA of the weights"),
                         checkpoint_error);
    CHECK(torch::equal(t.net()->named_parameters()[0].value(), before));
    CHECK(t.ema().updates() == 0);
    CHECK(t.state().step == 0);
  }
  SUBCASE("an EMA of other options") {
    TrainOptions o = with_ema;
    o.ema->decay = 0.99;
    Trainer t(net(), FlowMatching{}, o);
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "ema.pt"),
                         doctest::Contains("keeps an EMA with decay = 0.9, warmup = true, but options.ema asks for an "
                                           "EMA with decay = 0.99"),
                         checkpoint_error);
    o.ema = EmaOptions{.sigma_rel = 0.1};
    Trainer p(net(), FlowMatching{}, o);
    CHECK_THROWS_WITH_AS(p.load_checkpoint(dir / "ema.pt"), doctest::Contains("asks for a power-function EMA with sigma_rel = 0.1"),
                         checkpoint_error);
  }
  SUBCASE("a checkpoint with EMA into a run without: loads, the EMA is dropped") {
    Trainer t(net(), FlowMatching{}, plain);
    t.load_checkpoint(dir / "ema.pt");
    CHECK(t.state().step == 1);
    CHECK_FALSE(t.has_ema());
    CHECK_THROWS_WITH_AS((void)t.ema(), doctest::Contains("options.ema is not set"), invalid_option);
  }
  SUBCASE("an Adam checkpoint into an AdamW run, and back") {
    TrainOptions o = plain;
    o.optimizer = OptimizerKind::adamw;
    Trainer t(net(), FlowMatching{}, o);
    CHECK_THROWS_WITH_AS(t.load_checkpoint(dir / "plain.pt"),
                         doctest::Contains("was written by Adam, but this run's optimizer is AdamW"), checkpoint_error);
    t.fit(source);
    t.save_checkpoint(dir / "adamw.pt");
    Trainer a(net(), FlowMatching{}, plain);
    CHECK_THROWS_WITH_AS(a.load_checkpoint(dir / "adamw.pt"), doctest::Contains("written by AdamW"), checkpoint_error);
    Trainer w(net(), FlowMatching{}, o);
    w.load_checkpoint(dir / "adamw.pt");
    CHECK(w.state().step == 1);
  }
  fs::remove_all(dir);
}

TEST_CASE_FIXTURE(SingleThread, "the averaged weights for sampling: save_ema_weights → load_weights, copy_ema_to, with_ema_weights") {
  const auto dir = temp_dir("use");
  const auto data = noise_images(32, 3);
  torch::manual_seed(4);
  TimeConditionalUNet net(UNetOptions{.hidden = 2});
  Trainer t(net, FlowMatching{}, TrainOptions{.epochs = 2, .batch_size = 16, .lr = 1e-2, .ema = EmaOptions{.decay = 0.5}});
  t.fit(tensor_source(data.images, data.labels));
  const auto& ema = t.ema();
  CHECK(ema.updates() == 4);
  const auto live = net->named_parameters();
  std::vector<torch::Tensor> live_copy;
  for (const auto& p : live) live_copy.push_back(p.value().clone());

  t.save_ema_weights(dir / "ema_weights.pt");
  torch::manual_seed(9);
  TimeConditionalUNet loaded(UNetOptions{.hidden = 2});
  load_weights(dir / "ema_weights.pt", *loaded);
  CHECK(equal_dicts(loaded->named_parameters(), ema.parameters()));
  CHECK(equal_dicts(loaded->named_buffers(), ema.buffers()));
  CHECK(equal_dicts(loaded->named_buffers(), net->named_buffers()));  // the buffers are the live ones

  torch::manual_seed(10);
  TimeConditionalUNet copied(UNetOptions{.hidden = 2});
  t.copy_ema_to(*copied);
  CHECK(same_weights(*copied, *loaded));

  net->train();
  const double sum = t.with_ema_weights([&](TimeConditionalUNet& inside) {
    CHECK(equal_dicts(inside->named_parameters(), ema.parameters()));
    inside->eval();
    return inside->named_parameters()[0].value().sum().item<double>();
  });
  CHECK(sum == doctest::Approx(ema.parameters()[0].value().sum().item<double>()));
  for (std::size_t i = 0; i < live_copy.size(); ++i) CHECK(torch::equal(net->named_parameters()[i].value(), live_copy[i]));
  CHECK(net->is_training());  // the mode comes back too
  struct Thrown {};
  CHECK_THROWS_AS(t.with_ema_weights([](TimeConditionalUNet&) -> int { throw Thrown{}; }), Thrown);
  for (std::size_t i = 0; i < live_copy.size(); ++i) CHECK(torch::equal(net->named_parameters()[i].value(), live_copy[i]));

  ClassConditionalUNet other(UNetOptions{.hidden = 2});
  CHECK_THROWS_AS(t.copy_ema_to(*other), shape_error);
  fs::remove_all(dir);
}

// ---- AdamW and clipping -------------------------------------------------------------------------

TEST_CASE_FIXTURE(SingleThread, "AdamW: one step is θ(1 − lr·λ) − lr·g/(|g| + ε); it differs from Adam when λ > 0") {
  // At the first step Adam's bias-corrected moments are m̂ = g and v̂ = g², so the Adam step is
  // lr·g/(|g| + ε) = lr·sign(g); AdamW first shrinks θ by 1 − lr·λ (Loshchilov & Hutter 2019, Alg. 2).
  const double lr = 0.1, lambda = 0.5;
  auto one_step = [&](OptimizerKind kind, double wd) {
    Tiny net;
    Trainer t(net, Quadratic{}, TrainOptions{.batch_size = 4, .lr = lr, .optimizer = kind, .weight_decay = wd});
    auto b = zeros_source(4).open({0, 4, 0})();
    t.train_step(*b);
    check_values(net->w.grad(), {1.0, -4.0, 1.5, 12.0});  // g = c ⊙ θ₀, still there after the step
    return net->w.detach().clone();
  };
  const auto adamw = one_step(OptimizerKind::adamw, lambda);
  check_values(adamw, {1.0 * 0.95 - 0.1, -2.0 * 0.95 + 0.1, 0.5 * 0.95 - 0.1, 3.0 * 0.95 - 0.1});
  const auto adam = one_step(OptimizerKind::adam, 0.0);
  check_values(adam, {0.9, -1.9, 0.4, 2.9});
  CHECK_FALSE(torch::allclose(adam, adamw));
  CHECK(torch::allclose(one_step(OptimizerKind::adamw, 0.0), adam, 0.0, 1e-7));  // λ = 0: Adam

  Tiny net;
  Trainer t(net, Quadratic{}, TrainOptions{.lr = lr, .optimizer = OptimizerKind::adamw, .weight_decay = lambda});
  CHECK(dynamic_cast<torch::optim::AdamW*>(&t.optimizer()) != nullptr);
  Trainer a(Tiny{}, Quadratic{}, TrainOptions{});
  CHECK(dynamic_cast<torch::optim::Adam*>(&a.optimizer()) != nullptr);
}

TEST_CASE_FIXTURE(SingleThread, "clip_grad_norm scales the gradient to the cap; the norm before clipping is reported") {
  // g = (1, −4, 1.5, 12), ‖g‖ = √163.25 = 12.7769…
  const double norm = std::sqrt(163.25);
  auto gradient_after_step = [](std::optional<double> cap, std::optional<double>* reported = nullptr) {
    Tiny net;
    Trainer t(net, Quadratic{}, TrainOptions{.batch_size = 4, .lr = 1e-3, .clip_grad_norm = cap, .log_every = 1});
    t.fit(zeros_source(4), {.on_progress = [&](const TrainProgress& p) {
            if (reported) *reported = p.grad_norm;
          }});
    if (reported) CHECK(t.last_grad_norm() == *reported);
    return net->w.grad().clone();
  };
  std::optional<double> reported;
  const auto clipped = gradient_after_step(2.0, &reported);
  REQUIRE(reported.has_value());
  CHECK(*reported == doctest::Approx(norm));
  CHECK(clipped.norm().item<double>() <= 2.0);
  CHECK(clipped.norm().item<double>() == doctest::Approx(2.0).epsilon(1e-6));
  check_values(clipped, {2 / norm, -8 / norm, 3 / norm, 24 / norm});  // same direction
  // A cap above the norm leaves the gradient as it is; no clipping, no norm reported.
  check_values(gradient_after_step(100.0), {1.0, -4.0, 1.5, 12.0});
  std::optional<double> none = 1.0;
  check_values(gradient_after_step(std::nullopt, &none), {1.0, -4.0, 1.5, 12.0});
  CHECK_FALSE(none.has_value());
}

TEST_CASE_FIXTURE(SingleThread, "a non-finite gradient norm stops training before the update") {
  Tiny net;
  set_w(net, {0, 0, 0, 0});
  Trainer t(net, SqrtAtZero{}, TrainOptions{.batch_size = 4, .clip_grad_norm = 1.0});
  CHECK_THROWS_WITH_AS(t.fit(zeros_source(4)), doctest::Contains("gradient norm at step 1 is"), non_finite_error);
  check_values(net->w, {0, 0, 0, 0});
}

// ---- the lr schedule ----------------------------------------------------------------------------

TEST_CASE("scheduled_lr: linear warm-up, then the cosine of SGDR to min_lr, at the closed form") {
  const double lr = 1e-2, floor = 1e-4;
  const LrSchedule s{.warmup_steps = 4, .cosine = true, .min_lr = floor};
  CHECK(scheduled_lr(lr, s, 0, 20) == doctest::Approx(lr * 1 / 4));
  CHECK(scheduled_lr(lr, s, 1, 20) == doctest::Approx(lr * 2 / 4));
  CHECK(scheduled_lr(lr, s, 3, 20) == doctest::Approx(lr));
  CHECK(scheduled_lr(lr, s, 4, 20) == doctest::Approx(lr));  // the cosine starts at its top
  CHECK(scheduled_lr(lr, s, 12, 20) == doctest::Approx(floor + 0.5 * (lr - floor)));  // half-way
  CHECK(scheduled_lr(lr, s, 19, 20) ==
        doctest::Approx(floor + 0.5 * (lr - floor) * (1 + std::cos(std::numbers::pi * 15.0 / 16.0))));
  CHECK(scheduled_lr(lr, s, 20, 20) == floor);
  CHECK(scheduled_lr(lr, s, 500, 20) == floor);
  CHECK_THROWS_WITH_AS(scheduled_lr(lr, s, 5), doctest::Contains("horizon"), invalid_option);
  const LrSchedule warm{.warmup_steps = 10};
  CHECK(scheduled_lr(lr, warm, 4) == doctest::Approx(lr / 2));
  CHECK(scheduled_lr(lr, warm, 10) == lr);
  CHECK(scheduled_lr(lr, warm, 1000) == lr);
  CHECK(scheduled_lr(lr, LrSchedule{}, 7) == lr);
}

TEST_CASE_FIXTURE(SingleThread, "the trainer sets lr_at_step before every step; the horizon is epochs × batches, not max_steps") {
  const double lr = 1e-2, floor = 1e-4;
  auto closed_form = [&](std::int64_t t) {  // W = 4, T = 4 epochs × 5 batches = 20
    if (t < 4) return lr * static_cast<double>(t + 1) / 4.0;
    return floor + 0.5 * (lr - floor) * (1 + std::cos(std::numbers::pi * static_cast<double>(t - 4) / 16.0));
  };
  Trainer t(Tiny{}, Quadratic{}, TrainOptions{.epochs = 4, .batch_size = 8, .lr = lr,
                                              .lr_schedule = {.warmup_steps = 4, .cosine = true, .min_lr = floor},
                                              .max_steps = 15});
  std::vector<double> used;
  t.fit(zeros_source(40), {.on_loss = [&](std::int64_t, std::int64_t, double) { used.push_back(t.current_lr()); }});
  CHECK(t.lr_horizon() == 20);
  REQUIRE(used.size() == 15);
  for (std::int64_t k = 0; k < 15; ++k) {
    CAPTURE(k);
    CHECK(used[static_cast<std::size_t>(k)] == doctest::Approx(closed_form(k)).epsilon(1e-12));
    CHECK(t.lr_at_step(k) == used[static_cast<std::size_t>(k)]);
  }
  CHECK(t.lr_at_step(19) == doctest::Approx(closed_form(19)));
  CHECK(t.lr_at_step(20) == floor);

  // Warm-up with the per-epoch decay: lr · γ^epoch · (t + 1)/W.
  Trainer d(Tiny{}, Quadratic{}, TrainOptions{.epochs = 3, .batch_size = 8, .lr = lr, .lr_decay = 0.5,
                                              .lr_schedule = {.warmup_steps = 8}});
  used.clear();
  std::vector<std::int64_t> epochs;
  d.fit(zeros_source(40), {.on_loss = [&](std::int64_t, std::int64_t e, double) {
          used.push_back(d.current_lr());
          epochs.push_back(e);
        }});
  REQUIRE(used.size() == 15);
  for (std::size_t k = 0; k < used.size(); ++k) {
    CAPTURE(k);
    const double expected = lr * std::pow(0.5, static_cast<double>(epochs[k])) * std::min(1.0, (k + 1.0) / 8.0);
    CHECK(used[k] == doctest::Approx(expected).epsilon(1e-12));
  }
  // The seed's default: lr · γ^epoch, no per-step change.
  Trainer seed(Tiny{}, Quadratic{}, TrainOptions{.epochs = 2, .lr = lr, .lr_decay = 0.5});
  CHECK(seed.lr_at_step(0, 1) == lr * 0.5);
  CHECK(seed.lr_at_step(1000, 0) == lr);
}

TEST_CASE_FIXTURE(SingleThread, "a data source of unknown length: the cosine needs total_steps; a warm-up is not checked") {
  DataSource unknown{.open = zeros_source(16).open};  // no batches_per_epoch
  Trainer cosine(Tiny{}, Quadratic{}, TrainOptions{.epochs = 2, .batch_size = 8, .lr_schedule = {.cosine = true}});
  CHECK_THROWS_WITH_AS(cosine.fit(unknown), doctest::Contains("set lr_schedule.total_steps"), invalid_option);
  CHECK(cosine.state().step == 0);
  Trainer told(Tiny{}, Quadratic{},
               TrainOptions{.epochs = 2, .batch_size = 8, .lr_schedule = {.cosine = true, .total_steps = 4}});
  told.fit(unknown);
  CHECK(told.state().step == 4);
  CHECK(told.lr_horizon() == 4);
  Trainer warm(Tiny{}, Quadratic{}, TrainOptions{.epochs = 2, .batch_size = 8, .lr_schedule = {.warmup_steps = 100}});
  warm.fit(unknown);  // 4 steps, all inside the warm-up
  CHECK(warm.current_lr() == doctest::Approx(warm.options().lr * 4 / 100));
}

// ---- validation ---------------------------------------------------------------------------------

TEST_CASE_FIXTURE(SingleThread, "every new option is validated by name") {
  auto make = [](TrainOptions o) { Trainer t(Tiny{}, Quadratic{}, o); };
  const double nan = std::nan("");
  CHECK_THROWS_WITH_AS(make({.ema = EmaOptions{.decay = 1.0}}), doctest::Contains("ema.decay = 1: must lie in [0, 1)"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(make({.ema = EmaOptions{.decay = -0.1}}), doctest::Contains("ema.decay = -0.1"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.ema = EmaOptions{.decay = nan}}), doctest::Contains("ema.decay = nan"), invalid_option);
  CHECK_NOTHROW(make({.ema = EmaOptions{.decay = 0.0}}));
  CHECK_THROWS_WITH_AS(make({.ema = EmaOptions{.sigma_rel = 0.0}}), doctest::Contains("ema.sigma_rel = 0: must lie in (0, 0.3003]"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(make({.ema = EmaOptions{.sigma_rel = 0.31}}), doctest::Contains("ema.sigma_rel = 0.31"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(make({.ema = EmaOptions{.sigma_rel = nan}}), doctest::Contains("ema.sigma_rel = nan"),
                       invalid_option);
  CHECK_THROWS_AS(ExponentialMovingAverage(*Tiny{}, EmaOptions{.decay = 1.5}), invalid_option);

  CHECK_THROWS_WITH_AS(make({.clip_grad_norm = -1.0}), doctest::Contains("clip_grad_norm = -1: must be finite and positive"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(make({.clip_grad_norm = 0.0}), doctest::Contains("clip_grad_norm = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.clip_grad_norm = nan}), doctest::Contains("clip_grad_norm = nan"), invalid_option);

  CHECK_THROWS_WITH_AS(make({.optimizer = OptimizerKind::adamw, .weight_decay = -0.1}),
                       doctest::Contains("weight_decay = -0.1"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.weight_decay = 0.01}), doctest::Contains("weight_decay = 0.01: needs optimizer = OptimizerKind::adamw"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(make({.betas = {1.0, 0.999}}), doctest::Contains("betas[0] = 1"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.betas = {0.9, -0.5}}), doctest::Contains("betas[1] = -0.5"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.eps = 0.0}), doctest::Contains("eps = 0"), invalid_option);

  CHECK_THROWS_WITH_AS(make({.lr_schedule = {.warmup_steps = -1}}), doctest::Contains("lr_schedule.warmup_steps = -1"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(make({.lr = 1e-3, .lr_schedule = {.cosine = true, .min_lr = 1e-2}}),
                       doctest::Contains("lr_schedule.min_lr = 0.01: must lie in [0, lr]"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.lr_schedule = {.min_lr = 1e-6}}), doctest::Contains("set lr_schedule.cosine = true"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(make({.lr_schedule = {.cosine = true, .total_steps = 0}}),
                       doctest::Contains("lr_schedule.total_steps = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(make({.lr_schedule = {.total_steps = 10}}), doctest::Contains("set warmup_steps or cosine"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(make({.lr_schedule = {.warmup_steps = 10, .cosine = true, .total_steps = 10}}),
                       doctest::Contains("lr_schedule.warmup_steps = 10: longer than the lr_schedule.total_steps = 10"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(make({.lr_decay = 0.9, .lr_schedule = {.cosine = true}}),
                       doctest::Contains("lr_decay = 0.9 and lr_schedule.cosine = true: choose one"), invalid_option);
}

TEST_CASE_FIXTURE(SingleThread, "a warm-up longer than the run is an error at fit(), naming both lengths") {
  // 40 samples in batches of 8 over 4 epochs: 20 planned steps.
  auto fit_with = [](LrSchedule s) {
    Trainer t(Tiny{}, Quadratic{}, TrainOptions{.epochs = 4, .batch_size = 8, .lr_schedule = s});
    t.fit(zeros_source(40));
    return t.state().step;
  };
  CHECK_THROWS_WITH_AS(fit_with({.warmup_steps = 30}),
                       doctest::Contains("lr_schedule.warmup_steps = 30: longer than the run's planned steps (epochs × "
                                         "batches per epoch) = 20"),
                       invalid_option);
  CHECK_THROWS_WITH_AS(fit_with({.warmup_steps = 20, .cosine = true}),
                       doctest::Contains("must end before the cosine"), invalid_option);
  CHECK(fit_with({.warmup_steps = 20}) == 20);  // a warm-up may fill the run
  CHECK(fit_with({.warmup_steps = 19, .cosine = true}) == 20);
}
}  // namespace test_training_options
