// Inference preparation (torch/inference.hpp): folding BatchNorm and channels-last weights must
// not change what the UNets compute in eval mode.
#include <dlfcn.h>
#include <doctest/doctest.h>

#include <torch/torch.h>

#include "torch/model_helpers.hpp"
#include "scoreflow/core.hpp"
#include "scoreflow/torch/models/adapters.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"
#include "scoreflow/torch/models/inference.hpp"
#include "scoreflow/torch/models/unet.hpp"

namespace test_inference_speed {

namespace sm = scoreflow::models;

namespace {
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

/// Non-trivial BatchNorm affine parameters too (a fresh BatchNorm has γ = 1, β = 0).
template <class Net>
void perturb_batchnorm_affine(Net& net) {
  torch::NoGradGuard g;
  torch::manual_seed(3);
  for (const auto& m : net->modules(false))
    if (auto* bn = m->template as<torch::nn::BatchNorm2d>()) {
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.2, 0.2);
    }
}
}  // namespace

TEST_CASE_FIXTURE(sftest::SingleThread, "fold_batchnorm: class-conditioned UNet output unchanged in eval mode") {
  torch::manual_seed(0);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = 8});
  const auto x = torch::randn({6, 1, 28, 28});
  const auto t = torch::rand({6, 1});
  const auto c = sm::one_hot(torch::tensor({0, 1, 2, 3, 4, 5}, torch::kLong), 10);
  perturb_batchnorm_affine(net);
  sftest::calibrate_batchnorm(net, x, t, c);
  torch::NoGradGuard g;
  const auto before = net->forward(x, t, c);
  CHECK(sm::fold_batchnorm(net) == 17);  // 2 + 3 + 3 (encoder) + 1 (Unflatten) + 3 + 3 + 2 (decoder)
  CHECK(sm::fold_batchnorm(net) == 0);   // idempotent
  const auto after = net->forward(x, t, c);
  const double scale = std::max(1.0, before.abs().max().template item<double>());
  CHECK(max_abs_diff(before, after) < 1e-5 * scale);
}

TEST_CASE_FIXTURE(sftest::SingleThread, "fold_batchnorm: unconditional and time-conditioned UNets; state dict stays loadable") {
  torch::manual_seed(1);
  sm::UnconditionalUNet net(sm::UNetOptions{.hidden = 8});
  const auto x = torch::randn({4, 1, 28, 28});
  perturb_batchnorm_affine(net);
  sftest::calibrate_batchnorm(net, x);
  torch::NoGradGuard g;
  const auto before = net->forward(x);
  sm::fold_batchnorm(net);
  CHECK(max_abs_diff(before, net->forward(x)) < 1e-5);
  // The folded weights in an unfolded net: its BatchNorms are identities (σ² = 1 − ε).
  sm::UnconditionalUNet plain(sm::UNetOptions{.hidden = 8});
  plain->eval();
  auto src = net->named_parameters(), dst = plain->named_parameters();
  for (auto& p : dst) p.value().copy_(src[p.key()]);
  auto sb = net->named_buffers(), db = plain->named_buffers();
  for (auto& b : db) b.value().copy_(sb[b.key()]);
  CHECK(max_abs_diff(before, plain->forward(x)) < 1e-5);

  torch::manual_seed(2);
  sm::TimeConditionalUNet tnet(sm::UNetOptions{.hidden = 8});
  const auto t = torch::rand({4, 1});
  perturb_batchnorm_affine(tnet);
  sftest::calibrate_batchnorm(tnet, x, t);
  const auto tb = tnet->forward(x, t);
  sm::fold_batchnorm(tnet);
  CHECK(max_abs_diff(tb, tnet->forward(x, t)) < 1e-5);
}

