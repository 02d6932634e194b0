// UNets as scoreflow denoisers: the adapters' arithmetic (t, t/T, one-hot, zeros), eval/no-grad
// evaluation that leaves the module's mode alone, and the adapters inside scoreflow::Sampler with
// flow (Euler) and DDPM schedules and classifier-free guidance (seed Part B §1.2.3, §2.3, §2.6).
#include <doctest/doctest.h>

#include <torch/torch.h>

#include "torch/model_helpers.hpp"
#include "scoreflow/core.hpp"
#include "scoreflow/torch/models/adapters.hpp"
#include "scoreflow/torch/models/unet.hpp"
#include "scoreflow/torch/tensor.hpp"

namespace test_adapter {

using namespace scoreflow;
using namespace scoreflow::models;
using sftest::SingleThread;
using sftest::calibrate_batchnorm;

namespace {

torch::Tensor noise_images(std::int64_t n, std::int64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({n, 1, 28, 28});
}

}  // namespace

TEST_CASE_FIXTURE(SingleThread, "one_hot and null_condition") {
  const auto c = one_hot(torch::tensor({3, 0, 9}, torch::kLong), 10);
  REQUIRE(c.sizes() == torch::IntArrayRef{3, 10});
  CHECK((c.scalar_type() == torch::kFloat32));
  CHECK(c.sum().item<double>() == 3.0);
  CHECK(c[0][3].item<double>() == 1.0);
  CHECK(c[1][0].item<double>() == 1.0);
  CHECK(c[2][9].item<double>() == 1.0);
  CHECK(one_hot(torch::tensor({1}, torch::kLong), 4).sizes() == torch::IntArrayRef{1, 4});
  CHECK_THROWS_WITH_AS(one_hot(torch::tensor({10}, torch::kLong), 10), doctest::Contains("label 10"), invalid_option);
  CHECK_THROWS_WITH_AS(one_hot(torch::tensor({-1}, torch::kLong), 10), doctest::Contains("label -1"), invalid_option);
  CHECK_THROWS_AS(one_hot(torch::zeros({2, 2}, torch::kLong), 10), shape_error);
  const auto z = null_condition(5, 10);
  CHECK(z.sizes() == torch::IntArrayRef{5, 10});
  CHECK(z.abs().sum().item<double>() == 0.0);
  CHECK_THROWS_AS(null_condition(0, 10), invalid_option);
}

TEST_CASE_FIXTURE(SingleThread, "flow_velocity: FlowTime t becomes t as N×1; eval and no-grad; the module's mode is restored") {
  torch::manual_seed(11);
  TimeConditionalUNet net(UNetOptions{.hidden = 8});
  const auto x = noise_images(3, 1);
  calibrate_batchnorm(net, x, torch::rand({3, 1}));
  auto model = flow_velocity(net);
  CHECK(model.prediction == Parameterization::velocity);

  net->train();
  const auto v = model.fn(x, FlowTime{0.25}, NoCondition{});
  CHECK(net->is_training());  // restored
  CHECK_FALSE(v.requires_grad());
  net->eval();
  torch::NoGradGuard g;
  const auto expected = net(x, torch::full({3, 1}, 0.25));
  CHECK(torch::equal(v, expected));
  // float64 in → float64 out, the model stays float32.
  const auto v64 = model.fn(x.to(torch::kFloat64), FlowTime{0.25}, NoCondition{});
  CHECK((v64.scalar_type() == torch::kFloat64));
  CHECK(torch::allclose(v64.to(torch::kFloat32), expected, 1e-5, 1e-6));
  // Not the training-mode answer (BatchNorm batch statistics).
  net->train();
  CHECK_FALSE(torch::allclose(net(x, torch::full({3, 1}, 0.25)), expected));
}

TEST_CASE_FIXTURE(SingleThread, "flow_velocity of the class model: one-hot condition, NoCondition means all-zero c") {
  torch::manual_seed(12);
  ClassConditionalUNet net(UNetOptions{.hidden = 8});
  const auto x = noise_images(2, 2);
  const auto c = one_hot(torch::tensor({4, 8}, torch::kLong), 10);
  calibrate_batchnorm(net, x, torch::rand({2, 1}), c);
  auto model = flow_velocity(net);
  const auto cond = model.fn(x, FlowTime{0.5}, c);
  const auto uncond = model.fn(x, FlowTime{0.5}, NoCondition{});
  net->eval();
  torch::NoGradGuard g;
  CHECK(torch::equal(cond, net(x, torch::full({2, 1}, 0.5), c)));
  CHECK(torch::equal(uncond, net(x, torch::full({2, 1}, 0.5), torch::zeros({2, 10}))));
  CHECK_FALSE(torch::allclose(cond, uncond));
  // A condition of batch 1 is broadcast.
  CHECK(torch::equal(model.fn(x, FlowTime{0.5}, c.index({torch::indexing::Slice(0, 1)})),
                     net(x, torch::full({2, 1}, 0.5), c[0].expand({2, 10}))));
}

TEST_CASE_FIXTURE(SingleThread, "ddpm_noise_predictor: Timestep t enters as t/T; out-of-range timesteps are rejected") {
  torch::manual_seed(13);
  ClassConditionalUNet net(UNetOptions{.hidden = 8});
  TimeConditionalUNet tnet(UNetOptions{.hidden = 8});
  net->eval();
  tnet->eval();
  const auto x = noise_images(2, 3);
  const auto c = one_hot(torch::tensor({1, 2}, torch::kLong), 10);
  auto model = ddpm_noise_predictor(net);
  CHECK(model.prediction == Parameterization::noise);
  torch::NoGradGuard g;
  CHECK(torch::equal(model.fn(x, Timestep{250}, c), net(x, torch::full({2, 1}, 0.25), c)));
  CHECK(torch::equal(model.fn(x, Timestep{250}, NoCondition{}), net(x, torch::full({2, 1}, 0.25), torch::zeros({2, 10}))));
  auto small = ddpm_noise_predictor(tnet, 100);
  CHECK(torch::equal(small.fn(x, Timestep{25}, NoCondition{}), tnet(x, torch::full({2, 1}, 0.25))));
  CHECK_THROWS_WITH_AS(model.fn(x, Timestep{1000}, c), doctest::Contains("timestep = 1000"), invalid_option);
  CHECK_THROWS_AS(model.fn(x, Timestep{-1}, c), invalid_option);
  CHECK_THROWS_AS(ddpm_noise_predictor(net, 0), invalid_option);
  // A v- or x₀-trained net: the same call, its output declared as what it is.
  auto v_model = ddpm_predictor(net, Parameterization::velocity);
  CHECK(v_model.prediction == Parameterization::velocity);
  CHECK(torch::equal(v_model.fn(x, Timestep{250}, c), model.fn(x, Timestep{250}, c)));
  CHECK(ddpm_predictor(tnet, Parameterization::sample, 100).prediction == Parameterization::sample);
  CHECK_THROWS_AS(ddpm_predictor(net, Parameterization::velocity, 0), invalid_option);
}

namespace {
/// A class-conditioned net that does not say how many classes it has.
struct AnonymousClassesImpl : torch::nn::Module {
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) { return x; }
};
TORCH_MODULE(AnonymousClasses);
}  // namespace

