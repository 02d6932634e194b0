#pragma once
// The generic trainer of seed Part B (§1.2.1, §2.2, §2.5): Adam, optional exponential learning
// rate decay per epoch, any objective (objectives.hpp), any data source (data_source.hpp),
// checkpoints (checkpoint.hpp), callbacks.
//
//   torch::manual_seed(0);                                   // model initialisation
//   scoreflow::models::ClassConditionalUNet net(scoreflow::models::UNetOptions{.hidden = 64});
//   scoreflow::training::TrainOptions o{.epochs = 10, .batch_size = 64, .lr = 1e-2,
//                                       .lr_decay = scoreflow::training::seed_lr_decay(10)};
//   scoreflow::training::Trainer trainer(net, scoreflow::training::FlowMatching{scoreflow::training::ClassDropout{}}, o);
//   trainer.fit(scoreflow::training::tensor_source(images, labels), {.on_epoch_end = sample_grid});
//
// Determinism: for one seed the data order (shuffled_order in data/batching.hpp, our own
// Fisher–Yates on scoreflow's portable generator) and every random draw of the objective
// (TrainingRng, training_rng.hpp: a CPU generator) are fixed, on every device. A run stopped
// (max_steps) and resumed from its checkpoint repeats the uninterrupted run exactly on the CPU,
// mid-epoch too: the checkpoint records the position and the data source reopens the epoch and
// skips the batches already seen.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <utility>

#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/device.hpp"
#include "scoreflow/torch/training/checkpoint.hpp"
#include "scoreflow/torch/training/data_source.hpp"
#include "scoreflow/torch/training/objectives.hpp"

namespace scoreflow::training {

// ---- options and reports --------------------------------------------------------------------

/// The seed's decay: γ = 0.1^(1/epochs), so the learning rate falls tenfold over the run (§2.2).
inline double seed_lr_decay(std::int64_t epochs) {
  scoreflow::detail::require(epochs >= 1, "epochs", epochs, "must be positive");
  return std::pow(0.1, 1.0 / static_cast<double>(epochs));
}

using scoreflow::default_device;  // device.hpp; TrainOptions{.device = default_device()}

struct TrainOptions {
  std::int64_t epochs = 1;
  std::int64_t batch_size = 256;             ///< passed to the data source (seed: 256 / 64)
  double lr = 1e-4;                          ///< Adam learning rate (seed §1.2.1: 1e-4; §2.2: 1e-2)
  std::optional<double> lr_decay{};          ///< γ: lr · γ^epoch (seed §2.2: seed_lr_decay(epochs))
  std::uint64_t seed = 0;                    ///< noise stream and data order
  torch::Device device = torch::kCPU;        ///< e.g. default_device()
  std::int64_t log_every = 100;              ///< on_progress every this many steps
  std::filesystem::path checkpoint_dir{};    ///< empty: no automatic checkpoints
  std::int64_t checkpoint_every = 0;         ///< steps between checkpoints (0: at epoch ends only)
  std::optional<std::int64_t> max_steps{};   ///< stop after this many optimizer steps in total
};

/// What on_progress sees every log_every steps.
struct TrainProgress {
  std::int64_t step;                       ///< optimizer steps done
  std::int64_t epoch;                      ///< current epoch, 0-based
  std::int64_t epochs;                     ///< epochs in the run
  std::int64_t batch;                      ///< batches of this epoch done
  double loss;                             ///< loss of the last step
  double lr;                               ///< current learning rate
  double images_per_second;                ///< since the previous report
  std::optional<std::int64_t> total_steps; ///< when the data source knows its length
  std::optional<double> eta_seconds;       ///< likewise
};

/// What on_epoch_end sees after each epoch.
struct EpochSummary {
  std::int64_t epoch;    ///< epochs completed, 1-based (1 after the first epoch)
  std::int64_t step;     ///< optimizer steps done
  double mean_loss;      ///< mean training loss over the epoch
  double seconds;        ///< wall time of the epoch (in this process)
};

struct TrainCallbacks {
  /// Every step: for loss logs (e.g. a CSV writer).
  std::function<void(std::int64_t step, std::int64_t epoch, double loss)> on_loss{};
  /// Every log_every steps: progress (images/s, ETA).
  std::function<void(const TrainProgress&)> on_progress{};
  /// After each epoch, after its checkpoint: e.g. sample after epochs 1, 5, 10.
  std::function<void(const EpochSummary&)> on_epoch_end{};
};

namespace detail {
inline TrainOptions checked(TrainOptions o) {
  using scoreflow::detail::require;
  require(o.epochs >= 1, "epochs", o.epochs, "must be positive");
  require(o.batch_size >= 1, "batch_size", o.batch_size, "must be positive");
  require(std::isfinite(o.lr) && o.lr > 0.0, "lr", o.lr, "must be finite and positive");
  if (o.lr_decay)
    require(std::isfinite(*o.lr_decay) && *o.lr_decay > 0.0 && *o.lr_decay <= 1.0, "lr_decay", *o.lr_decay,
            "must lie in (0, 1]");
  require(o.log_every >= 1, "log_every", o.log_every, "must be positive");
  require(o.checkpoint_every >= 0, "checkpoint_every", o.checkpoint_every, "must be non-negative");
  if (o.max_steps) require(*o.max_steps >= 0, "max_steps", *o.max_steps, "must be non-negative");
  return o;
}

template <class Net>
Net placed(Net net, const torch::Device& device) {
  net->to(device);
  return net;
}

/// Throughput and ETA for on_progress: images and steps since the previous report.
class ProgressMeter {
 public:
  using clock = std::chrono::steady_clock;
  /// total: the steps the run will do, when the data source knows its length.
  explicit ProgressMeter(std::optional<std::int64_t> total) : total_(total) {}