TEST_CASE_FIXTURE(sftest::SingleThread, "fold_batchnorm: every Conv–BatchNorm–GELU block kind, forward and forward_joined") {
  // a: k·N×Ca×S×S, shared: N×Cs×S×S; the whole input is [a; shared repeated k times].
  auto check = [](const char* kind, auto block, std::int64_t ca, std::int64_t cs, std::int64_t size) {
    CAPTURE(kind);
    torch::manual_seed(9);
    const std::int64_t n = 3, k = 2;
    const auto a = torch::randn({k * n, ca, size, size}), shared = torch::randn({n, cs, size, size});
    const auto whole = torch::cat({a, shared.repeat({k, 1, 1, 1})}, 1);
    perturb_batchnorm_affine(block);
    sftest::calibrate_batchnorm(block, whole);
    torch::NoGradGuard g;
    const auto before = block->forward(whole);
    CHECK(max_abs_diff(block->forward_joined(a, shared), before) < 1e-5);
    CHECK_FALSE(block->batchnorm_folded());
    CHECK(sm::fold_batchnorm(block) == 1);
    CHECK(block->batchnorm_folded());
    CHECK(sm::fold_batchnorm(block) == 0);
    const double scale = std::max(1.0, before.abs().max().template item<double>());
    CHECK(max_abs_diff(block->forward(whole), before) < 1e-5 * scale);
    CHECK(max_abs_diff(block->forward_joined(a, shared), before) < 1e-5 * scale);
    // the BatchNorm is left as the identity, so the weights still load into an unfolded block
    CHECK(torch::equal(block->bn->running_mean, torch::zeros_like(block->bn->running_mean)));
    CHECK(torch::equal(block->bn->weight, torch::ones_like(block->bn->weight)));
  };
  check("Conv", sm::Conv(3 + 2, 4), 3, 2, 8);
  check("DownConv", sm::DownConv(3 + 2, 4), 3, 2, 8);
  check("UpConv", sm::UpConv(3 + 2, 4), 3, 2, 7);
  check("Unflatten", sm::Unflatten(5, 7), 3, 2, 1);
}

namespace {
/// A module of the user's that folds: fold_batchnorm finds it through the interface alone.
struct CountingFold : torch::nn::Module, sm::BatchNormFoldable {
  int folds = 0;
  void fold_batchnorm() override { ++folds; }
  [[nodiscard]] bool batchnorm_folded() const override { return folds > 0; }
};
}  // namespace

TEST_CASE_FIXTURE(sftest::SingleThread, "fold_batchnorm walks any module tree for BatchNormFoldable modules") {
  auto net = std::make_shared<torch::nn::Module>();
  auto own = net->register_module("own", std::make_shared<CountingFold>());
  net->register_module("block", sm::ConvBlock(1, 2));
  net->register_module("linear", torch::nn::Linear(2, 2));  // nothing to fold
  net->train();
  CHECK(sm::fold_batchnorm(net) == 3);  // own + ConvBlock's two Convs
  CHECK_FALSE(net->is_training());
  CHECK(own->folds == 1);
  CHECK(sm::fold_batchnorm(net) == 0);
  CHECK(own->folds == 1);
}

TEST_CASE_FIXTURE(sftest::SingleThread, "to_channels_last: same output with NHWC weights and input") {
  torch::manual_seed(4);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = 8});
  const auto x = torch::randn({3, 1, 28, 28});
  const auto t = torch::rand({3, 1});
  const auto c = sm::one_hot(torch::tensor({7, 8, 9}, torch::kLong), 10);
  sftest::calibrate_batchnorm(net, x, t, c);
  torch::NoGradGuard g;
  const auto before = net->forward(x, t, c);
  sm::fold_batchnorm(net);
  sm::to_channels_last(net);
  for (const auto& p : net->parameters())
    if (p.dim() == 4) CHECK(p.is_contiguous(torch::MemoryFormat::ChannelsLast));
  const auto after = net->forward(x.contiguous(torch::MemoryFormat::ChannelsLast), t, c);
  CHECK(max_abs_diff(before, after) < 1e-5);
}

