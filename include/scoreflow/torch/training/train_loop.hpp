#pragma once
// The generic trainer of seed Part B (§1.2.1, §2.2, §2.5): Adam, optional exponential learning
// rate decay per epoch, any objective (objectives.hpp), any data source, checkpoints, callbacks.
//
//   torch::manual_seed(0);                                   // model initialisation
//   scoreflow::models::ClassConditionalUNet net(scoreflow::models::UNetOptions{.hidden = 64});
//   scoreflow::training::TrainOptions o{.epochs = 10, .batch_size = 64, .lr = 1e-2,
//                                       .lr_decay = scoreflow::training::seed_lr_decay(10)};
//   scoreflow::training::Trainer trainer(net, scoreflow::training::FlowMatching{scoreflow::training::ClassDropout{}}, o);
//   trainer.fit(scoreflow::training::tensor_source(images, labels), {.on_epoch_end = sample_grid});
//
// Determinism: for one seed the data order (shuffled_order, our own Fisher–Yates on scoreflow's
// portable generator) and every random draw of the objective (TrainingRng, a CPU generator) are
// fixed, on every device. A run stopped (max_steps) and resumed from its checkpoint repeats the
// uninterrupted run exactly on the CPU, mid-epoch too: the checkpoint records the position and
// the data source reopens the epoch and skips the batches already seen.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/training/checkpoint.hpp"
#include "scoreflow/torch/training/objectives.hpp"

namespace scoreflow::training {

// ---- data -----------------------------------------------------------------------------------

/// Which epoch a data source is asked for: batches of batch_size in an order fixed by
/// (seed, epoch).
struct EpochRequest {
  std::int64_t epoch;
  std::int64_t batch_size;
  std::uint64_t seed;
};

/// The batches of one epoch, one per call; std::nullopt ends the epoch.
using BatchStream = std::function<std::optional<TrainingBatch>()>;

/// Any data: `open` starts an epoch. The same request must give the same batches (the trainer
/// reopens an epoch and skips batches when resuming). `batches_per_epoch` (optional) lets the
/// trainer report an ETA from the first step on.
struct DataSource {
  std::function<BatchStream(const EpochRequest&)> open;
  std::function<std::int64_t(std::int64_t batch_size)> batches_per_epoch{};
};

/// The seed's "shuffle before each epoch": a permutation of 0 … n−1 determined by (seed, epoch)
/// alone (Fisher–Yates on scoreflow::Generator, identical on every platform).
inline std::vector<std::int64_t> shuffled_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch) {
  scoreflow::detail::require(n >= 0, "n", n, "must be non-negative");
  Generator gen(seed ^ (0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(epoch + 1)));
  return random_permutation(n, gen);  // the data layer's Fisher–Yates (no modulo bias)
}

/// An in-memory data source over images N×C×H×W and labels N (labels may be undefined),
/// reshuffled every epoch with shuffled_order; the last short batch is kept unless drop_last.
inline DataSource tensor_source(torch::Tensor images, torch::Tensor labels = {}, bool drop_last = false) {
  if (!images.defined() || images.dim() != 4 || images.size(0) == 0)
    throw shape_error("tensor_source: images must be a non-empty N×C×H×W tensor");
  if (labels.defined() && (labels.dim() != 1 || labels.size(0) != images.size(0)))
    throw shape_error(scoreflow::detail::concat("tensor_source: labels must be 1-D with ", images.size(0),
                                                " entries, got ", labels.sizes()));
  const auto n = images.size(0);
  DataSource source;
  source.open = [images, labels, drop_last, n](const EpochRequest& r) -> BatchStream {
    scoreflow::detail::require(r.batch_size > 0, "batch_size", r.batch_size, "must be positive");
    auto order = shuffled_order(n, r.seed, r.epoch);
    auto index = torch::tensor(order, torch::TensorOptions().dtype(torch::kLong)).to(images.device());
    return [images, labels, index, drop_last, n, bs = r.batch_size, pos = std::int64_t{0}]() mutable
               -> std::optional<TrainingBatch> {
      const auto count = std::min(bs, n - pos);
      if (count <= 0 || (drop_last && count < bs)) return std::nullopt;
      const auto idx = index.narrow(0, pos, count);
      pos += count;
      return TrainingBatch{images.index_select(0, idx),
                           labels.defined() ? labels.index_select(0, idx) : torch::Tensor{}};
    };
  };
  source.batches_per_epoch = [n, drop_last](std::int64_t bs) { return drop_last ? n / bs : (n + bs - 1) / bs; };
  return source;
}

