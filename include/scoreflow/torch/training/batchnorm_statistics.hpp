#pragma once
// BatchNorm statistics for weights that were never trained as such: the EMA of the weights
// (ema.hpp) copies the live net's running mean and variance, which describe the live weights'
// activations, not the average's. recalibrate_batchnorm recomputes them for the net as it is
// now, as torch.optim.swa_utils.update_bn does for averaged weights (Izmailov et al. 2018,
// "Averaging Weights Leads to Wider Optima and Better Generalization", §3.2): every BatchNorm's
// statistics are reset, then accumulated as an exact average (momentum = none) over `batches`
// training batches passed through the objective in training mode without gradients — the
// objective draws the inputs (noise level, noise, class dropout) exactly as in training, from
// its own stream, so the trainer's random stream is untouched.
#include <cstdint>
#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/training/data_source.hpp"
#include "scoreflow/torch/training/training_rng.hpp"

namespace scoreflow::training {

struct RecalibrationOptions {
  std::int64_t batches = 50;      ///< training batches to average over
  std::int64_t batch_size = 256;
  std::uint64_t seed = 1;         ///< the objective's draws and the data order of the pass
  torch::Device device = torch::kCPU;
};

/// The mechanism under recalibrate_batchnorm (and the evaluator's "precise BN"): every
/// BatchNorm2d in `net` is reset to an exact cumulative average (momentum = none), `passes()`
/// runs the forward calls whose batch statistics it averages (without gradients; the caller
/// sets the mode), then each layer gets its momentum back. Returns the number of layers; with
/// none, `passes` is not run.
template <class Net, class Passes>
std::int64_t recompute_batchnorm_statistics(Net& net, Passes&& passes) {
  std::vector<std::pair<torch::nn::BatchNorm2dImpl*, c10::optional<double>>> layers;
  for (const auto& m : net->modules(/*include_self=*/true))
    if (auto* bn = m->template as<torch::nn::BatchNorm2dImpl>(); bn != nullptr) {
      layers.emplace_back(bn, bn->options.momentum());
      bn->reset_running_stats();
      bn->options.momentum(c10::nullopt);  // cumulative average over the passes
    }
  if (layers.empty()) return 0;
  {
    torch::NoGradGuard no_grad;
    passes();
  }
  for (auto& [bn, momentum] : layers) bn->options.momentum(momentum);
  return static_cast<std::int64_t>(layers.size());
}

/// Recomputes the running statistics of every BatchNorm2d in `net` (a module holder) for its
/// current weights; returns how many BatchNorm layers it recalibrated (0: nothing to do, e.g. a
/// GroupNorm net). Leaves the net in eval mode.
template <class Net, class Objective>
std::int64_t recalibrate_batchnorm(Net& net, const Objective& objective, const DataSource& data,
                                   const RecalibrationOptions& options = {}) {
  scoreflow::detail::require(options.batches >= 1, "recalibration batches", options.batches, "must be positive");
  scoreflow::detail::require(options.batch_size >= 1, "recalibration batch_size", options.batch_size,
                             "must be positive");
  if (!data.open) throw invalid_option("recalibrate_batchnorm: data.open is empty");
  TrainingRng rng(options.seed);
  net->train();
  const auto layers = recompute_batchnorm_statistics(net, [&] {
    std::int64_t done = 0;
    for (std::int64_t epoch = 0; done < options.batches; ++epoch) {
      BatchStream stream = data.open(EpochRequest{epoch, options.batch_size, options.seed});
      std::int64_t in_epoch = 0;
      while (done < options.batches) {
        std::optional<Batch> b = stream();
        if (!b) break;
        Batch on_device{b->images.defined() ? b->images.to(options.device, torch::kFloat32) : b->images,
                        b->labels.defined() ? b->labels.to(options.device, torch::kLong) : b->labels};
        (void)objective(net, on_device, rng);
        ++done, ++in_epoch;
      }
      if (in_epoch == 0) throw invalid_option("recalibrate_batchnorm: the data source yielded no batch");
    }
  });
  net->eval();
  return layers;
}

}  // namespace scoreflow::training
