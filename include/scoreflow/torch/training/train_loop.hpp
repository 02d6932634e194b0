#pragma once
// The generic trainer of seed Part B (§1.2.1, §2.2, §2.5): Adam, optional exponential learning
// rate decay per epoch, any objective (objectives.hpp), any data source (data_source.hpp),
// checkpoints (checkpoint.hpp), callbacks. Options beyond the seed, each off by default (the
// seed's deliverables train exactly as before):
//   ema             an EMA of the weights, constant decay with warm-up or EDM2's power function
//                   (ema.hpp); updated after every optimizer step, kept in checkpoints; read it
//                   with ema(), copy_ema_to(net), with_ema_weights(fn), save_ema_weights(file).
//   optimizer       Adam (default) or AdamW with decoupled weight_decay (Loshchilov & Hutter 2019,
//                   "Decoupled Weight Decay Regularization", Alg. 2), betas, eps.
//   clip_grad_norm  clips the gradient's global L2 norm before each step; the norm before
//                   clipping is in TrainProgress::grad_norm.
//   lr_schedule     linear warm-up, then a cosine decay to min_lr, per step (lr_schedule.hpp).
//   communicator    data-parallel training over several processes (distributed/): see below.
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
//
// Data-parallel training (TrainOptions::communicator of size N > 1; distributed/process_group.hpp
// makes one from torchrun's variables). Every rank opens the same epoch of the same data source —
// one global permutation — and trains on its shard of each global batch (shard_of: contiguous
// rows, sizes differing by at most one). Each rank's mean loss is weighted by its share of the
// batch, so the gradients summed over ranks (distributed/gradient_buckets.hpp: flat buckets,
// all-reduced while the backward pass runs) are the global batch's, and the random draws of the
// objective are the global batch's too (TrainingRng::set_shard): N processes × B/N train as one
// process × B, to float rounding (summation order), for models without batch statistics.
// BatchNorm: per-rank batch statistics, and rank 0's running statistics broadcast to every rank
// before each step and at the end of fit() — PyTorch DDP's default (broadcast_buffers=True),
// and after fit() every rank's net equals rank 0's bit for bit; the README ("Multi-process
// training and sampling") gives the measured effect. The loss, and so NaN checks and the loss
// log, are global (one small all-reduce before the backward pass), so every rank decides alike. Rank 0 alone writes
// checkpoints (atomically); every rank resumes from the same file (a shared file system across
// machines) and the ranks check that they resumed at the same step. Callbacks run on every rank
// with the global figures: write logs and images from rank 0 (communicator->is_main()).
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/device.hpp"
#include "scoreflow/torch/distributed/communicator.hpp"
#include "scoreflow/torch/distributed/gradient_buckets.hpp"
#include "scoreflow/torch/training/checkpoint.hpp"
#include "scoreflow/torch/training/data_source.hpp"
#include "scoreflow/torch/training/ema.hpp"
#include "scoreflow/torch/training/lr_schedule.hpp"
#include "scoreflow/torch/training/objectives.hpp"