TEST_CASE_FIXTURE(SingleThread, "the adapters take the class count from the net: NoCondition is its all-zero c") {
  torch::manual_seed(18);
  ClassConditionalUNet net(UNetOptions{.hidden = 4, .num_classes = 3});
  net->eval();
  CHECK(num_classes(net) == 3);
  const auto x = noise_images(2, 8);
  torch::NoGradGuard g;
  const auto zeros = null_condition(2, num_classes(net));
  CHECK(zeros.sizes() == torch::IntArrayRef{2, 3});
  CHECK(torch::equal(flow_velocity(net).fn(x, FlowTime{0.5}, NoCondition{}), net(x, torch::full({2, 1}, 0.5), zeros)));
  CHECK(torch::equal(ddpm_noise_predictor(net, 10).fn(x, Timestep{5}, NoCondition{}),
                     net(x, torch::full({2, 1}, 0.5), zeros)));
  const auto c = one_hot(torch::tensor({2, 0}, torch::kLong), num_classes(net));
  CHECK(torch::equal(flow_velocity(net).fn(x, FlowTime{0.5}, c), net(x, torch::full({2, 1}, 0.5), c)));
  // Without options().num_classes there is no "no class" vector to build: only a tensor c is accepted.
  using Anonymous = decltype(flow_velocity(AnonymousClasses()).fn);
  static_assert(std::invocable<Anonymous&, const torch::Tensor&, FlowTime, const torch::Tensor&>);
  static_assert(!std::invocable<Anonymous&, const torch::Tensor&, FlowTime, const NoCondition&>);
  static_assert(!DeclaresClasses<AnonymousClasses>);
  static_assert(DeclaresClasses<ClassConditionalUNet>);
}