/// A data source over a loader shaped like scoreflow::BatchLoader (dataset.hpp):
/// `batches_per_epoch()`, `options().batch_size`, and `epoch(e)` giving a random-access range of
/// batches with `.images` and `.labels`. The loader keeps its own shuffling seed (its order is a
/// function of (its seed, epoch), so resuming stays exact); the trainer's batch_size must equal
/// the loader's.
template <class Loader>
  requires requires(const Loader& l, std::int64_t e) {
    { l.batches_per_epoch() } -> std::convertible_to<std::int64_t>;
    { l.options().batch_size } -> std::convertible_to<std::int64_t>;
    { l.epoch(e).size() } -> std::convertible_to<std::int64_t>;
    { l.epoch(e)[e].images } -> std::convertible_to<torch::Tensor>;
    { l.epoch(e)[e].labels } -> std::convertible_to<torch::Tensor>;
  }
DataSource loader_source(Loader loader) {
  auto shared = std::make_shared<const Loader>(std::move(loader));
  DataSource source;
  source.open = [shared](const EpochRequest& r) -> BatchStream {
    const std::int64_t own = shared->options().batch_size;
    if (r.batch_size != own)
      throw invalid_option(
          scoreflow::detail::concat("loader_source: batch_size = ", r.batch_size,
                                    " (trainer options) differs from the loader's batch_size = ", own));
    using EpochRange = std::remove_cvref_t<decltype(shared->epoch(r.epoch))>;
    auto epoch = std::make_shared<const EpochRange>(shared->epoch(r.epoch));
    return [epoch, i = std::int64_t{0}]() mutable -> std::optional<TrainingBatch> {
      if (i >= static_cast<std::int64_t>(epoch->size())) return std::nullopt;
      auto b = (*epoch)[i++];
      return TrainingBatch{b.images, b.labels};
    };
  };
  source.batches_per_epoch = [shared](std::int64_t) { return static_cast<std::int64_t>(shared->batches_per_epoch()); };
  return source;
}

// ---- options and reports --------------------------------------------------------------------

/// The seed's decay: γ = 0.1^(1/epochs), so the learning rate falls tenfold over the run (§2.2).
inline double seed_lr_decay(std::int64_t epochs) {
  scoreflow::detail::require(epochs >= 1, "epochs", epochs, "must be positive");
  return std::pow(0.1, 1.0 / static_cast<double>(epochs));
}