namespace scoreflow::training {

// ---- options and reports --------------------------------------------------------------------

/// The seed's decay: γ = 0.1^(1/epochs), so the learning rate falls tenfold over the run (§2.2).
inline double seed_lr_decay(std::int64_t epochs) {
  scoreflow::detail::require(epochs >= 1, "epochs", epochs, "must be positive");
  return std::pow(0.1, 1.0 / static_cast<double>(epochs));
}

using scoreflow::default_device;  // device.hpp; TrainOptions{.device = default_device()}

/// TrainOptions::optimizer.
enum class OptimizerKind {
  adam,   ///< torch::optim::Adam (Kingma & Ba 2015), the seed's
  adamw,  ///< torch::optim::AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019)
};

inline const char* to_string(OptimizerKind k) { return k == OptimizerKind::adamw ? "AdamW" : "Adam"; }

/// Fields may be added anywhere: write them with designators (TrainOptions{.epochs = 10, ...}).
struct TrainOptions {
  std::int64_t epochs = 1;
  std::int64_t batch_size = 256;             ///< passed to the data source (seed: 256 / 64)
  double lr = 1e-4;                          ///< learning rate, the peak of lr_schedule (seed §1.2.1: 1e-4; §2.2: 1e-2)
  std::optional<double> lr_decay{};          ///< γ: lr · γ^epoch (seed §2.2: seed_lr_decay(epochs))
  LrSchedule lr_schedule{};                  ///< per-step warm-up / cosine (lr_schedule.hpp); default: none
  OptimizerKind optimizer = OptimizerKind::adam;
  std::array<double, 2> betas{0.9, 0.999};   ///< Adam's β₁, β₂ (moment decay rates)
  double eps = 1e-8;                         ///< Adam's ε, added to √v̂
  /// AdamW's decoupled decay λ: each step multiplies the weights by 1 − lr_t·λ before the Adam
  /// update (PyTorch's convention: λ is scaled by the current lr, so the schedule scales it too;
  /// the paper's Alg. 2 scales it by the schedule multiplier η_t alone, i.e. λ_paper = lr·λ).
  /// Needs optimizer = adamw (0 there: plain Adam).
  double weight_decay = 0.0;
  std::optional<double> clip_grad_norm{};    ///< clip the gradient's global L2 norm to this before each step
  std::optional<EmaOptions> ema{};           ///< keep an EMA of the weights (ema.hpp)
  std::uint64_t seed = 0;                    ///< noise stream and data order
  torch::Device device = torch::kCPU;        ///< e.g. default_device()
  std::int64_t log_every = 100;              ///< on_progress every this many steps
  std::filesystem::path checkpoint_dir{};    ///< empty: no automatic checkpoints
  std::int64_t checkpoint_every = 0;         ///< steps between checkpoints (0: at epoch ends only)
  std::optional<std::int64_t> max_steps{};   ///< stop after this many optimizer steps in total
  /// Data-parallel over the communicator's processes (null or size 1: this process alone).
  /// batch_size is then the global batch, split across ranks.
  std::shared_ptr<distributed::Communicator> communicator{};
  distributed::BucketOptions buckets{};      ///< gradient all-reduce buckets (with communicator)
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
  std::optional<double> grad_norm{};       ///< the last step's gradient norm before clipping (with clip_grad_norm)
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
  o.lr_schedule = training::detail::checked(o.lr_schedule, o.lr);
  if (o.lr_decay && o.lr_schedule.cosine)
    throw invalid_option(scoreflow::detail::concat("lr_decay = ", *o.lr_decay,
                                                   " and lr_schedule.cosine = true: choose one decay (the per-epoch "
                                                   "exponential or the per-step cosine)"));
  if (o.lr_schedule.total_steps) (void)training::detail::schedule_horizon(o.lr_schedule, std::nullopt);
  require(std::isfinite(o.betas[0]) && o.betas[0] >= 0.0 && o.betas[0] < 1.0, "betas[0]", o.betas[0],
          "must lie in [0, 1)");
  require(std::isfinite(o.betas[1]) && o.betas[1] >= 0.0 && o.betas[1] < 1.0, "betas[1]", o.betas[1],
          "must lie in [0, 1)");
  require(std::isfinite(o.eps) && o.eps > 0.0, "eps", o.eps,
          "must be finite and positive (0 divides 0 by 0 for a weight whose gradient is always 0)");
  require(std::isfinite(o.weight_decay) && o.weight_decay >= 0.0, "weight_decay", o.weight_decay,
          "must be finite and non-negative");
  require(o.weight_decay == 0.0 || o.optimizer == OptimizerKind::adamw, "weight_decay", o.weight_decay,
          "needs optimizer = OptimizerKind::adamw (decoupled weight decay; Adam's L2 penalty in the gradient is "
          "not offered: with Adam's per-weight scaling it is not weight decay, Loshchilov & Hutter 2019)");
  if (o.clip_grad_norm)
    require(std::isfinite(*o.clip_grad_norm) && *o.clip_grad_norm > 0.0, "clip_grad_norm", *o.clip_grad_norm,
            "must be finite and positive");
  if (o.ema) o.ema = training::detail::checked(*o.ema);
  return o;
}

/// The optimizer of the options, over `parameters`. For the defaults this is the seed's
/// torch::optim::Adam(parameters, AdamOptions(lr)): its betas and eps are the defaults spelled out.
inline std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> parameters,
                                                               const TrainOptions& o) {
  const auto betas = std::make_tuple(o.betas[0], o.betas[1]);
  if (o.optimizer == OptimizerKind::adamw)
    return std::make_unique<torch::optim::AdamW>(
        std::move(parameters), torch::optim::AdamWOptions(o.lr).betas(betas).eps(o.eps).weight_decay(o.weight_decay));
  return std::make_unique<torch::optim::Adam>(std::move(parameters),
                                              torch::optim::AdamOptions(o.lr).betas(betas).eps(o.eps));
}

