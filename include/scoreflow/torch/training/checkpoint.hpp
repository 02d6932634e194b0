#pragma once
// Checkpoints and weight files (torch::serialize archives).
//
//   checkpoint: model parameters and buffers, optimizer state (Adam/AdamW moments and step
//               counts, param-group options) and which optimizer wrote it, training position
//               (step, epoch, batch within the epoch, running epoch loss), the seed and the
//               trainer's RNG state, and the EMA of the weights when the run keeps one (ema.hpp:
//               averages, copied buffers, update count, its options) — everything needed to
//               continue a run exactly (bit for bit on the CPU).
//   weights:    model parameters and buffers only, for sampling programs; save_averaged_weights
//               writes an EMA's averages in the same layout, so load_weights reads either.
//
// Writes are atomic: the archive goes to `<file>.tmp`, which is then renamed over `<file>`, so a
// crash mid-write never leaves a half-written checkpoint. Loading checks the file's layout
// against the model before touching it: a parameter of another shape, a missing or an extra
// entry fails with checkpoint_error naming the entry; an unreadable, truncated or foreign file
// fails with checkpoint_error naming the file. `load_weights` also accepts a checkpoint.
//
// Format version 1 throughout: the EMA entry and the optimizer's kind are optional entries, so
// checkpoints written before them still load (as Adam runs without an EMA; into a run with an
// EMA such a checkpoint is a checkpoint_error, see load_checkpoint). Bumping the version would
// have made every earlier checkpoint unreadable for no gain.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/io/archive_integrity.hpp"
#include "scoreflow/torch/io/atomic_file.hpp"
#include "scoreflow/torch/torch_message.hpp"
#include "scoreflow/torch/training/ema.hpp"
#include "scoreflow/torch/training/training_rng.hpp"

namespace scoreflow::training {

/// A checkpoint or weight file that cannot be read, or does not fit the model/run.
struct checkpoint_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Where a training run stands (saved in checkpoints).
struct TrainingState {
  std::int64_t step = 0;              ///< optimizer steps done
  std::int64_t epoch = 0;             ///< epochs completed
  std::int64_t batch_in_epoch = 0;    ///< batches of the current epoch done
  double epoch_loss_sum = 0.0;        ///< Σ loss over those batches
  std::uint64_t seed = 0;             ///< the run's seed (noise stream and data order)
};

namespace detail {
inline constexpr std::int64_t kFormatVersion = 1;
inline constexpr std::int64_t kKindWeights = 1;
inline constexpr std::int64_t kKindCheckpoint = 2;
inline constexpr const char* kFormatKey = "scoreflow_format";

inline std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

inline torch::Tensor scalar(std::int64_t v) { return torch::tensor({v}, torch::TensorOptions().dtype(torch::kLong)); }
inline torch::Tensor scalar(double v) { return torch::tensor({v}, torch::TensorOptions().dtype(torch::kFloat64)); }

/// Serializes `archive` in memory, then writes it through `<file>.tmp` renamed over `file`
/// (atomic_file.hpp). Not archive.save_to(path): LibTorch's zip writer finishes the file in its
/// destructor, and a write error there (a full disk) throws from a destructor and aborts the
/// program; in memory nothing can fail, and our writer reports the full disk as an exception.
inline void atomic_save(torch::serialize::OutputArchive& archive, const std::filesystem::path& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (file.has_parent_path()) fs::create_directories(file.parent_path(), ec);
  if (ec)
    throw checkpoint_error(scoreflow::detail::concat("cannot create the directory of ", quoted(file), ": ",
                                                     ec.message()));
  std::vector<unsigned char> bytes;
  archive.save_to([&](const void* data, std::size_t size) -> std::size_t {
    const auto* p = static_cast<const unsigned char*>(data);
    bytes.insert(bytes.end(), p, p + size);
    return size;
  });
  try {
    write_file_atomically(file, bytes);
  } catch (const io_error& e) {
    throw checkpoint_error(e.what());
  }
}

/// Reads a scoreflow archive of the given kind (weights accept both kinds).
inline torch::serialize::InputArchive open_archive(const std::filesystem::path& file, std::int64_t kind,
                                                   std::optional<torch::Device> device) {
  if (!std::filesystem::exists(file))
    throw checkpoint_error(scoreflow::detail::concat("checkpoint file ", quoted(file), " does not exist"));
  if (const auto problem = scoreflow::detail::zip_archive_problem(file))
    throw checkpoint_error(scoreflow::detail::concat(
        quoted(file), " ", *problem, " — not an intact torch archive (truncated, corrupt or foreign file?)"));
  torch::serialize::InputArchive archive;
  try {
    if (device)
      archive.load_from(file.string(), *device);
    else
      archive.load_from(file.string());
  } catch (const std::exception& e) {
    throw checkpoint_error(scoreflow::detail::concat("cannot read ", quoted(file),
                                                     ": not a complete torch archive (truncated or foreign file?): ",
                                                     scoreflow::detail::torch_message(e)));
  }
  torch::Tensor format;
  if (!archive.try_read(kFormatKey, format) || format.numel() != 2 || format.scalar_type() != torch::kLong)
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " is not a scoreflow checkpoint or weight file"));
  const auto f = format.to(torch::kCPU);
  const auto version = f[0].item<std::int64_t>(), found = f[1].item<std::int64_t>();
  if (version != kFormatVersion)
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " has format version ", version, "; expected ",
                                                     kFormatVersion));
  if (kind == kKindCheckpoint && found != kKindCheckpoint)
    throw checkpoint_error(
        scoreflow::detail::concat(quoted(file), " holds model weights only, not a training checkpoint"));
  return archive;
}

