#pragma once
// Shared by the example programs: train a model once, cache it, log and plot its loss, report
// progress. An interrupted run resumes from the last epoch checkpoint; a finished one is reused.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/report.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/io/loss_log.hpp"
#include "scoreflow/torch/io/plot.hpp"

namespace examples {

namespace fs = std::filesystem;
namespace tr = scoreflow::training;

/// The loss log of a run that resumes at `step` (scoreflow::resume_loss_log: later records are
/// cut off, so steps are neither lost nor doubled).
inline scoreflow::LossLog open_loss_log(const fs::path& csv, std::int64_t step) {
  return scoreflow::resume_loss_log(csv, step);
}

/// v with `digits` significant digits ("%g").
inline std::string fmt(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

/// How a gallery model trains beyond the seed's Adam with per-epoch decay (issue 15): each part
/// is a trainer or objective option (train_loop.hpp, ema.hpp, lr_schedule.hpp, objectives.hpp).
/// The default is the seed's recipe.
struct Recipe {
  std::optional<tr::EmaOptions> ema{};     ///< sample and evaluate the EMA of the weights
  std::int64_t warmup_steps = 0;           ///< linear warm-up
  bool cosine = false;                     ///< cosine decay per step instead of the seed's per-epoch decay
  std::optional<double> clip_grad_norm{};
  double weight_decay = 0.0;               ///< > 0: AdamW
  tr::TimeSampling time{};                 ///< the flow objective's t (flow models only)

  [[nodiscard]] bool is_seed() const {
    return !ema && warmup_steps == 0 && !cosine && !clip_grad_norm && weight_decay == 0.0 &&
           time.kind == tr::TimeSampling::Kind::uniform;
  }
  /// Sets the trainer options; `seed_decay` is the seed's per-epoch γ, kept unless the cosine replaces it.
  void apply(tr::TrainOptions& o, std::optional<double> seed_decay) const {
    o.lr_decay = cosine ? std::nullopt : seed_decay;
    o.lr_schedule.warmup_steps = warmup_steps;
    o.lr_schedule.cosine = cosine;
    o.clip_grad_norm = clip_grad_norm;
    o.ema = ema;
    if (weight_decay > 0) o.optimizer = tr::OptimizerKind::adamw, o.weight_decay = weight_decay;
  }
  /// "EMA 0.999, warm-up 30 steps, cosine, clip 1, AdamW 0.01, logit-normal t (0, 1)", or "" for the seed's.
  [[nodiscard]] std::string text() const {
    std::string out;
    auto add = [&](const std::string& part) { out += (out.empty() ? "" : ", ") + part; };
    if (ema) add(ema->sigma_rel ? "power-function EMA, σ_rel " + fmt(*ema->sigma_rel)
                                : "EMA of the weights, decay " + fmt(ema->decay, 6) + (ema->warmup ? " with warm-up" : ""));
    if (warmup_steps > 0) add("lr warm-up " + std::to_string(warmup_steps) + " steps");
    if (cosine) add("cosine lr decay per step");
    if (clip_grad_norm) add("gradient norm clipped at " + fmt(*clip_grad_norm));
    if (weight_decay > 0) add("AdamW, weight decay " + fmt(weight_decay));
    if (time.kind == tr::TimeSampling::Kind::logit_normal)
      add("logit-normal t (m = " + fmt(time.location) + ", s = " + fmt(time.scale) + ")");
    return out;
  }
};

/// cache/<name>-<hash of the configuration>: a run is reused only by the same configuration, so
/// changing an option retrains instead of silently loading a stale model.
inline fs::path run_dir(const fs::path& cache, const std::string& name, const tr::TrainOptions& o,
                        const std::string& model_and_data, const Recipe& recipe = {}) {
  std::string key = model_and_data + "|" + std::to_string(o.epochs) + "|" + std::to_string(o.batch_size) + "|" +
                    std::to_string(o.lr) + "|" + (o.lr_decay ? std::to_string(*o.lr_decay) : "none") + "|" +
                    std::to_string(o.seed);
  if (!recipe.is_seed()) key += "|" + recipe.text();  // seed-recipe runs keep their earlier cache keys
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(std::hash<std::string>{}(key)));
  return cache / (name + "-" + std::string(hex).substr(0, 10));
}

struct TrainedRun {
  tr::TrainingState state;
  double seconds = 0;       ///< wall time spent training in this process
  bool reused = false;      ///< loaded a finished run from the cache
  double final_epoch_loss = 0;
};

/// Trains `trainer` on `data` with checkpoints in cache/name, the loss log in
/// report/<name>_loss.csv and its plot in report/<name>_loss.png. `on_epoch(summary)` runs after
/// every epoch trained in this process (e.g. to sample snapshots).
template <class Trainer, class OnEpoch>
TrainedRun train_cached(const std::string& name, const std::string& title, Trainer& trainer, const tr::DataSource& data,
                        Report& report, OnEpoch&& on_epoch) {
  TrainedRun run;
  const bool resumed = trainer.resume();
  run.reused = resumed && trainer.state().epoch >= trainer.options().epochs;
  const auto csv = report.path(name + "_loss.csv");
  Progress progress("training " + title);
  if (!run.reused) {
    auto log = open_loss_log(csv, trainer.state().step);
    tr::TrainCallbacks callbacks;
    callbacks.on_loss = [&](std::int64_t step, std::int64_t epoch, double loss) {
      log.write({step, epoch, loss, trainer.current_lr()});
    };
    callbacks.on_progress = [&](const tr::TrainProgress& p) {
      std::fprintf(stderr, "\r[scoreflow] %s: epoch %lld/%lld step %lld%s loss %.4f, %.0f images/s, ETA %.0f s   ", title.c_str(),
                   static_cast<long long>(p.epoch + 1), static_cast<long long>(p.epochs), static_cast<long long>(p.step),
                   p.total_steps ? ("/" + std::to_string(*p.total_steps)).c_str() : "", p.loss, p.images_per_second,
                   p.eta_seconds.value_or(0.0));
    };
    callbacks.on_epoch_end = [&](const tr::EpochSummary& s) {
      std::fprintf(stderr, "\n[scoreflow] %s: epoch %lld mean loss %.5f (%.1f s)\n", title.c_str(),
                   static_cast<long long>(s.epoch), s.mean_loss, s.seconds);
      run.final_epoch_loss = s.mean_loss;
      on_epoch(s);
    };
    trainer.fit(data, callbacks);
  } else {
    std::fprintf(stderr, "[scoreflow] %s: reusing the finished run in %s\n", title.c_str(),
                 trainer.checkpoint_path().string().c_str());
  }
  run.seconds = progress.finish();
  run.state = trainer.state();
  scoreflow::PlotOptions plot;
  plot.title = title + ": training loss";
  scoreflow::plot_loss_curve(csv, report.path(name + "_loss.png"), plot);
  if (run.final_epoch_loss == 0) {  // reused: recompute the last epoch's mean from the log
    double sum = 0;
    int n = 0;
    for (const auto& r : scoreflow::read_loss_log(csv))
      if (r.epoch == run.state.epoch - 1) sum += r.loss, ++n;
    run.final_epoch_loss = n ? sum / n : 0.0;
  }
  report.timing("train " + title, run.seconds);
  return run;
}

/// The numbers shown beside every loss curve.
inline std::vector<std::pair<std::string, std::string>> loss_numbers(const TrainedRun& run) {
  return {{"final epoch mean loss", fmt(run.final_epoch_loss)}, {"training time", fmt(run.seconds, 3) + " s"}};
}

}  // namespace examples