/// CUDA when LibTorch sees a GPU, else the CPU.
inline torch::Device default_device() {
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

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
    using clock = std::chrono::steady_clock;
    net_->train();
    const std::optional<std::int64_t> per_epoch =
        data.batches_per_epoch ? std::optional(data.batches_per_epoch(options_.batch_size)) : std::nullopt;
    std::optional<std::int64_t> total;
    if (per_epoch) total = options_.epochs * *per_epoch;
    if (options_.max_steps) total = total ? std::min(*total, *options_.max_steps) : *options_.max_steps;

    auto last_report = clock::now();
    std::int64_t images_since = 0, steps_since = 0;
    bool stopped = false;
    while (state_.epoch < options_.epochs && !stopped) {
      set_lr(lr_at(state_.epoch));
      BatchStream stream = data.open(EpochRequest{state_.epoch, options_.batch_size, state_.seed});
      for (std::int64_t k = 0; k < state_.batch_in_epoch; ++k)
        if (!stream())
          throw invalid_option(scoreflow::detail::concat("fit: the data source ended epoch ", state_.epoch, " after ",
                                                         k, " batches, but the run had done ", state_.batch_in_epoch,
                                                         " (different data or batch size?)"));
      const auto epoch_start = clock::now();
      while (true) {
        std::optional<TrainingBatch> batch = stream();
        if (!batch) break;
        if (limit_reached()) {
          stopped = true;
          break;
        }
        const auto n = batch->images.defined() ? batch->images.size(0) : 0;
        const double loss = train_step(*batch);
        ++state_.step;
        ++state_.batch_in_epoch;
        state_.epoch_loss_sum += loss;
        images_since += n;
        ++steps_since;
        if (callbacks.on_loss) callbacks.on_loss(state_.step, state_.epoch, loss);
        if (callbacks.on_progress && state_.step % options_.log_every == 0) {
          const auto now = clock::now();
          const double secs = std::chrono::duration<double>(now - last_report).count();
          TrainProgress p{state_.step, state_.epoch, options_.epochs, state_.batch_in_epoch, loss,
                          current_lr(), secs > 0 ? static_cast<double>(images_since) / secs : 0.0, total,
                          std::nullopt};
          if (total && steps_since > 0)
            p.eta_seconds = static_cast<double>(std::max<std::int64_t>(*total - state_.step, 0)) * secs /
                            static_cast<double>(steps_since);
          callbacks.on_progress(p);
          last_report = now;
          images_since = steps_since = 0;
        }
        if (options_.checkpoint_every > 0 && state_.step % options_.checkpoint_every == 0 && has_checkpoint_dir())
          save_checkpoint(checkpoint_path());
      }
      if (stopped) break;
      if (state_.batch_in_epoch == 0)
        throw invalid_option(scoreflow::detail::concat("fit: the data source yielded no batch for epoch ",
                                                       state_.epoch));
      const EpochSummary summary{state_.epoch + 1, state_.step,
                                 state_.epoch_loss_sum / static_cast<double>(state_.batch_in_epoch),
                                 std::chrono::duration<double>(clock::now() - epoch_start).count()};
      ++state_.epoch;
      state_.batch_in_epoch = 0;
      state_.epoch_loss_sum = 0.0;
      if (has_checkpoint_dir()) save_checkpoint(checkpoint_path());
      if (callbacks.on_epoch_end) callbacks.on_epoch_end(summary);
      net_->train();  // in case the callback switched modes
    }
    if (stopped && has_checkpoint_dir()) save_checkpoint(checkpoint_path());
    return state_;
  }

  /// One optimizer step on one batch; returns its loss. Throws non_finite_error on NaN/inf.
  double train_step(const TrainingBatch& raw) {
    TrainingBatch b{raw.images.defined() ? raw.images.to(options_.device, torch::kFloat32) : raw.images,
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

  /// Restores a checkpoint written by a trainer of the same configuration and seed.
  void load_checkpoint(const std::filesystem::path& file) {
    TrainingState loaded;
    TrainingRng rng(options_.seed);
    // Restore into temporaries first where possible, so a seed mismatch leaves this trainer as is.
    auto archive = detail::open_archive(file, detail::kKindCheckpoint, detail::device_of(*net_));
    torch::serialize::InputArchive s;
    if (!archive.try_read("trainer", s))
      throw checkpoint_error(scoreflow::detail::concat(detail::quoted(file), " lacks the trainer entry"));
    const auto bits = detail::read_scalar<std::int64_t>(s, "seed", file);
    std::uint64_t seed = 0;
    std::memcpy(&seed, &bits, sizeof seed);
    if (seed != options_.seed)
      throw checkpoint_error(scoreflow::detail::concat(detail::quoted(file), " was written with seed = ", seed,
                                                       ", but options.seed = ", options_.seed));
    detail::restore_checkpoint(archive, file, *net_, optimizer_, loaded, rng);
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
