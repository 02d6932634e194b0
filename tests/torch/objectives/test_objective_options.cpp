// Training options of issue 15 outside the trainer: the flow objective's time sampling
// (uniform, SD3's logit-normal), min-SNR-γ loss weighting of the diffusion objective, and the
// GroupNorm variant of the seed's UNet.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "torch/model_helpers.hpp"
#include "scoreflow/torch/models/inference.hpp"
#include "scoreflow/torch/models/unet.hpp"
#include "scoreflow/torch/training/batchnorm_statistics.hpp"
#include "scoreflow/torch/training/objectives.hpp"

namespace test_objective_options {

namespace tr = scoreflow::training;
namespace sm = scoreflow::models;
using sftest::SingleThread;

namespace {

/// A "net" for the objectives that records the times it is called with and predicts zeros.
struct RecordingTimeNetImpl : torch::nn::Module {
  torch::Tensor seen_t;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) {
    seen_t = t.clone();
    return torch::zeros_like(x);
  }
};
TORCH_MODULE(RecordingTimeNet);

std::vector<double> column(const torch::Tensor& t) {
  const auto d = t.to(torch::kFloat64).contiguous().view({-1});
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

}  // namespace

TEST_CASE("TimeSampling: logit-normal times have logit(1 − t) ~ N(m, s²) (SD3 §3.1 Eq. 19); uniform is the seed's U[0, 1)") {
  tr::TrainingRng rng(3);
  const std::int64_t n = 40000;
  const auto t = tr::TimeSampling::logit_normal(0.5, 0.8).draw(n, rng, torch::TensorOptions(torch::kFloat64));
  REQUIRE(t.sizes() == torch::IntArrayRef{n, 1});
  CHECK(t.min().item<double>() > 0.0);
  CHECK(t.max().item<double>() < 1.0);
  const auto u = torch::log((1 - t) / t);  // logit of the noise level 1 − t
  CHECK(u.mean().item<double>() == doctest::Approx(0.5).epsilon(0.02));
  CHECK(u.std().item<double>() == doctest::Approx(0.8).epsilon(0.02));
  // m > 0 puts more samples on the noisy half (t < 1/2), as in SD3's convention.
  CHECK(t.lt(0.5).to(torch::kFloat64).mean().item<double>() > 0.6);

  tr::TrainingRng a(5), b(5);
  const auto uniform = tr::TimeSampling::uniform().draw(8, a, torch::TensorOptions(torch::kFloat32));
  CHECK(torch::equal(uniform, b.uniform(8, torch::TensorOptions(torch::kFloat32))));
}

TEST_CASE("FlowMatching draws t from its TimeSampling, and the default objective's stream is unchanged") {
  torch::manual_seed(0);
  const scoreflow::Batch batch{torch::rand({6, 1, 4, 4}), {}};
  RecordingTimeNet net;
  tr::TrainingRng rng(11), replay(11);
  const tr::FlowMatching<> flow(tr::NoClass{}, tr::TimeSampling::logit_normal(-1.0, 0.5));
  (void)flow(net, batch, rng);
  (void)replay.normal_like(batch.images);  // x₀ first, then the times
  const auto expected = torch::sigmoid(-(-1.0 + 0.5 * replay.normal(6, torch::TensorOptions(torch::kFloat32))));
  CHECK(torch::allclose(net->seen_t, expected));

  tr::TrainingRng r1(2), r2(2);
  (void)tr::FlowMatching<>{}(net, batch, r1);
  (void)r2.normal_like(batch.images);
  CHECK(torch::equal(net->seen_t, r2.uniform(6, torch::TensorOptions(torch::kFloat32))));
}

TEST_CASE("TimeSampling and LossWeighting reject bad options by name") {
  CHECK_THROWS_WITH_AS(tr::TimeSampling::logit_normal(0.0, 0.0), doctest::Contains("logit_normal scale"),
                       scoreflow::invalid_option);
  CHECK_THROWS_WITH_AS(tr::TimeSampling::logit_normal(NAN, 1.0), doctest::Contains("logit_normal location"),
                       scoreflow::invalid_option);
  // An aggregate-built option is checked by the objective that takes it.
  const tr::TimeSampling bad{tr::TimeSampling::Kind::logit_normal, 0.0, -1.0};
  CHECK_THROWS_AS(tr::FlowMatching<>(tr::NoClass{}, bad), scoreflow::invalid_option);
  CHECK_THROWS_WITH_AS(tr::LossWeighting::min_snr(-5.0), doctest::Contains("min_snr gamma"), scoreflow::invalid_option);
  CHECK_THROWS_AS(tr::DiffusionObjective<tr::NoClass>(scoreflow::NoiseSchedule::cosine(), {},
                                                      scoreflow::Parameterization::noise, tr::LossWeighting{0.0}),
                  scoreflow::invalid_option);
}

TEST_CASE("LossWeighting::min_snr: the weights of Hang et al. 2023 for each target") {
  const auto w = tr::LossWeighting::min_snr(5.0);
  using P = scoreflow::Parameterization;
  // ᾱ = 0.5: SNR = 1 < γ, the x₀-weight is SNR.
  CHECK(w.weight(0.5, P::sample) == doctest::Approx(1.0));
  CHECK(w.weight(0.5, P::noise) == doctest::Approx(1.0));
  CHECK(w.weight(0.5, P::velocity) == doctest::Approx(0.5));
  // ᾱ = 0.99: SNR = 99 > γ, clipped to 5.
  CHECK(w.weight(0.99, P::sample) == doctest::Approx(5.0));
  CHECK(w.weight(0.99, P::noise) == doctest::Approx(5.0 / 99.0));
  CHECK(w.weight(0.99, P::velocity) == doctest::Approx(5.0 / 100.0));
  // The limits stay finite: pure noise (SNR 0) and ᾱ = 1.
  CHECK(w.weight(0.0, P::noise) == doctest::Approx(1.0));
  CHECK(w.weight(0.0, P::sample) == doctest::Approx(0.0));
  CHECK(w.weight(1.0, P::noise) == 0.0);
  CHECK(tr::LossWeighting::uniform().weight(0.99, P::noise) == 1.0);
}

TEST_CASE("DiffusionObjective with min-SNR weighting: the loss is the weighted per-sample MSE") {
  torch::manual_seed(4);
  const scoreflow::Batch batch{torch::rand({5, 1, 4, 4}), {}};
  const auto schedule = scoreflow::NoiseSchedule::cosine();
  RecordingTimeNet net;  // predicts 0, so the ε-loss of sample i is mean(ε_i²)
  tr::TrainingRng rng(9), replay(9);
  const tr::DiffusionObjective<tr::NoClass> objective(schedule, {}, scoreflow::Parameterization::noise,
                                                      tr::LossWeighting::min_snr(5.0));
  const double loss = objective(net, batch, rng).item<double>();
  const auto t = replay.integers(5, static_cast<std::int64_t>(schedule.size()));
  const auto eps = replay.normal_like(batch.images);
  double expected = 0;
  for (std::int64_t i = 0; i < 5; ++i) {
    const double ab = schedule.alpha_bar(static_cast<int>(t[i].item<std::int64_t>()));
    const double snr = ab / (1 - ab);
    expected += std::min(snr, 5.0) / snr * eps[i].pow(2).mean().item<double>() / 5.0;
  }
  CHECK(loss == doctest::Approx(expected).epsilon(1e-5));
  // Uniform weighting is the plain MSE.
  tr::TrainingRng r1(9);
  const tr::DiffusionObjective<tr::NoClass> plain(schedule, {}, scoreflow::Parameterization::noise);
  CHECK(plain(net, batch, r1).item<double>() == doctest::Approx(eps.pow(2).mean().item<double>()).epsilon(1e-6));
}

TEST_CASE_FIXTURE(SingleThread, "UNet with GroupNorm: per-sample normalisation, its own weights, options checked") {
  torch::manual_seed(2);
  sm::TimeConditionalUNet gn(sm::UNetOptions{.hidden = 8, .norm = sm::Normalization::group(4)});
  std::int64_t group_norms = 0, batch_norms = 0;
  for (const auto& m : gn->modules()) {
    group_norms += m->as<torch::nn::GroupNormImpl>() != nullptr;
    batch_norms += m->as<torch::nn::BatchNorm2dImpl>() != nullptr;
  }
  CHECK(group_norms == 17);  // every Conv, DownConv, UpConv and Unflatten of the backbone
  CHECK(batch_norms == 0);
  CHECK(gn->named_parameters().contains("backbone.in_block.conv1.gn.weight"));

  // In training mode a sample's output does not depend on the rest of the batch (BatchNorm's does).
  const auto x = torch::rand({4, 1, 28, 28}), t = torch::rand({4, 1});
  gn->train();
  const auto together = gn->forward(x, t).slice(0, 0, 1);
  const auto alone = gn->forward(x.slice(0, 0, 1), t.slice(0, 0, 1));
  CHECK(torch::allclose(together, alone, 1e-5, 1e-5));
  sm::TimeConditionalUNet bn(sm::UNetOptions{.hidden = 8});
  bn->train();
  CHECK_FALSE(torch::allclose(bn->forward(x, t).slice(0, 0, 1), bn->forward(x.slice(0, 0, 1), t.slice(0, 0, 1)),
                              1e-3, 1e-3));

  // Train and eval modes compute the same function; folding has nothing to fold.
  gn->eval();
  torch::NoGradGuard no_grad;
  const auto before = gn->forward(x, t);
  CHECK(torch::allclose(before.slice(0, 0, 1), together, 1e-5, 1e-5));
  CHECK(sm::fold_batchnorm(gn) == 0);
  CHECK(torch::equal(gn->forward(x, t), before));

  CHECK_THROWS_WITH_AS(sm::TimeConditionalUNet(sm::UNetOptions{.hidden = 12, .norm = sm::Normalization::group(8)}),
                       doctest::Contains("GroupNorm groups = 8"), scoreflow::invalid_option);
  CHECK_THROWS_AS(sm::Conv(sm::BlockOptions{3, 6, sm::Normalization::group(0)}), scoreflow::invalid_option);
}

TEST_CASE_FIXTURE(SingleThread, "recalibrate_batchnorm: the statistics of the current weights, from the objective's inputs") {
  torch::manual_seed(6);
  sm::TimeConditionalUNet net(sm::UNetOptions{.hidden = 8});
  const auto images = torch::rand({64, 1, 28, 28});
  const auto data = tr::tensor_source(images, torch::zeros({64}, torch::kLong));
  const tr::FlowMatching<> objective;
  // Stale statistics, as an EMA's copied buffers are for the averaged weights.
  for (const auto& m : net->modules())
    if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) bn->running_mean.fill_(5.0), bn->running_var.fill_(9.0);
  const tr::RecalibrationOptions options{.batches = 4, .batch_size = 16, .seed = 3};
  CHECK(tr::recalibrate_batchnorm(net, objective, data, options) == 17);
  CHECK_FALSE(net->is_training());
  // Oracle: the exact mean over the 4 batches of each layer's batch means, from the same draws.
  auto* first = net->backbone->in_block->conv1->bn.get();
  CHECK(first->options.momentum().has_value());  // restored
  CHECK(first->num_batches_tracked.item<std::int64_t>() == 4);
  sm::TimeConditionalUNet copy(sm::UNetOptions{.hidden = 8});
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < net->parameters().size(); ++i) copy->parameters()[i].copy_(net->parameters()[i]);
  }
  std::vector<torch::Tensor> means;
  auto hook = copy->backbone->in_block->conv1;
  tr::TrainingRng rng(3);
  const auto stream = data.open(tr::EpochRequest{0, 16, 3});
  copy->train();
  torch::NoGradGuard no_grad;
  for (int k = 0; k < 4; ++k) {
    const auto b = stream();
    REQUIRE(b);
    // The objective's inputs for this batch, drawn as recalibrate_batchnorm's objective call drew them.
    const auto x1 = b->images;
    const auto x0 = rng.normal_like(x1);
    const auto t = rng.uniform(x1.size(0), torch::TensorOptions(torch::kFloat32));
    const auto xt = (1 - t.view({-1, 1, 1, 1})) * x0 + t.view({-1, 1, 1, 1}) * x1;
    means.push_back(hook->conv(xt).mean({0, 2, 3}));
  }
  CHECK(torch::allclose(first->running_mean, torch::stack(means).mean(0), 1e-4, 1e-5));
  // A GroupNorm net has nothing to recalibrate.
  sm::TimeConditionalUNet gn(sm::UNetOptions{.hidden = 8, .norm = sm::Normalization::group(4)});
  CHECK(tr::recalibrate_batchnorm(gn, objective, data, options) == 0);
  CHECK_THROWS_WITH_AS(tr::recalibrate_batchnorm(net, objective, data, {.batches = 0}),
                       doctest::Contains("recalibration batches"), scoreflow::invalid_option);
}
}  // namespace test_objective_options
