// The CS180 Project 5B UNets (seed Part B §1.1, §2.1, §2.4): exact parameter counts, block and
// model shapes, conditioning that changes the output, option and input validation.
#include <doctest/doctest.h>

#include <torch/torch.h>

#include "torch/model_helpers.hpp"
#include "scoreflow/torch/models/unet.hpp"

namespace test_unet {

using namespace scoreflow::models;
using sftest::SingleThread;
using sftest::calibrate_batchnorm;

namespace {

torch::Tensor images(std::int64_t n, std::int64_t size = 28, std::int64_t channels = 1) {
  torch::manual_seed(7);
  return torch::rand({n, channels, size, size});
}

std::int64_t count(const std::shared_ptr<torch::nn::Module>& m) { return parameter_count(*m); }

}  // namespace

TEST_CASE_FIXTURE(SingleThread, "UNet parameter counts match the PyTorch reference exactly (seed Part B §1.1, §2.1, §2.4)") {
  CHECK(count(UnconditionalUNet(UNetOptions{.hidden = 128}).ptr()) == 7'891'073);
  CHECK(count(TimeConditionalUNet(UNetOptions{.hidden = 64}).ptr()) == 1'996'417);
  CHECK(count(ClassConditionalUNet(UNetOptions{.hidden = 64}).ptr()) == 2'019'201);
  // The defaults are the seed's recommended D: 128 unconditional, 64 conditioned.
  CHECK(UnconditionalUNet()->options().hidden == 128);
  CHECK(TimeConditionalUNet()->options().hidden == 64);
  CHECK(ClassConditionalUNet()->options().hidden == 64);
}

TEST_CASE_FIXTURE(SingleThread, "UNet blocks: parameter counts and shapes of each standard operation") {
  const std::int64_t d = 4;
  torch::manual_seed(1);
  // Conv2d k×k: k²·i·o + o weights/bias, BatchNorm: 2·o affine parameters.
  CHECK(count(Conv(3, d).ptr()) == 9 * 3 * d + d + 2 * d);
  CHECK(count(DownConv(3, d).ptr()) == 9 * 3 * d + d + 2 * d);
  CHECK(count(UpConv(3, d).ptr()) == 16 * 3 * d + d + 2 * d);
  CHECK(count(Unflatten(d).ptr()) == 49 * d * d + d + 2 * d);
  CHECK(count(Flatten().ptr()) == 0);
  CHECK(count(ConvBlock(3, d).ptr()) == count(Conv(3, d).ptr()) + count(Conv(d, d).ptr()));
  CHECK(count(DownBlock(3, d).ptr()) == count(DownConv(3, d).ptr()) + count(ConvBlock(d, d).ptr()));
  CHECK(count(UpBlock(3, d).ptr()) == count(UpConv(3, d).ptr()) + count(ConvBlock(d, d).ptr()));
  CHECK(count(FCBlock(10, d).ptr()) == 10 * d + d + d * d + d);

  const auto x = torch::rand({2, 3, 28, 28});
  CHECK(Conv(3, d)(x).sizes() == torch::IntArrayRef{2, d, 28, 28});
  CHECK(DownConv(3, d)(x).sizes() == torch::IntArrayRef{2, d, 14, 14});
  CHECK(UpConv(3, d)(torch::rand({2, 3, 7, 7})).sizes() == torch::IntArrayRef{2, d, 14, 14});
  CHECK(Flatten()(torch::rand({2, d, 7, 7})).sizes() == torch::IntArrayRef{2, d, 1, 1});
  CHECK(Unflatten(d)(torch::rand({2, d, 1, 1})).sizes() == torch::IntArrayRef{2, d, 7, 7});
  CHECK(ConvBlock(3, d)(x).sizes() == torch::IntArrayRef{2, d, 28, 28});
  CHECK(DownBlock(3, d)(x).sizes() == torch::IntArrayRef{2, d, 14, 14});
  CHECK(UpBlock(3, d)(torch::rand({2, 3, 14, 14})).sizes() == torch::IntArrayRef{2, d, 28, 28});
  CHECK(FCBlock(1, d)(torch::rand({5, 1})).sizes() == torch::IntArrayRef{5, d});
  CHECK(concat(torch::rand({2, 3, 7, 7}), torch::rand({2, 5, 7, 7})).sizes() == torch::IntArrayRef{2, 8, 7, 7});

  // Flatten is AvgPool2d(7) then GELU: a constant map c gives gelu(c).
  const auto pooled = Flatten()(torch::full({1, 1, 7, 7}, 0.75));
  CHECK(pooled.item<double>() == doctest::Approx(torch::gelu(torch::tensor(0.75)).item<double>()).epsilon(1e-6));
}

TEST_CASE_FIXTURE(SingleThread, "UNet blocks reject bad options and inputs with the parameter's name") {
  CHECK_THROWS_WITH_AS(Conv(0, 4), doctest::Contains("in_channels = 0"), scoreflow::invalid_option);
  CHECK_THROWS_WITH_AS(UpBlock(4, -1), doctest::Contains("out_channels = -1"), scoreflow::invalid_option);
  CHECK_THROWS_WITH_AS(Flatten(0), doctest::Contains("kernel_size"), scoreflow::invalid_option);
  CHECK_THROWS_AS(Conv(3, 4)(torch::rand({2, 2, 8, 8})), scoreflow::shape_error);
  CHECK_THROWS_AS(Flatten()(torch::rand({2, 2, 8, 8})), scoreflow::shape_error);
  CHECK_THROWS_AS(Unflatten(4)(torch::rand({2, 4, 7, 7})), scoreflow::shape_error);
  CHECK_THROWS_AS(FCBlock(10, 4)(torch::rand({2, 9})), scoreflow::shape_error);
  CHECK_THROWS_AS(concat(torch::rand({2, 3, 7, 7}), torch::rand({2, 3, 14, 14})), scoreflow::shape_error);

  CHECK_THROWS_WITH_AS(UnconditionalUNet(UNetOptions{.hidden = 0}), doctest::Contains("hidden = 0"),
                       scoreflow::invalid_option);
  CHECK_THROWS_WITH_AS(UnconditionalUNet(UNetOptions{.image_size = 30}), doctest::Contains("image_size = 30"),
                       scoreflow::invalid_option);
  CHECK_THROWS_WITH_AS(ClassConditionalUNet(UNetOptions{.num_classes = 0}), doctest::Contains("num_classes = 0"),
                       scoreflow::invalid_option);
  UnconditionalUNet net(UNetOptions{.hidden = 4});
  CHECK_THROWS_WITH_AS(net(torch::rand({2, 1, 32, 32})), doctest::Contains("expected input N×1×28×28"),
                       scoreflow::shape_error);
  CHECK_THROWS_AS(net(torch::rand({2, 3, 28, 28})), scoreflow::shape_error);
  TimeConditionalUNet tnet(UNetOptions{.hidden = 4});
  CHECK_THROWS_WITH_AS(tnet(torch::rand({2, 1, 28, 28}), torch::rand({3, 1})), doctest::Contains("t must be N×1"),
                       scoreflow::shape_error);
  ClassConditionalUNet cnet(UNetOptions{.hidden = 4});
  CHECK_THROWS_WITH_AS(cnet(torch::rand({2, 1, 28, 28}), torch::rand({2, 1}), torch::rand({2, 9})),
                       doctest::Contains("c must be N×10"), scoreflow::shape_error);
}

TEST_CASE_FIXTURE(SingleThread, "all three UNets map N×1×28×28 to N×1×28×28; other sizes and channels work too") {
  torch::manual_seed(0);
  const auto x = images(3);
  const auto t = torch::rand({3, 1});
  const auto c = torch::eye(10).index({torch::indexing::Slice(0, 3)});
  CHECK(UnconditionalUNet(UNetOptions{.hidden = 8})(x).sizes() == torch::IntArrayRef{3, 1, 28, 28});
  CHECK(TimeConditionalUNet(UNetOptions{.hidden = 8})(x, t).sizes() == torch::IntArrayRef{3, 1, 28, 28});
  CHECK(ClassConditionalUNet(UNetOptions{.hidden = 8})(x, t, c).sizes() == torch::IntArrayRef{3, 1, 28, 28});
  // A 32×32 RGB variant: bottleneck 8×8, Flatten/Unflatten kernel 8.
  UnconditionalUNet rgb(UNetOptions{.in_channels = 3, .hidden = 8, .image_size = 32});
  CHECK(rgb(images(2, 32, 3)).sizes() == torch::IntArrayRef{2, 3, 32, 32});
}

TEST_CASE_FIXTURE(SingleThread, "time conditioning changes the output; t of batch 1 or shape N broadcasts") {
  torch::manual_seed(3);
  TimeConditionalUNet net(UNetOptions{.hidden = 8});
  const auto x = images(4);
  calibrate_batchnorm(net, x, torch::rand({4, 1}));
  torch::NoGradGuard no_grad;
  const auto early = net(x, torch::full({4, 1}, 0.1));
  const auto late = net(x, torch::full({4, 1}, 0.9));
  MESSAGE("max |u(t = 0.1) - u(t = 0.9)| = " << (early - late).abs().max().item<double>());
  CHECK((early - late).abs().max().item<double>() > 1e-2);
  CHECK(torch::equal(net(x, torch::full({1, 1}, 0.1)), early));
  CHECK(torch::equal(net(x, torch::full({4}, 0.1)), early));
  // Per-sample times: sample i only sees its own t.
  const auto mixed = net(x, torch::tensor({0.1, 0.9, 0.1, 0.9}).view({4, 1}));
  CHECK(torch::allclose(mixed[0], early[0], 1e-5, 1e-7));
  CHECK(torch::allclose(mixed[1], late[1], 1e-5, 1e-7));
  CHECK_FALSE(torch::allclose(mixed[1], early[1], 1e-3, 1e-5));
}

TEST_CASE_FIXTURE(SingleThread, "class conditioning changes the output; an all-zero class vector is accepted") {
  torch::manual_seed(4);
  ClassConditionalUNet net(UNetOptions{.hidden = 8});
  const auto x = images(2);
  const auto t = torch::full({2, 1}, 0.5);
  calibrate_batchnorm(net, x, t, torch::eye(10).index({torch::indexing::Slice(0, 2)}));
  torch::NoGradGuard no_grad;
  auto onehot = [](std::int64_t k) { return torch::nn::functional::one_hot(torch::full({2}, k, torch::kLong), 10).to(torch::kFloat32); };
  const auto three = net(x, t, onehot(3));
  const auto seven = net(x, t, onehot(7));
  const auto none = net(x, t, torch::zeros({2, 10}));
  MESSAGE("max |u(c = 3) - u(c = 7)| = " << (three - seven).abs().max().item<double>());
  CHECK((three - seven).abs().max().item<double>() > 1e-2);
  CHECK((three - none).abs().max().item<double>() > 1e-3);
  CHECK(torch::isfinite(none).all().item<bool>());
  CHECK(none.sizes() == torch::IntArrayRef{2, 1, 28, 28});
  // Time still matters in the class model.
  CHECK((net(x, torch::full({2, 1}, 0.1), onehot(3)) - three).abs().max().item<double>() > 1e-3);
}

TEST_CASE_FIXTURE(SingleThread, "UNets backpropagate into every parameter") {
  torch::manual_seed(5);
  ClassConditionalUNet net(UNetOptions{.hidden = 4});
  const auto out = net(images(4), torch::rand({4, 1}), torch::eye(10).index({torch::indexing::Slice(0, 4)}));
  out.square().mean().backward();
  for (const auto& p : net->named_parameters()) {
    INFO(p.key());
    REQUIRE(p.value().grad().defined());
    CHECK(p.value().grad().abs().sum().item<double>() > 0.0);
  }
}
}  // namespace test_unet