/// Puts the options' betas, eps and weight decay back into every param group (a checkpoint's
/// optimizer state brings the options it was written with; the run's own options decide, as for lr).
inline void apply_hyperparameters(torch::optim::Optimizer& optimizer, const TrainOptions& o) {
  const auto betas = std::make_tuple(o.betas[0], o.betas[1]);
  for (auto& group : optimizer.param_groups()) {
    if (auto* w = dynamic_cast<torch::optim::AdamWOptions*>(&group.options()))
      w->betas(betas).eps(o.eps).weight_decay(o.weight_decay);
    else if (auto* a = dynamic_cast<torch::optim::AdamOptions*>(&group.options()))
      a->betas(betas).eps(o.eps).weight_decay(0.0);
  }
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
  TrainProgress report(const TrainingState& state, std::int64_t epochs, double loss, double lr,
                       std::optional<double> grad_norm) {
    const auto now = clock::now();
    const double secs = std::chrono::duration<double>(now - last_).count();
    TrainProgress p{state.step, state.epoch, epochs, state.batch_in_epoch, loss, lr,
                    secs > 0 ? static_cast<double>(images_) / secs : 0.0, total_, std::nullopt, grad_norm};
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

/// Trains `net` (a module holder) on `objective` with Adam or AdamW. One class for every Part B model.
template <class Net, class Objective>
class Trainer {
 public:
  Trainer(Net net, Objective objective, TrainOptions options)
      : options_(detail::checked(std::move(options))),
        net_(detail::placed(std::move(net), options_.device)),
        objective_(std::move(objective)),
        optimizer_(detail::make_optimizer(net_->parameters(), options_)),
        rng_(options_.seed),
        lr_horizon_(options_.lr_schedule.total_steps) {
    state_.seed = options_.seed;
    if (distributed()) {
      // As DDP's constructor: every rank starts from rank 0's weights and buffers.
      std::vector<torch::Tensor> state;
      for (auto& p : net_->parameters()) state.push_back(p.data());
      for (auto& b : net_->buffers()) state.push_back(b);
      torch::NoGradGuard no_grad;
      options_.communicator->broadcast(state, 0, "initial weights from rank 0");
      buckets_ = std::make_unique<distributed::GradientBuckets>(net_->parameters(), options_.communicator,
                                                                options_.buckets);
    }
    if (options_.ema) ema_.emplace(*net_, *options_.ema);  // starts at the initial weights
  }

  /// Trains until options.epochs are complete or options.max_steps steps are done (continuing
  /// from the current state, e.g. after load_checkpoint). Returns the state reached. Here the
  /// lr schedule learns its horizon (lr_schedule.hpp): a warm-up longer than the run, or a cosine
  /// over a data source of unknown length without lr_schedule.total_steps, is an invalid_option.
  const TrainingState& fit(const DataSource& data, const TrainCallbacks& callbacks = {}) {
    if (!data.open) throw invalid_option("fit: data.open is empty");
    lr_horizon_ = training::detail::schedule_horizon(options_.lr_schedule, run_steps(data));
    net_->train();
    detail::ProgressMeter meter(planned_steps(data));
    bool stopped = false;
    while (state_.epoch < options_.epochs && !stopped) {
      BatchStream stream = reopen_epoch(data);
      const auto epoch_start = std::chrono::steady_clock::now();
      stopped = !train_epoch(stream, callbacks, meter);
      if (!stopped) finish_epoch(epoch_start, callbacks);
    }
    if (stopped && has_checkpoint_dir()) save_checkpoint(checkpoint_path());
    if (distributed()) broadcast_buffers("the end of fit");  // every rank's net is now rank 0's, bit for bit
    return state_;
  }

  /// One optimizer step on one batch at the current learning rate (fit sets it before every
  /// step); returns its loss. Clips the gradient (options.clip_grad_norm), steps, then updates
  /// the EMA. Throws non_finite_error on a NaN/inf loss or gradient norm, before the update.
  /// Data-parallel (options.communicator): `raw` is the global batch, every rank passes the same,
  /// and each trains on its shard; the loss returned is the global batch's.
  double train_step(const Batch& raw) {
    Batch b{raw.images.defined() ? raw.images.to(options_.device, torch::kFloat32) : raw.images,
            raw.labels.defined() ? raw.labels.to(options_.device, torch::kLong) : raw.labels};
    optimizer_->zero_grad();
    double share = 1.0;  // this rank's part of the global batch
    if (distributed()) {
      b = shard(b);
      share = static_cast<double>(b.images.size(0)) / static_cast<double>(raw.images.size(0));
    }
    torch::Tensor loss;
    {
      struct ClearShard {  // also when the objective throws
        TrainingRng& rng;
        ~ClearShard() { rng.clear_shard(); }
      } clear{rng_};
      loss = objective_(net_, b, rng_);
    }
    if (!loss.defined() || loss.numel() != 1)
      throw shape_error("train_step: the objective must return a scalar loss");
    const double value = distributed() ? global_loss(loss, share) : loss.item<double>();
    if (!std::isfinite(value))  // checked before the update, so the weights stay finite
      throw non_finite_error(scoreflow::detail::concat("training loss at step ", state_.step + 1, " is ", value,
                                                       " (NaN in the data, or a learning rate too high?)"));
    if (distributed()) {
      buckets_->begin(state_.step + 1);
      (loss * share).backward();
      buckets_->finish();
    } else {
      loss.backward();
    }
    if (options_.clip_grad_norm) {
      // The global L2 norm over every parameter's gradient, scaled down to the cap when above it
      // (by cap/(norm + 1e-6), LibTorch's clip_grad_norm_, as PyTorch's).
      const double norm = torch::nn::utils::clip_grad_norm_(net_->parameters(), *options_.clip_grad_norm);
      last_grad_norm_ = norm;
      if (!std::isfinite(norm))
        throw non_finite_error(scoreflow::detail::concat("gradient norm at step ", state_.step + 1, " is ", norm,
                                                         " (the loss was finite, ", value,
                                                         "); the weights are left as they were"));
    }
    optimizer_->step();
    if (ema_) ema_->update(*net_);
    return value;
  }

  /// Saves model, optimizer, position, RNG state and the EMA (atomically). Data-parallel: rank 0
  /// writes, the other ranks (whose state is the same) do nothing.
  void save_checkpoint(const std::filesystem::path& file) const {
    if (distributed() && !options_.communicator->is_main()) return;
    training::save_checkpoint(file, *net_, *optimizer_, state_, rng_, ema_ ? &*ema_ : nullptr);
  }

  /// Restores a checkpoint written by a trainer of the same configuration and seed (through
  /// training::load_checkpoint, with options.seed expected). The position and RNG are restored
  /// into temporaries first, so a checkpoint that fails leaves this trainer where it was. With
  /// options.ema the checkpoint must hold an EMA of the same options (else checkpoint_error);
  /// without, a checkpoint's EMA is ignored. The optimizer must be of the kind that wrote it; its
  /// betas, eps and weight decay are then this run's options (as the learning rate is).
  void load_checkpoint(const std::filesystem::path& file) {
    TrainingState loaded;
    TrainingRng rng(options_.seed);
    training::load_checkpoint(file, *net_, *optimizer_, loaded, rng, options_.seed, ema_ ? &*ema_ : nullptr);
    state_ = loaded;
    rng_ = std::move(rng);
    detail::apply_hyperparameters(*optimizer_, options_);
    // The next step's rate; a cosine whose horizon comes from the data waits for fit().
    set_lr(options_.lr_schedule.cosine && !lr_horizon_ ? lr_at(state_.epoch) : lr_at_step(state_.step, state_.epoch));
  }

  /// Loads checkpoint_path() if it exists; returns whether it did.
  /// Data-parallel: every rank loads the same file, then the ranks check that they all stand at
  /// rank 0's step (a distributed_error if not: no shared file system, or a stale copy).
  bool resume() {
    const bool found = has_checkpoint_dir() && std::filesystem::exists(checkpoint_path());
    if (found) load_checkpoint(checkpoint_path());
    if (distributed()) check_same_step("resume");
    return found;
  }

  /// options.checkpoint_dir / "checkpoint.pt".
  [[nodiscard]] std::filesystem::path checkpoint_path() const { return options_.checkpoint_dir / "checkpoint.pt"; }

  /// lr · γ^epoch: the per-epoch rate (the seed's schedule), before lr_schedule.
  [[nodiscard]] double lr_at(std::int64_t epoch) const {
    return options_.lr_decay ? options_.lr * std::pow(*options_.lr_decay, static_cast<double>(epoch)) : options_.lr;
  }
  /// The rate of optimizer step `step` (0-based) taken in epoch `epoch`: lr_at(epoch) through
  /// lr_schedule (scheduled_lr, lr_schedule.hpp) — a pure function of the two, so a resumed run
  /// repeats it. With the cosine it needs the horizon: lr_schedule.total_steps, or fit() begun.
  [[nodiscard]] double lr_at_step(std::int64_t step, std::int64_t epoch = 0) const {
    return scheduled_lr(lr_at(epoch), options_.lr_schedule, step, lr_horizon_);
  }
  /// The horizon T of lr_schedule (lr_schedule.hpp), once known.
  [[nodiscard]] std::optional<std::int64_t> lr_horizon() const { return lr_horizon_; }
  /// The rate of the last step taken (during fit), or of the next after load_checkpoint.
  [[nodiscard]] double current_lr() const { return optimizer_->param_groups().front().options().get_lr(); }
  /// The last step's gradient norm before clipping (with options.clip_grad_norm).
  [[nodiscard]] std::optional<double> last_grad_norm() const { return last_grad_norm_; }

  // ---- the EMA (options.ema) ----
  [[nodiscard]] bool has_ema() const { return ema_.has_value(); }
  /// The EMA of the weights; invalid_option without options.ema.
  [[nodiscard]] const ExponentialMovingAverage& ema() const {
    if (!ema_) throw invalid_option("ema(): this trainer keeps no EMA of the weights (options.ema is not set)");
    return *ema_;
  }
  /// Writes the averaged weights (and the EMA's buffers) into `net`, a net of this configuration.
  void copy_ema_to(torch::nn::Module& net) const { ema().copy_to(net); }
  /// A weight file of the averaged weights (load_weights reads it into a net of this configuration).
  void save_ema_weights(const std::filesystem::path& file) const { save_averaged_weights(file, ema(), *net_); }
  /// Calls fn(net()) with the averaged weights in the trainer's own net — to sample or evaluate
  /// mid-run, e.g. in on_epoch_end — then puts the trained weights, buffers and train/eval mode
  /// back bit for bit (also when fn throws). Returns what fn returns.
  template <class Fn>
  decltype(auto) with_ema_weights(Fn&& fn) {
    const auto& average = ema();
    struct PutBack {
      Net& net;
      std::vector<torch::Tensor> saved;
      bool training;
      ~PutBack() {
        torch::NoGradGuard no_grad;
        std::size_t i = 0;
        for (auto& p : net->parameters()) p.copy_(saved[i++]);
        for (auto& b : net->buffers()) b.copy_(saved[i++]);
        net->train(training);
      }
    } put_back{net_, {}, net_->is_training()};
    for (const auto& p : net_->parameters()) put_back.saved.push_back(p.detach().clone());
    for (const auto& b : net_->buffers()) put_back.saved.push_back(b.detach().clone());
    average.copy_to(*net_);
    return std::forward<Fn>(fn)(net_);
  }

  /// Whether this trainer is data-parallel over more than one process.
  [[nodiscard]] bool distributed() const { return options_.communicator && options_.communicator->size() > 1; }
  /// Gradient buckets of data-parallel training (null otherwise).
  [[nodiscard]] const distributed::GradientBuckets* gradient_buckets() const { return buckets_.get(); }

  Net& net() { return net_; }
  /// The optimizer (torch::optim::Adam or AdamW, by options.optimizer).
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  const torch::optim::Optimizer& optimizer() const { return *optimizer_; }
  [[nodiscard]] const TrainingState& state() const { return state_; }
  [[nodiscard]] const TrainOptions& options() const { return options_; }
  const Objective& objective() const { return objective_; }

 private:
  /// This rank's rows of the global batch, with the objective's draws set to the global batch's
  /// (TrainingRng::set_shard), after rank 0's BatchNorm statistics are broadcast (DDP's default).
  Batch shard(const Batch& global) {
    const auto& comm = *options_.communicator;
    const auto n = global.images.size(0);
    const distributed::Shard s = distributed::shard_of(n, comm.rank(), comm.size());
    if (s.size() == 0)  // the same on every rank: every rank throws
      throw invalid_option(scoreflow::detail::concat(
          "a batch of ", n, " images at step ", state_.step + 1, " cannot be split over ", comm.size(),
          " processes: every process needs at least one (use drop_last, or a batch_size and a dataset size whose "
          "remainder is 0 or ≥ ", comm.size(), ")"));
    broadcast_buffers(scoreflow::detail::concat("step ", state_.step + 1));
    rng_.set_shard(s.begin, s.size(), n);
    return Batch{global.images.narrow(0, s.begin, s.size()),
                 global.labels.defined() ? global.labels.narrow(0, s.begin, s.size()) : global.labels};
  }

  /// Rank 0's buffers (BatchNorm's running statistics) to every rank.
  void broadcast_buffers(const std::string& when) {
    std::vector<torch::Tensor> buffers;
    for (auto& buffer : net_->buffers()) buffers.push_back(buffer);
    if (buffers.empty()) return;
    torch::NoGradGuard no_grad;
    options_.communicator->broadcast(buffers, 0, "buffers (BatchNorm statistics) of rank 0 at " + when);
  }

  /// The global batch's mean loss: each rank's mean weighted by its share, summed over ranks.
  double global_loss(const torch::Tensor& loss, double share) {
    std::vector<torch::Tensor> total{loss.detach().to(torch::kFloat64).reshape({1}) * share};  // on the loss's device (NCCL)
    options_.communicator->all_reduce_sum(total, scoreflow::detail::concat("loss at step ", state_.step + 1));
    return total[0].item<double>();
  }

  /// Every rank must stand where rank 0 stands (after resume).
  void check_same_step(const char* when) {
    std::vector<torch::Tensor> step{torch::tensor({state_.step, state_.epoch, state_.batch_in_epoch}).to(options_.device)};
    const auto mine = step[0].clone();  // NOLINT: compared after the broadcast
    options_.communicator->broadcast(step, 0, scoreflow::detail::concat("position check at ", when));
    if (!torch::equal(step[0], mine))
      throw distributed::distributed_error(scoreflow::detail::concat(
          when, ": rank ", options_.communicator->rank(), " is at step ", state_.step, " but rank 0 at step ",
          step[0][0].item<std::int64_t>(), ": every rank must resume from the same checkpoint (a shared file system "
          "across machines)"));
  }

  /// The run's length, epochs × batches per epoch, if the data source knows it (not cut by
  /// max_steps: the lr schedule's horizon must not change when a stopped run is continued).
  [[nodiscard]] std::optional<std::int64_t> run_steps(const DataSource& data) const {
    if (!data.batches_per_epoch) return std::nullopt;
    return options_.epochs * data.batches_per_epoch(options_.batch_size);
  }

  /// The steps fit will have done at the end, if the data source knows its length (for the ETA).
  [[nodiscard]] std::optional<std::int64_t> planned_steps(const DataSource& data) const {
    std::optional<std::int64_t> total = run_steps(data);
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
      set_lr(lr_at_step(state_.step, state_.epoch));
      const double loss = train_step(*batch);
      ++state_.step;
      ++state_.batch_in_epoch;
      state_.epoch_loss_sum += loss;
      meter.count_step(n);
      if (callbacks.on_loss) callbacks.on_loss(state_.step, state_.epoch, loss);
      if (callbacks.on_progress && state_.step % options_.log_every == 0)
        callbacks.on_progress(meter.report(state_, options_.epochs, loss, current_lr(), last_grad_norm_));
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
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  }

  TrainOptions options_;
  Net net_;
  Objective objective_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  TrainingRng rng_;
  TrainingState state_;
  std::optional<ExponentialMovingAverage> ema_;
  std::optional<std::int64_t> lr_horizon_;
  std::optional<double> last_grad_norm_;
  std::unique_ptr<distributed::GradientBuckets> buckets_;
};

}  // namespace scoreflow::training