TEST_CASE_FIXTURE(sftest::SingleThread, "micro_batched: chunked model calls give the whole-batch answer") {
  torch::manual_seed(5);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = 8});
  const auto x = torch::randn({7, 1, 28, 28});
  const auto c = sm::one_hot(torch::tensor({0, 1, 2, 3, 4, 5, 6}, torch::kLong), 10);
  sftest::calibrate_batchnorm(net, x, torch::rand({7, 1}), c);
  auto whole = sm::flow_velocity(net);
  auto chunked = sm::micro_batched(sm::flow_velocity(net), 3);  // 3 + 3 + 1
  CHECK(chunked.prediction == scoreflow::Parameterization::velocity);
  const auto a = whole.fn(x, scoreflow::FlowTime{0.3}, c);
  const auto b = chunked.fn(x, scoreflow::FlowTime{0.3}, c);
  CHECK(b.sizes() == a.sizes());
  CHECK(max_abs_diff(a, b) < 1e-5);
  // a condition without a batch axis (NoCondition) passes through to every chunk
  const auto u = sm::micro_batched(sm::flow_velocity(net), 2).fn(x, scoreflow::FlowTime{0.3}, scoreflow::NoCondition{});
  CHECK(max_abs_diff(whole.fn(x, scoreflow::FlowTime{0.3}, scoreflow::NoCondition{}), u) < 1e-5);
  CHECK_THROWS_AS(sm::micro_batched(sm::flow_velocity(net), 0), scoreflow::invalid_option);
}

TEST_CASE("set_cpu_threads: LibTorch's pool gets n threads, OpenBLAS (when loaded) one") {
  const int before = at::get_num_threads();
  const auto done = sm::set_cpu_threads(1);
  CHECK(done.torch_threads == 1);
  CHECK(at::get_num_threads() == 1);
  // Debian's LibTorch links OpenBLAS: then its own pool must now be one thread.
  using GetThreads = int (*)();
  if (auto* get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) {
    CHECK(done.openblas);
    CHECK(get() == 1);
  }
  CHECK_THROWS_AS(sm::set_cpu_threads(0), scoreflow::invalid_option);
  at::set_num_threads(before);
}

TEST_CASE_FIXTURE(sftest::SingleThread, "forward_under_conditions: each image under k conditions equals forward on [x, …, x]") {
  torch::manual_seed(6);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = 8});
  const std::int64_t n = 5;
  const auto x = torch::randn({n, 1, 28, 28});
  perturb_batchnorm_affine(net);
  sftest::calibrate_batchnorm(net, x, torch::rand({n, 1}), sm::one_hot(torch::arange(n, torch::kLong), 10));
  torch::NoGradGuard g;
  for (const bool folded : {false, true}) {
    CAPTURE(folded);
    if (folded) sm::fold_batchnorm(net);
    for (const std::int64_t k : {1, 2, 3}) {
      CAPTURE(k);
      const auto c = sm::one_hot(torch::randint(0, 10, {k * n}, torch::kLong), 10);
      c[0].zero_();  // the "no class" row of CFG too
      const auto t = torch::rand({k * n, 1});
      const auto repeated = x.repeat({k, 1, 1, 1});
      const auto want = net->forward(repeated, t, c);
      const auto got = net->forward_under_conditions(x, t, c);
      CHECK(got.sizes() == want.sizes());
      CHECK(max_abs_diff(got, want) < 1e-5);
      // t of batch 1 broadcasts over the k·N rows
      const auto t1 = torch::full({1, 1}, 0.25);
      CHECK(max_abs_diff(net->forward_under_conditions(x, t1, c), net->forward(repeated, t1, c)) < 1e-5);
    }
  }
  const auto t = torch::rand({1, 1});
  CHECK_THROWS_WITH_AS(net->forward_under_conditions(x, t, sm::one_hot(torch::zeros({7}, torch::kLong), 10)),
                       doctest::Contains("c must be k·N×10 with N = 5"), scoreflow::shape_error);
  CHECK_THROWS_WITH_AS(net->forward_under_conditions(x, t, torch::zeros({10})), doctest::Contains("c must be k·N×10"),
                       scoreflow::shape_error);
  CHECK_THROWS_WITH_AS(net->forward_under_conditions(x, torch::rand({3, 1}), sm::one_hot(torch::zeros({10}, torch::kLong), 10)),
                       doctest::Contains("t must be N×1 with N = 10"), scoreflow::shape_error);
  CHECK_THROWS_WITH_AS(net->forward_under_conditions(torch::zeros({0, 1, 28, 28}), t, torch::zeros({2, 10})),
                       doctest::Contains("with N = 0"), scoreflow::shape_error);
  CHECK_THROWS_WITH_AS(net->forward_under_conditions(torch::zeros({2, 1, 20, 20}), t, torch::zeros({4, 10})),
                       doctest::Contains("expected input N×1×28×28"), scoreflow::shape_error);
  sm::detail::Modulation three_rows;
  three_rows.scale0 = torch::ones({3, 16, 1, 1});
  CHECK_THROWS_WITH_AS(net->backbone->forward(x, three_rows, 2), doctest::Contains("a modulation of 3 rows for 5 images × 2 copies"),
                       scoreflow::shape_error);
  CHECK_THROWS_WITH_AS(net->backbone->forward(x, {}, 0), doctest::Contains("copies = 0"), scoreflow::invalid_option);
}