inline torch::Tensor format_tag(std::int64_t kind) {
  return torch::tensor({kFormatVersion, kind}, torch::TensorOptions().dtype(torch::kLong));
}

inline std::string shape_string(c10::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

using TensorPairs = std::vector<std::pair<torch::Tensor, torch::Tensor>>;

/// Matches the archive against `module` (recursively), collecting (destination, source) pairs;
/// throws on the first entry that is missing, extra or of another shape.
inline void match_module(torch::serialize::InputArchive& archive, torch::nn::Module& module, const std::string& prefix,
                         const std::filesystem::path& file,
                         TensorPairs& pairs) {
  std::set<std::string> known;
  auto tensor_entry = [&](const std::string& key, const torch::Tensor& dst, const char* what) {
    known.insert(key);
    torch::Tensor src;
    if (!archive.try_read(key, src))
      throw checkpoint_error(scoreflow::detail::concat(quoted(file), " lacks the model's ", what, " '", prefix, key,
                                                       "' (different model configuration?)"));
    if (!src.sizes().equals(dst.sizes()))
      throw checkpoint_error(scoreflow::detail::concat(what, " '", prefix, key, "' has shape ",
                                                       shape_string(src.sizes()), " in ", quoted(file), " but ",
                                                       shape_string(dst.sizes()),
                                                       " in the model (different model configuration)"));
    pairs.emplace_back(dst, src);
  };
  for (const auto& p : module.named_parameters(/*recurse=*/false)) tensor_entry(p.key(), p.value(), "parameter");
  for (const auto& b : module.named_buffers(/*recurse=*/false)) tensor_entry(b.key(), b.value(), "buffer");
  for (const auto& c : module.named_children()) {
    known.insert(c.key());
    torch::serialize::InputArchive child;
    if (!archive.try_read(c.key(), child))
      throw checkpoint_error(scoreflow::detail::concat(quoted(file), " lacks the model's submodule '", prefix, c.key(),
                                                       "' (different model configuration?)"));
    match_module(child, *c.value(), prefix + c.key() + ".", file, pairs);
  }
  for (const auto& key : archive.keys()) {
    if (key == "training" || known.count(key)) continue;
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " has an entry '", prefix, key,
                                                     "' that the model lacks (different model configuration)"));
  }
}

/// (model tensor, archive tensor) for every entry of archive["model"], all checked against
/// `module`; nothing is copied yet, so a failure anywhere leaves the module as it was.
inline TensorPairs matched_model(torch::serialize::InputArchive& archive, torch::nn::Module& module,
                                 const std::filesystem::path& file) {
  torch::serialize::InputArchive model;
  if (!archive.try_read("model", model))
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " has no model entry"));
  TensorPairs pairs;
  match_module(model, module, "", file, pairs);
  return pairs;
}

