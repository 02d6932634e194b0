#pragma once
// The per-step learning-rate schedule of the trainer (TrainOptions::lr_schedule): a linear
// warm-up, then optionally a cosine decay (Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient
// Descent with Warm Restarts", Eq. 5, without restarts). It composes with, or replaces, the
// seed's per-epoch exponential decay (TrainOptions::lr_decay, the default schedule):
//
//   step t (0-based: the run's first optimizer step is t = 0), base rate η = lr · γ^epoch
//   (γ = lr_decay, or 1), W = warmup_steps, T = the horizon (below), η_min = min_lr:
//
//   warm-up   t < W        η · (t + 1) / W           (the first step already moves: lr/W, not 0)
//   cosine    W ≤ t < T    η_min + ½ (η − η_min) (1 + cos(π (t − W) / (T − W)))     (SGDR Eq. 5,
//                          T_cur = t − W, T_i = T − W; the curve starts at η right after warm-up)
//   after T   t ≥ T        η_min   (only if the horizon is set shorter than the run)
//   otherwise              η
//
// The cosine and lr_decay do not combine (an invalid_option): they are two answers to the same
// question. The rate is a pure function of (step, epoch), and both are in every checkpoint, so a
// resumed run follows the same curve bit for bit.
//
// The horizon T: lr_schedule.total_steps when given, else the run's planned steps, epochs ×
// batches per epoch, which the trainer learns at fit() from a data source that knows its length
// (DataSource::batches_per_epoch; tensor_source and loader_source do). max_steps does not shorten
// it: max_steps stops a run that a later fit continues, and the continued run must follow the
// same curve. A data source that does not know its length and no total_steps: the cosine is an
// invalid_option at fit() (it has nowhere to end), and a warm-up is not checked against the run.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>

#include "scoreflow/errors.hpp"

namespace scoreflow::training {

struct LrSchedule {
  std::int64_t warmup_steps = 0;              ///< W: linear warm-up over the first W steps (0: none)
  bool cosine = false;                        ///< after the warm-up, cosine decay to min_lr over the horizon
  double min_lr = 0.0;                        ///< η_min of the cosine (absolute, ≤ lr)
  std::optional<std::int64_t> total_steps{};  ///< T of the cosine; default: the run's planned steps

  /// Whether the rate changes from step to step (else only lr_decay changes it, per epoch).
  [[nodiscard]] bool per_step() const { return warmup_steps > 0 || cosine; }
};

/// The rate of step `step` (0-based) from the base rate `base` (lr · γ^epoch); `horizon` is T
/// (needed by the cosine only). The closed form at the top of this header.
inline double scheduled_lr(double base, const LrSchedule& s, std::int64_t step,
                           std::optional<std::int64_t> horizon = std::nullopt) {
  const auto t = static_cast<double>(step);
  const auto w = static_cast<double>(s.warmup_steps);
  if (step < s.warmup_steps) return base * (t + 1.0) / w;
  if (!s.cosine) return base;
  if (!horizon)
    throw invalid_option(
        "scheduled_lr: the cosine needs its horizon (lr_schedule.total_steps, or the run's planned steps)");
  if (step >= *horizon) return s.min_lr;
  const double progress = (t - w) / (static_cast<double>(*horizon) - w);
  return s.min_lr + 0.5 * (base - s.min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

namespace detail {
/// The options on their own (TrainOptions: lr is the peak rate).
inline LrSchedule checked(LrSchedule s, double lr) {
  using scoreflow::detail::require;
  require(s.warmup_steps >= 0, "lr_schedule.warmup_steps", s.warmup_steps, "must be non-negative");
  require(std::isfinite(s.min_lr) && s.min_lr >= 0.0 && s.min_lr <= lr, "lr_schedule.min_lr", s.min_lr,
          "must lie in [0, lr]");
  require(s.cosine || s.min_lr == 0.0, "lr_schedule.min_lr", s.min_lr,
          "is the floor of the cosine decay: set lr_schedule.cosine = true, or leave min_lr at 0");
  if (s.total_steps) {
    require(*s.total_steps >= 1, "lr_schedule.total_steps", *s.total_steps, "must be positive");
    require(s.per_step(), "lr_schedule.total_steps", *s.total_steps,
            "is the horizon of the warm-up and cosine: set warmup_steps or cosine, or leave it unset");
  }
  return s;
}

/// The horizon T for a run of `run_steps` planned steps (epochs × batches per epoch, when the data
/// source knows its length), and the check that the warm-up fits in it: with the cosine the
/// warm-up must end before T (W < T), without it it may fill the run (W ≤ T).
inline std::optional<std::int64_t> schedule_horizon(const LrSchedule& s, std::optional<std::int64_t> run_steps) {
  const std::optional<std::int64_t> horizon = s.total_steps ? s.total_steps : run_steps;
  if (s.cosine && !horizon)
    throw invalid_option(
        "lr_schedule.cosine = true: the data source does not know its length (DataSource::batches_per_epoch is "
        "empty), so the cosine has no end; set lr_schedule.total_steps");
  if (s.warmup_steps > 0 && horizon && (s.cosine ? s.warmup_steps >= *horizon : s.warmup_steps > *horizon))
    throw invalid_option(scoreflow::detail::concat(
        "lr_schedule.warmup_steps = ", s.warmup_steps, ": longer than the ",
        s.total_steps ? "lr_schedule.total_steps = " : "run's planned steps (epochs × batches per epoch) = ", *horizon,
        s.cosine ? " (the warm-up must end before the cosine decay can start)" : ""));
  return horizon;
}
}  // namespace detail

}  // namespace scoreflow::training