  void count_step(std::int64_t images) {
    images_ += images;
    ++steps_;
  }
  /// The report after `state.step` steps; starts the next interval.
  TrainProgress report(const TrainingState& state, std::int64_t epochs, double loss, double lr) {
    const auto now = clock::now();
    const double secs = std::chrono::duration<double>(now - last_).count();
    TrainProgress p{state.step, state.epoch, epochs, state.batch_in_epoch, loss, lr,
                    secs > 0 ? static_cast<double>(images_) / secs : 0.0, total_, std::nullopt};
    if (total_ && steps_ > 0)  // the recent rate, applied to the steps left
      p.eta_seconds = static_cast<double>(std::max<std::int64_t>(*total_ - state.step, 0)) * secs /
                      static_cast<double>(steps_);
    last_ = now;
    images_ = steps_ = 0;
    return p;
  }

 private:
  std::optional<std::int64_t> total_;
  clock::time_point last_ = clock::now();
  std::int64_t images_ = 0, steps_ = 0;
};
}  // namespace detail

// ---- the trainer ----------------------------------------------------------------------------

/// Trains `net` (a module holder) on `objective` with Adam. One class for every Part B model.
template <class Net, class Objective>
class Trainer {
 public:
  Trainer(Net net, Objective objective, TrainOptions options)
      : options_(detail::checked(std::move(options))),
        net_(detail::placed(std::move(net), options_.device)),
        objective_(std::move(objective)),
        optimizer_(net_->parameters(), torch::optim::AdamOptions(options_.lr)),
        rng_(options_.seed) {
    state_.seed = options_.seed;
  }

  /// Trains until options.epochs are complete or options.max_steps steps are done (continuing
  /// from the current state, e.g. after load_checkpoint). Returns the state reached.
  const TrainingState& fit(const DataSource& data, const TrainCallbacks& callbacks = {}) {
    if (!data.open) throw invalid_option("fit: data.open is empty");
    net_->train();
    detail::ProgressMeter meter(planned_steps(data));
    bool stopped = false;
    while (state_.epoch < options_.epochs && !stopped) {
      set_lr(lr_at(state_.epoch));
      BatchStream stream = reopen_epoch(data);
      const auto epoch_start = std::chrono::steady_clock::now();
      stopped = !train_epoch(stream, callbacks, meter);
      if (!stopped) finish_epoch(epoch_start, callbacks);
    }
    if (stopped && has_checkpoint_dir()) save_checkpoint(checkpoint_path());
    return state_;
  }

  /// One optimizer step on one batch; returns its loss. Throws non_finite_error on NaN/inf.
  double train_step(const Batch& raw) {
    Batch b{raw.images.defined() ? raw.images.to(options_.device, torch::kFloat32) : raw.images,
            raw.labels.defined() ? raw.labels.to(options_.device, torch::kLong) : raw.labels};
    optimizer_.zero_grad();
    torch::Tensor loss = objective_(net_, b, rng_);
    if (!loss.defined() || loss.numel() != 1)
      throw shape_error("train_step: the objective must return a scalar loss");
    const double value = loss.item<double>();
    if (!std::isfinite(value))  // checked before the update, so the weights stay finite
      throw non_finite_error(scoreflow::detail::concat("training loss at step ", state_.step + 1, " is ", value,
                                                       " (NaN in the data, or a learning rate too high?)"));
    loss.backward();
    optimizer_.step();
    return value;
  }

  /// Saves model, optimizer, position and RNG state (atomically).
  void save_checkpoint(const std::filesystem::path& file) const {
    training::save_checkpoint(file, *net_, optimizer_, state_, rng_);
  }

  /// Restores a checkpoint written by a trainer of the same configuration and seed (through
  /// training::load_checkpoint, with options.seed expected). The position and RNG are restored
  /// into temporaries first, so a checkpoint that fails leaves this trainer where it was.
  void load_checkpoint(const std::filesystem::path& file) {
    TrainingState loaded;
    TrainingRng rng(options_.seed);
    training::load_checkpoint(file, *net_, optimizer_, loaded, rng, options_.seed);
    state_ = loaded;
    rng_ = std::move(rng);
    set_lr(lr_at(state_.epoch));
  }