inline void assign(const TensorPairs& pairs) {
  torch::NoGradGuard no_grad;
  for (const auto& [dst, src] : pairs) dst.copy_(src);
}

inline torch::Tensor read_tensor(torch::serialize::InputArchive& archive, const char* key,
                                 const std::filesystem::path& file) {
  torch::Tensor t;
  if (!archive.try_read(key, t))
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " lacks the training entry '", key, "'"));
  return t.to(torch::kCPU);
}

/// A one-element entry of the trainer state, of type T (an integer or floating-point tensor, as
/// save_checkpoint writes it). A crafted archive may hold anything under the key: anything else
/// is a checkpoint_error, not LibTorch's "cannot be converted to Scalar".
template <class T>
T read_scalar(torch::serialize::InputArchive& archive, const char* key, const std::filesystem::path& file) {
  const auto t = read_tensor(archive, key, file);
  const bool type_ok = std::is_integral_v<T> ? t.scalar_type() == torch::kLong : t.is_floating_point();
  if (t.numel() != 1 || !type_ok)
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), ": the training entry '", key,
                                                     "' is not a single ", std::is_integral_v<T> ? "int64" : "float",
                                                     " value (", t.numel(), " elements of ", t.scalar_type(), ")"));
  return t.item<T>();
}

inline std::optional<torch::Device> device_of(const torch::nn::Module& module) {
  for (const auto& p : module.parameters()) return p.device();
  return std::nullopt;
}
}  // namespace detail

/// Saves model parameters and buffers to `file` (atomically).
inline void save_weights(const std::filesystem::path& file, const torch::nn::Module& model) {
  torch::serialize::OutputArchive archive, m;
  model.save(m);
  archive.write(detail::kFormatKey, detail::format_tag(detail::kKindWeights));
  archive.write("model", m);
  detail::atomic_save(archive, file);
}

/// Loads model parameters and buffers from a weight file or a checkpoint, onto the model's device.
inline void load_weights(const std::filesystem::path& file, torch::nn::Module& model) {
  auto archive = detail::open_archive(file, detail::kKindWeights, detail::device_of(model));
  detail::assign(detail::matched_model(archive, model, file));
}

/// Loads the weights to sample with: a checkpoint written by a run that keeps an EMA of the
/// weights gives its averages (parameters and buffers, as save_averaged_weights writes them);
/// a weight file, or a checkpoint without an EMA, gives the weights themselves, as load_weights.
/// Returns whether the EMA was loaded. Sampling from the raw weights of an EMA run would show the
/// noisier iterate the EMA exists to smooth (Karras et al. 2024 §3), so samplers should call this.
inline bool load_sampling_weights(const std::filesystem::path& file, torch::nn::Module& model) {
  auto archive = detail::open_archive(file, detail::kKindWeights, detail::device_of(model));
  torch::serialize::InputArchive ema;
  const bool averaged = archive.try_read("ema", ema);
  detail::assign(detail::matched_model(averaged ? ema : archive, model, file));
  return averaged;
}