TEST_CASE_FIXTURE(SingleThread, "flow sampler with classifier-free guidance (γ = 5) on the class UNet: finite, right shape (seed §2.6)") {
  torch::manual_seed(14);
  ClassConditionalUNet net(UNetOptions{.hidden = 8});
  const auto labels = torch::tensor({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, torch::kLong);
  calibrate_batchnorm(net, noise_images(10, 4), torch::rand({10, 1}), one_hot(labels, 10));
  auto model = flow_velocity(net);
  const auto onehot = one_hot(labels, 10);
  const auto zeros = null_condition(10, 10);
  const auto proto = torch::zeros({10, 1, 28, 28});
  net->train();  // the adapter evaluates in eval mode and restores this

  Sampler s{FlowSchedule<Euler>{FlowGrid::uniform(10)}, ClassifierFree<torch::Tensor>{5.0, zeros},
            SinglePrompt<torch::Tensor>{onehot}};
  std::size_t calls = 0;
  Generator gen(7);
  const auto out = s.sample(model, PureNoise<torch::Tensor>{proto}, gen,
                            [&](const StepInfo<torch::Tensor>& info) { calls = info.model_calls; });
  CHECK(out.sizes() == torch::IntArrayRef{10, 1, 28, 28});
  CHECK(torch::isfinite(out).all().item<bool>());
  CHECK(calls == 10);  // conditional and unconditional halves in one batched call per step
  CHECK(net->is_training());

  // γ = 1 is the conditional model alone: same result as sampling without guidance.
  Generator g1(7), g2(7);
  const auto guided1 = Sampler{FlowSchedule<Euler>{FlowGrid::uniform(5)}, ClassifierFree<torch::Tensor>{1.0, zeros},
                               SinglePrompt<torch::Tensor>{onehot}}
                           .sample(model, PureNoise<torch::Tensor>{proto}, g1);
  const auto plain = Sampler{FlowSchedule<Euler>{FlowGrid::uniform(5)}, NoGuidance{}, SinglePrompt<torch::Tensor>{onehot}}
                         .sample(model, PureNoise<torch::Tensor>{proto}, g2);
  CHECK(torch::allclose(guided1, plain, 1e-4, 1e-5));
  // γ = 5 differs from γ = 1.
  Generator g3(7);
  const auto guided5 = Sampler{FlowSchedule<Euler>{FlowGrid::uniform(5)}, ClassifierFree<torch::Tensor>{5.0, zeros},
                               SinglePrompt<torch::Tensor>{onehot}}
                           .sample(model, PureNoise<torch::Tensor>{proto}, g3);
  MESSAGE("max |guided(5) - guided(1)| = " << (guided5 - plain).abs().max().item<double>());
  CHECK((guided5 - plain).abs().max().item<double>() > 1e-2);
}

TEST_CASE_FIXTURE(SingleThread, "flow sampler with the time-only UNet (seed §2.3) and a float64 sampler state") {
  torch::manual_seed(15);
  TimeConditionalUNet net(UNetOptions{.hidden = 8});
  calibrate_batchnorm(net, noise_images(4, 5), torch::rand({4, 1}));
  auto model = flow_velocity(net);
  Generator gen(3);
  const auto out = Sampler{FlowSchedule<Euler>{FlowGrid::uniform(8)}}.sample(
      model, PureNoise<torch::Tensor>{torch::zeros({4, 1, 28, 28}, torch::kFloat64)}, gen);
  CHECK((out.scalar_type() == torch::kFloat64));
  CHECK(out.sizes() == torch::IntArrayRef{4, 1, 28, 28});
  CHECK(torch::isfinite(out).all().item<bool>());
}

TEST_CASE_FIXTURE(SingleThread, "DDPM sampler with classifier-free guidance on the class UNet's noise predictor") {
  torch::manual_seed(16);
  ClassConditionalUNet net(UNetOptions{.hidden = 8});
  const auto c = one_hot(torch::tensor({3, 3, 5}, torch::kLong), 10);
  calibrate_batchnorm(net, noise_images(3, 6), torch::rand({3, 1}), c);
  auto model = ddpm_noise_predictor(net);
  Sampler s{DiffusionSchedule<DDPMStep>{NoiseSchedule::cosine(), DiffusionGrid::spaced(10)},
            ClassifierFree<torch::Tensor>{3.0, null_condition(3, 10)}, SinglePrompt<torch::Tensor>{c}};
  Generator gen(5);
  const auto out = s.sample(model, PureNoise<torch::Tensor>{torch::zeros({3, 1, 28, 28})}, gen);
  CHECK(out.sizes() == torch::IntArrayRef{3, 1, 28, 28});
  CHECK(torch::isfinite(out).all().item<bool>());
}

TEST_CASE_FIXTURE(SingleThread, "one_step_denoiser: one Euler step from t = 0 to 1 is D(ε), the seed's §1.2.3 sample") {
  torch::manual_seed(17);
  UnconditionalUNet net(UNetOptions{.hidden = 8});
  calibrate_batchnorm(net, noise_images(2, 7));
  auto model = one_step_denoiser(net);
  CHECK(model.prediction == Parameterization::sample);
  const auto proto = torch::zeros({2, 1, 28, 28});
  Generator gen(21);
  const auto out = Sampler{FlowSchedule<Euler>{FlowGrid::uniform(1)}}.sample(model, PureNoise<torch::Tensor>{proto}, gen);
  // The sampler's start noise comes from the first stream split off the generator.
  Generator again(21);
  Generator start(again.next_u64());
  const auto eps = ops::randn_like(proto, start);
  net->eval();
  torch::NoGradGuard g;
  CHECK(torch::allclose(out, net(eps), 1e-5, 1e-5));
  // The time argument is ignored: the same under a diffusion time.
  CHECK(torch::equal(model.fn(eps, Timestep{10}, NoCondition{}), model.fn(eps, FlowTime{0.3}, NoCondition{})));
}
}  // namespace test_adapter