TEST_CASE_FIXTURE(sftest::SingleThread, "under_conditions through the adapters and micro_batched; CFG sampling unchanged") {
  torch::manual_seed(7);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = 8});
  const std::int64_t n = 7;
  const auto x = torch::randn({n, 1, 28, 28});
  sftest::calibrate_batchnorm(net, x, torch::rand({n, 1}), sm::one_hot(torch::arange(n, torch::kLong), 10));
  sm::fold_batchnorm(net);
  const auto c = torch::cat({sm::null_condition(n, 10), sm::one_hot(torch::arange(n, torch::kLong), 10)});
  const auto repeated = x.repeat({2, 1, 1, 1});
  auto flow = sm::flow_velocity(net);
  static_assert(scoreflow::SharesInputAcrossConditions<decltype(flow.fn), torch::Tensor, scoreflow::FlowTime, torch::Tensor>);
  const auto want = flow.fn(repeated, scoreflow::FlowTime{0.4}, c);
  CHECK(max_abs_diff(flow.fn.under_conditions(x, scoreflow::FlowTime{0.4}, c), want) < 1e-5);
  auto chunked = sm::micro_batched(sm::flow_velocity(net), 3);  // inputs 3 + 3 + 1, each with 2 conditions
  static_assert(scoreflow::SharesInputAcrossConditions<decltype(chunked.fn), torch::Tensor, scoreflow::FlowTime, torch::Tensor>);
  const auto chunked_answer = chunked.fn.under_conditions(x, scoreflow::FlowTime{0.4}, c);
  CHECK(chunked_answer.sizes() == want.sizes());
  CHECK(max_abs_diff(chunked_answer, want) < 1e-5);
  auto ddpm = sm::ddpm_noise_predictor(net, 1000);
  CHECK(max_abs_diff(ddpm.fn.under_conditions(x, scoreflow::Timestep{250}, c), ddpm.fn(repeated, scoreflow::Timestep{250}, c)) <
        1e-5);
  // the time-only UNet has no classes to share an input across
  static_assert(!scoreflow::SharesInputAcrossConditions<decltype(sm::flow_velocity(sm::TimeConditionalUNet(nullptr)).fn),
                                                        torch::Tensor, scoreflow::FlowTime, torch::Tensor>);

  // A CFG sampler on the sharing adapter equals one on a plain wrapper that gets [x, x].
  using namespace scoreflow;
  auto plain = denoiser([&](const torch::Tensor& xs, FlowTime t, const torch::Tensor& cs) { return flow.fn(xs, t, cs); },
                        Parameterization::velocity);
  const auto labels = sm::one_hot(torch::arange(n, torch::kLong), 10);
  auto sample = [&](auto& model) {
    Generator gen(11);
    Sampler s{FlowSchedule<Heun>{FlowGrid::uniform(4)}, ClassifierFree<torch::Tensor>{5.0, sm::null_condition(n, 10)},
              SinglePrompt<torch::Tensor>{labels}};
    return s.sample(model, PureNoise<torch::Tensor>{torch::zeros({n, 1, 28, 28})}, gen);
  };
  const auto shared = sample(chunked), copied = sample(plain);
  CHECK(max_abs_diff(shared, copied) < 1e-4);
  CHECK(shared.abs().max().item<double>() > 0.1);
}
}  // namespace test_inference_speed