namespace detail {
/// Which optimizer wrote a checkpoint (the trainer entry's "optimizer_kind"): Adam and AdamW keep
/// the same state entries, so without the tag one would load the other's file silently. 0: an
/// optimizer of another class (not checked). Checkpoints without the tag were all written by Adam.
inline constexpr std::int64_t kOptimizerOther = 0, kOptimizerAdam = 1, kOptimizerAdamW = 2;

inline std::int64_t optimizer_kind(const torch::optim::Optimizer& optimizer) {
  if (dynamic_cast<const torch::optim::AdamW*>(&optimizer)) return kOptimizerAdamW;
  if (dynamic_cast<const torch::optim::Adam*>(&optimizer)) return kOptimizerAdam;
  return kOptimizerOther;
}

inline const char* optimizer_name(std::int64_t kind) {
  return kind == kOptimizerAdam ? "Adam" : kind == kOptimizerAdamW ? "AdamW" : "another optimizer";
}

/// The EMA's averages and buffers laid out as `layout.save` lays out the net's own (the same
/// walk as torch::nn::Module::save: parameters, buffers, then each serializable child as a nested
/// archive), so that the "model" readers (matched_model, load_weights) read it unchanged.
inline void write_average(torch::serialize::OutputArchive& archive, const torch::nn::Module& layout,
                          const std::string& prefix, const ExponentialMovingAverage& ema) {
  auto entry = [&](const ExponentialMovingAverage::Tensors& from, const std::string& key) -> const torch::Tensor& {
    const auto* t = from.find(prefix + key);
    if (!t)
      throw shape_error(scoreflow::detail::concat("the EMA lacks the net's entry '", prefix, key,
                                                  "' (a net of another configuration?)"));
    return *t;
  };
  for (const auto& p : layout.named_parameters(/*recurse=*/false)) archive.write(p.key(), entry(ema.parameters(), p.key()));
  for (const auto& b : layout.named_buffers(/*recurse=*/false))
    archive.write(b.key(), entry(ema.buffers(), b.key()), /*is_buffer=*/true);
  for (const auto& c : layout.named_children()) {
    if (!c.value()->is_serializable()) continue;
    torch::serialize::OutputArchive child(archive.compilation_unit());
    write_average(child, *c.value(), prefix + c.key() + ".", ema);
    archive.write(c.key(), child);
  }
}

inline torch::Tensor sigma_rel_entry(const EmaOptions& o) {
  return scalar(o.sigma_rel ? *o.sigma_rel : std::numeric_limits<double>::quiet_NaN());
}

/// The checkpoint's "ema" entry: the averages in the net's layout, the update count, the options.
inline void write_ema_entry(torch::serialize::OutputArchive& archive, const torch::nn::Module& model,
                            const ExponentialMovingAverage& ema) {
  torch::serialize::OutputArchive e(archive.compilation_unit()), m(archive.compilation_unit());
  write_average(m, model, "", ema);
  e.write("model", m);
  e.write("updates", scalar(ema.updates()));
  e.write("decay", scalar(ema.options().decay));
  e.write("warmup", scalar(std::int64_t{ema.options().warmup ? 1 : 0}));
  e.write("sigma_rel", sigma_rel_entry(ema.options()));
  archive.write("ema", e);
}

/// What load_checkpoint restores into an EMA: tensors in the EMA's order, checked.
struct LoadedAverage {
  std::vector<torch::Tensor> parameters, buffers;
  std::int64_t updates = 0;
};

inline std::string ema_text(double decay, bool warmup, double sigma_rel) {
  if (!std::isnan(sigma_rel)) return scoreflow::detail::concat("a power-function EMA with sigma_rel = ", sigma_rel);
  return scoreflow::detail::concat("an EMA with decay = ", decay, ", warmup = ", warmup ? "true" : "false");
}

/// Reads and checks the "ema" entry against `model` and the run's EMA options; copies nothing.
inline LoadedAverage read_ema_entry(torch::serialize::InputArchive& archive, torch::nn::Module& model,
                                    const ExponentialMovingAverage& ema, const std::filesystem::path& file) {
  torch::serialize::InputArchive e, m;
  if (!archive.try_read("ema", e))
    throw checkpoint_error(scoreflow::detail::concat(
        quoted(file), " holds no EMA of the weights (written by a run without options.ema), but this run keeps "
        "one: continue that run with options.ema unset, or start a fresh run with the EMA"));
  LoadedAverage loaded;
  loaded.updates = read_scalar<std::int64_t>(e, "updates", file);
  const auto decay = read_scalar<double>(e, "decay", file);
  const bool warmup = read_scalar<std::int64_t>(e, "warmup", file) != 0;
  const auto sigma_rel = read_scalar<double>(e, "sigma_rel", file);
  const auto& o = ema.options();
  const double own_sigma = o.sigma_rel ? *o.sigma_rel : std::numeric_limits<double>::quiet_NaN();
  const bool same = std::isnan(sigma_rel) ? (std::isnan(own_sigma) && decay == o.decay && warmup == o.warmup)
                                          : sigma_rel == own_sigma;
  if (!same)
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " keeps ", ema_text(decay, warmup, sigma_rel),
                                                     ", but options.ema asks for ",
                                                     ema_text(o.decay, o.warmup, own_sigma)));
  if (loaded.updates < 0)
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " has an impossible EMA update count ",
                                                     loaded.updates));
  if (!e.try_read("model", m)) throw checkpoint_error(scoreflow::detail::concat(quoted(file), " has no EMA model entry"));
  TensorPairs pairs;  // (the model's tensor, the average stored for it)
  match_module(m, model, "ema:", file, pairs);
  std::unordered_map<const void*, torch::Tensor> by_tensor;
  for (const auto& [dst, src] : pairs) by_tensor.emplace(dst.unsafeGetTensorImpl(), src);
  auto in_order = [&](const ExponentialMovingAverage::Tensors& of_net) {
    std::vector<torch::Tensor> out;
    for (const auto& item : of_net) {
      const auto found = by_tensor.find(item.value().unsafeGetTensorImpl());
      if (found == by_tensor.end())  // a parameter of a non-serializable child: not in the file
        throw checkpoint_error(scoreflow::detail::concat(quoted(file), " lacks the EMA of '", item.key(), "'"));
      out.push_back(found->second);
    }
    return out;
  };
  loaded.parameters = in_order(model.named_parameters());
  loaded.buffers = in_order(model.named_buffers());
  return loaded;
}
}  // namespace detail