  /// Loads checkpoint_path() if it exists; returns whether it did.
  bool resume() {
    if (!has_checkpoint_dir() || !std::filesystem::exists(checkpoint_path())) return false;
    load_checkpoint(checkpoint_path());
    return true;
  }

  /// options.checkpoint_dir / "checkpoint.pt".
  [[nodiscard]] std::filesystem::path checkpoint_path() const { return options_.checkpoint_dir / "checkpoint.pt"; }

  /// lr · γ^epoch.
  [[nodiscard]] double lr_at(std::int64_t epoch) const {
    return options_.lr_decay ? options_.lr * std::pow(*options_.lr_decay, static_cast<double>(epoch)) : options_.lr;
  }
  [[nodiscard]] double current_lr() const {
    return static_cast<const torch::optim::AdamOptions&>(optimizer_.param_groups().front().options()).lr();
  }

  Net& net() { return net_; }
  torch::optim::Adam& optimizer() { return optimizer_; }
  [[nodiscard]] const TrainingState& state() const { return state_; }
  [[nodiscard]] const TrainOptions& options() const { return options_; }
  const Objective& objective() const { return objective_; }

 private:
  /// The steps fit will have done at the end, if the data source knows its length.
  [[nodiscard]] std::optional<std::int64_t> planned_steps(const DataSource& data) const {
    std::optional<std::int64_t> total;
    if (data.batches_per_epoch) total = options_.epochs * data.batches_per_epoch(options_.batch_size);
    if (options_.max_steps) total = total ? std::min(*total, *options_.max_steps) : *options_.max_steps;
    return total;
  }

  /// The current epoch's stream, past the batches already trained on (a resumed run continues
  /// mid-epoch with exactly the batches the uninterrupted run would have seen next).
  BatchStream reopen_epoch(const DataSource& data) const {
    BatchStream stream = data.open(EpochRequest{state_.epoch, options_.batch_size, state_.seed});
    for (std::int64_t k = 0; k < state_.batch_in_epoch; ++k)
      if (!stream())
        throw invalid_option(scoreflow::detail::concat("fit: the data source ended epoch ", state_.epoch, " after ",
                                                       k, " batches, but the run had done ", state_.batch_in_epoch,
                                                       " (different data or batch size?)"));
    return stream;
  }

  /// Trains on the rest of the epoch's batches; false when max_steps stopped it first (the batch
  /// fetched at the limit is left untrained: a resumed run reopens the epoch and fetches it again).
  bool train_epoch(BatchStream& stream, const TrainCallbacks& callbacks, detail::ProgressMeter& meter) {
    while (std::optional<Batch> batch = stream()) {
      if (limit_reached()) return false;
      const auto n = batch->images.defined() ? batch->images.size(0) : 0;
      const double loss = train_step(*batch);
      ++state_.step;
      ++state_.batch_in_epoch;
      state_.epoch_loss_sum += loss;
      meter.count_step(n);
      if (callbacks.on_loss) callbacks.on_loss(state_.step, state_.epoch, loss);
      if (callbacks.on_progress && state_.step % options_.log_every == 0)
        callbacks.on_progress(meter.report(state_, options_.epochs, loss, current_lr()));
      if (options_.checkpoint_every > 0 && state_.step % options_.checkpoint_every == 0 && has_checkpoint_dir())
        save_checkpoint(checkpoint_path());
    }
    return true;
  }

  /// Closes a completed epoch: advances the position, checkpoints, then tells on_epoch_end.
  void finish_epoch(std::chrono::steady_clock::time_point start, const TrainCallbacks& callbacks) {
    if (state_.batch_in_epoch == 0)
      throw invalid_option(
          scoreflow::detail::concat("fit: the data source yielded no batch for epoch ", state_.epoch));
    const EpochSummary summary{state_.epoch + 1, state_.step,
                               state_.epoch_loss_sum / static_cast<double>(state_.batch_in_epoch),
                               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
    ++state_.epoch;
    state_.batch_in_epoch = 0;
    state_.epoch_loss_sum = 0.0;
    if (has_checkpoint_dir()) save_checkpoint(checkpoint_path());
    if (callbacks.on_epoch_end) callbacks.on_epoch_end(summary);
    net_->train();  // in case the callback switched modes
  }

  [[nodiscard]] bool has_checkpoint_dir() const { return !options_.checkpoint_dir.empty(); }
  [[nodiscard]] bool limit_reached() const { return options_.max_steps && state_.step >= *options_.max_steps; }
  void set_lr(double lr) {
    for (auto& group : optimizer_.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
  }

  TrainOptions options_;
  Net net_;
  Objective objective_;
  torch::optim::Adam optimizer_;
  TrainingRng rng_;
  TrainingState state_;
};

}  // namespace scoreflow::training
