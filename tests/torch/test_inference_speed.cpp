// Inference preparation (torch/inference.hpp): folding BatchNorm and channels-last weights must
// not change what the UNets compute in eval mode.
#include <dlfcn.h>
#include <doctest/doctest.h>

#include <torch/torch.h>

#include "model_helpers.hpp"
#include "scoreflow/torch/adapters.hpp"
#include "scoreflow/torch/cpu_threads.hpp"
#include "scoreflow/torch/inference.hpp"
#include "scoreflow/torch/unet.hpp"

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
  const auto c = sm::one_hot(torch::tensor({0, 1, 2, 3, 4, 5}, torch::kLong));
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

TEST_CASE_FIXTURE(sftest::SingleThread, "to_channels_last: same output with NHWC weights and input") {
  torch::manual_seed(4);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = 8});
  const auto x = torch::randn({3, 1, 28, 28});
  const auto t = torch::rand({3, 1});
  const auto c = sm::one_hot(torch::tensor({7, 8, 9}, torch::kLong));
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
  const auto c = sm::one_hot(torch::tensor({0, 1, 2, 3, 4, 5, 6}, torch::kLong));
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