/// Saves the averaged weights of `ema` (an EMA of `layout`, or of a net of its configuration) as
/// a weight file: load_weights then reads them into any net of that configuration, e.g. for
/// sampling. The buffers written are the EMA's copies (see ema.hpp).
inline void save_averaged_weights(const std::filesystem::path& file, const ExponentialMovingAverage& ema,
                                  const torch::nn::Module& layout) {
  torch::serialize::OutputArchive archive, m;
  detail::write_average(m, layout, "", ema);
  archive.write(detail::kFormatKey, detail::format_tag(detail::kKindWeights));
  archive.write("model", m);
  detail::atomic_save(archive, file);
}

/// Saves a full training checkpoint to `file` (atomically); with `ema`, its state too.
inline void save_checkpoint(const std::filesystem::path& file, const torch::nn::Module& model,
                            const torch::optim::Optimizer& optimizer, const TrainingState& state,
                            const TrainingRng& rng, const ExponentialMovingAverage* ema = nullptr) {
  torch::serialize::OutputArchive archive, m, o, s;
  model.save(m);
  optimizer.save(o);
  std::int64_t seed_bits = 0;  // archives hold int64, not uint64: the seed's bit pattern (see read_seed)
  std::memcpy(&seed_bits, &state.seed, sizeof seed_bits);
  s.write("step", detail::scalar(state.step));
  s.write("epoch", detail::scalar(state.epoch));
  s.write("batch_in_epoch", detail::scalar(state.batch_in_epoch));
  s.write("epoch_loss_sum", detail::scalar(state.epoch_loss_sum));
  s.write("seed", detail::scalar(seed_bits));
  s.write("rng", rng.state());
  s.write("optimizer_kind", detail::scalar(detail::optimizer_kind(optimizer)));
  archive.write(detail::kFormatKey, detail::format_tag(detail::kKindCheckpoint));
  archive.write("model", m);
  archive.write("optimizer", o);
  archive.write("trainer", s);
  if (ema) detail::write_ema_entry(archive, model, *ema);
  detail::atomic_save(archive, file);
}

namespace detail {
/// The run's seed from the trainer entry, checked against `expected` when given. Read before the
/// rest, so that a checkpoint of another run is reported as that even if it is damaged as well.
inline std::uint64_t read_seed(torch::serialize::InputArchive& trainer, const std::filesystem::path& file,
                               std::optional<std::uint64_t> expected) {
  const auto bits = read_scalar<std::int64_t>(trainer, "seed", file);
  std::uint64_t seed = 0;
  std::memcpy(&seed, &bits, sizeof seed);
  if (expected && seed != *expected)
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " was written with seed = ", seed,
                                                     ", but options.seed = ", *expected));
  return seed;
}

/// Where the run stood, from the trainer entry; a position no run can reach is a checkpoint_error.
inline TrainingState read_position(torch::serialize::InputArchive& trainer, const std::filesystem::path& file,
                                   std::uint64_t seed) {
  TrainingState loaded;
  loaded.step = read_scalar<std::int64_t>(trainer, "step", file);
  loaded.epoch = read_scalar<std::int64_t>(trainer, "epoch", file);
  loaded.batch_in_epoch = read_scalar<std::int64_t>(trainer, "batch_in_epoch", file);
  loaded.epoch_loss_sum = read_scalar<double>(trainer, "epoch_loss_sum", file);
  loaded.seed = seed;
  if (loaded.step < 0 || loaded.epoch < 0 || loaded.batch_in_epoch < 0 || !std::isfinite(loaded.epoch_loss_sum))
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " has an impossible training state (step ",
                                                     loaded.step, ", epoch ", loaded.epoch, ", batch ",
                                                     loaded.batch_in_epoch, ", loss sum ", loaded.epoch_loss_sum, ")"));
  return loaded;
}

/// The optimizer that wrote the checkpoint must be of the class that reads it (Adam's state in
/// AdamW would load without complaint and continue another run). No tag: an Adam checkpoint.
inline void check_optimizer_kind(torch::serialize::InputArchive& trainer, const std::filesystem::path& file,
                                 const torch::optim::Optimizer& optimizer) {
  std::int64_t written = kOptimizerAdam;
  torch::Tensor tag;
  if (trainer.try_read("optimizer_kind", tag)) written = read_scalar<std::int64_t>(trainer, "optimizer_kind", file);
  const auto reading = optimizer_kind(optimizer);
  if (written != kOptimizerOther && reading != kOptimizerOther && written != reading)
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " was written by ", optimizer_name(written),
                                                     ", but this run's optimizer is ", optimizer_name(reading),
                                                     " (options.optimizer)"));
}
}  // namespace detail

/// Restores a checkpoint into model, optimizer, state and rng: the one way a checkpoint is read
/// (Trainer::load_checkpoint comes here too). With `expected_seed` (a trainer's options.seed), a
/// checkpoint of another seed is a checkpoint_error: its data order and noise would not continue
/// this run. The model's layout is checked first (checkpoint_error names the differing
/// parameter); tensors land on the model's device. On any error the model is left as it was.
///
/// With `ema`, the checkpoint's EMA is restored into it; a checkpoint without one (an older file,
/// or a run without options.ema) is a checkpoint_error rather than an average silently restarted
/// from the loaded weights, which would not be the average the uninterrupted run keeps. So is an
/// EMA of other options. Without `ema`, a checkpoint's EMA is ignored (the run continues without
/// averaging). The optimizer must be of the class that wrote the file (Adam or AdamW).
inline void load_checkpoint(const std::filesystem::path& file, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, TrainingState& state, TrainingRng& rng,
                            std::optional<std::uint64_t> expected_seed = std::nullopt,
                            ExponentialMovingAverage* ema = nullptr) {
  using detail::quoted;
  auto archive = detail::open_archive(file, detail::kKindCheckpoint, detail::device_of(model));
  torch::serialize::InputArchive o, s;
  if (!archive.try_read("trainer", s))
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " lacks the trainer entry"));
  const auto seed = detail::read_seed(s, file, expected_seed);
  if (!archive.try_read("optimizer", o))
    throw checkpoint_error(scoreflow::detail::concat(quoted(file), " lacks the optimizer entry"));
  const TrainingState loaded = detail::read_position(s, file, seed);
  const auto rng_state = detail::read_tensor(s, "rng", file);
  detail::check_optimizer_kind(s, file, optimizer);

  // Check every model and EMA entry first, then restore the optimizer and RNG, and only then copy
  // the weights: a checkpoint that fails anywhere leaves the model (and the EMA) as they were.
  const auto weights = detail::matched_model(archive, model, file);
  std::optional<detail::LoadedAverage> average;
  if (ema) average = detail::read_ema_entry(archive, model, *ema, file);
  try {
    optimizer.load(o);
    rng.set_state(rng_state);
  } catch (const std::exception& e) {
    throw checkpoint_error(scoreflow::detail::concat("cannot restore the optimizer/RNG state from ",
                                                     quoted(file), ": ", scoreflow::detail::torch_message(e)));
  }
  detail::assign(weights);
  if (average) ema->restore(average->parameters, average->buffers, average->updates);
  state = loaded;
}

}  // namespace scoreflow::training
