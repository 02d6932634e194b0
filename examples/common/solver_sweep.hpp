#pragma once
// Quality against model calls: every named solver (common/solvers.hpp) at several call budgets
// on one model, the same noise for every point, scored by the gallery's evaluator beside a
// reference run (the seed's loop, or the converged ODE). Each point's samples are exported as
// samples/sweep-<model>-<solver>-<calls>-{images-idx3,labels-idx1}-ubyte and the curves drawn as
// two PNGs (Fréchet distance and CAS against model calls, one line per solver).
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/captions.hpp"
#include "common/cli.hpp"
#include "common/context.hpp"
#include "common/report.hpp"
#include "common/solvers.hpp"
#include "common/training_run.hpp"
#include "scoreflow/torch/io/plot.hpp"

namespace examples {

/// What a model's sweep runs: the solvers by name and the model-call budgets per sample.
struct SweepPlan {
  std::vector<std::string> solvers;
  std::vector<int> budgets;  ///< model calls per sample; a solver with c calls per step runs budget/c steps
};

struct SweepPoint {
  std::string solver;
  int steps = 0;
  std::size_t calls = 0;  ///< model calls per sample the run made (a batched CFG call counts once)
  Quality q;
  double seconds = 0;
  /// RMS pixel distance ([0, 1] units) to the reference run's samples from the same noise: how far
  /// the solver's ODE solution is from the converged one, which FD and CAS cannot show (a blurry
  /// but plausible set can score as well as the reference).
  double rmse_to_reference = NAN;
};

/// The images of one run and the model calls it made.
struct SampledRun {
  torch::Tensor images;
  std::size_t calls = 0;
};
using SampleBy = std::function<SampledRun(const SolverChoice&, int steps)>;

/// "euler,heun,dpmpp_2m" → names (each checked against the table).
inline std::vector<std::string> parse_names(const std::string& text) {
  const auto out = split_list(text);
  for (const auto& name : out) solver_info(name);
  return out;
}

/// "4,6,8,10" → {4, 6, 8, 10}, each in [1, 10000].
inline std::vector<int> parse_integers(const std::string& text, const std::string& option) {
  std::vector<int> out;
  for (const auto& item : split_list(text)) {
    const auto v = whole_int(item);
    if (!v || *v < 1 || *v > 10000)
      throw scoreflow::invalid_option(option + ": '" + item + "' is not an integer in [1, 10000]");
    out.push_back(*v);
  }
  return out;
}

/// Runs the plan; points whose budget the solver cannot meet (fewer calls than one step, or an
/// adaptive solver) are skipped, except dopri5, which runs once at its default tolerance.
inline std::vector<SweepPoint> run_sweep(const std::string& model, const SweepPlan& plan, const SampleBy& sample,
                                         Context& ctx, const torch::Tensor& labels, const torch::Tensor& reference,
                                         Report& report) {
  std::vector<SweepPoint> points;
  for (const auto& name : plan.solvers) {
    const auto& info = solver_info(name);
    std::vector<int> steps_list;
    if (info.calls_per_step == 0) {
      steps_list = {1};
    } else {
      for (int budget : plan.budgets)
        if (budget >= info.calls_per_step && (steps_list.empty() || steps_list.back() != budget / info.calls_per_step))
          steps_list.push_back(budget / info.calls_per_step);
    }
    for (int steps : steps_list) {
      Progress p("sweep " + model + ": " + name + ", " + std::to_string(steps) + " steps");
      const auto run = sample(SolverChoice{name}, steps);
      SweepPoint pt{name, steps, run.calls, quality(ctx, run.images, labels), p.finish(),
                    (run.images - reference).pow(2).mean().sqrt().item<double>()};
      export_idx(report, "sweep-" + model + "-" + name + "-" + std::to_string(pt.calls), run.images, labels);
      std::fprintf(stderr, "[scoreflow] sweep %s %s %zu calls: FD %.2f, CAS %.1f%%, RMSE to the reference %.4f\n",
                   model.c_str(), name.c_str(), pt.calls, pt.q.fd, 100 * pt.q.cas, pt.rmse_to_reference);
      points.push_back(std::move(pt));
    }
  }
  return points;
}

/// The two plots (FD and CAS against model calls), the reference drawn as a flat line.
inline void plot_sweep(const std::string& model, const std::vector<SweepPoint>& points, const std::string& reference,
                       const Quality& ref, const std::string& fd_png, const std::string& cas_png,
                       const std::string& rmse_png, Report& report) {
  std::map<std::string, scoreflow::PlotSeries> fd, cas, rmse;
  double max_calls = 1;
  for (const auto& pt : points) {
    auto& f = fd[pt.solver];
    auto& c = cas[pt.solver];
    f.name = c.name = solver_info(pt.solver).display;
    f.x.push_back(static_cast<double>(pt.calls)), f.y.push_back(pt.q.fd);
    c.x.push_back(static_cast<double>(pt.calls)), c.y.push_back(100 * pt.q.cas);
    if (pt.rmse_to_reference > 0) {
      auto& r = rmse[pt.solver];
      r.name = f.name;
      r.x.push_back(static_cast<double>(pt.calls)), r.y.push_back(pt.rmse_to_reference);
    }
    max_calls = std::max(max_calls, static_cast<double>(pt.calls));
  }
  std::vector<scoreflow::PlotSeries> fd_series{{reference, {1, max_calls}, {ref.fd, ref.fd}}},
      cas_series{{reference, {1, max_calls}, {100 * ref.cas, 100 * ref.cas}}};
  for (auto& [k, s] : fd) fd_series.push_back(std::move(s));
  for (auto& [k, s] : cas) cas_series.push_back(std::move(s));
  scoreflow::PlotOptions o;
  o.xlabel = "model calls per sample (a batched CFG call counts once)";
  o.width = 1000, o.height = 560, o.ema = 0;
  o.title = model + ": Fréchet distance against model calls (lower is better)";
  o.ylabel = "Fréchet distance";
  o.log_y = true;
  scoreflow::plot_series(report.path(fd_png), fd_series, o, true);
  o.title = model + ": CAS against model calls";
  o.ylabel = "CAS (%)";
  o.log_y = false;
  scoreflow::plot_series(report.path(cas_png), cas_series, o, true);
  std::vector<scoreflow::PlotSeries> rmse_series;
  for (auto& [k, s] : rmse) rmse_series.push_back(std::move(s));
  if (rmse_series.empty()) return;
  o.title = model + ": RMS distance to the reference's samples (same noise)";
  o.ylabel = "RMS pixel distance to " + reference;
  o.log_y = true;
  scoreflow::plot_series(report.path(rmse_png), rmse_series, o, true);
}

/// The cheapest point whose samples lie within `max_rmse` (RMS, [0, 1] pixel units) of the
/// reference's samples from the same noise.
inline const SweepPoint* cheapest_close(const std::vector<SweepPoint>& points, double max_rmse) {
  const SweepPoint* best = nullptr;
  for (const auto& pt : points)
    if (pt.rmse_to_reference <= max_rmse && (!best || pt.calls < best->calls)) best = &pt;
  return best;
}

/// The cheapest point whose FD matches the reference's within ±`tolerance` (relative), if any.
/// Two-sided: on these models a few-step point often reads well *below* the converged reference
/// (stop 26, DDPM: DDIM 4 at 0.65×), and that is a different distribution, not a match.
inline const SweepPoint* cheapest_matching(const std::vector<SweepPoint>& points, double ref_fd, double tolerance) {
  const SweepPoint* best = nullptr;
  for (const auto& pt : points)
    if (std::abs(pt.q.fd / ref_fd - 1) <= tolerance && (!best || pt.calls < best->calls)) best = &pt;
  return best;
}
/// The cheapest point whose FD is at most (1 + `tolerance`) × the reference's, if any.
inline const SweepPoint* cheapest_at_most(const std::vector<SweepPoint>& points, double ref_fd, double tolerance) {
  const SweepPoint* best = nullptr;
  for (const auto& pt : points)
    if (pt.q.fd <= ref_fd * (1 + tolerance) && (!best || pt.calls < best->calls)) best = &pt;
  return best;
}

inline std::string sweep_table(const std::vector<SweepPoint>& points, double ref_fd);

/// The numbers beside a sweep's FD figure: the reference, `extra` (e.g. the seed's own loop), the
/// cheapest point whose FD matches the reference's within ±5%, the cheapest at most 1.05× it, the
/// cheapest within RMS 0.02 of its samples, and every point.
inline Numbers sweep_numbers(const std::vector<SweepPoint>& points, const Quality& ref, Numbers extra = {}) {
  const auto describe = [](const SweepPoint* p, const std::string& what) {
    return p ? std::string(solver_info(p->solver).display) + ", " + std::to_string(p->calls) + " calls (" + what + ")"
             : std::string("none in this sweep");
  };
  const auto* matching = cheapest_matching(points, ref.fd, 0.05);
  const auto* at_most = cheapest_at_most(points, ref.fd, 0.05);
  const auto* by_distance = cheapest_close(points, 0.02);
  const auto fd_of = [&](const SweepPoint* p) { return p ? "FD " + fmt(p->q.fd) + ", " + fmt(p->q.fd / ref.fd, 3) + "×" : ""; };
  Numbers n{{"reference FD / CAS", fmt(ref.fd) + " / " + fmt(100 * ref.cas, 3) + "%"}};
  n.insert(n.end(), extra.begin(), extra.end());
  n.emplace_back("fewest calls whose FD matches the reference's within ±5%", describe(matching, fd_of(matching)));
  n.emplace_back("fewest calls whose FD is at most 1.05× the reference's", describe(at_most, fd_of(at_most)));
  n.emplace_back("fewest calls within RMS 0.02 of the reference's samples",
                 describe(by_distance, by_distance ? "RMSE " + fmt(by_distance->rmse_to_reference, 3) : ""));
  n.emplace_back("points", sweep_table(points, ref.fd));
  return n;
}

/// "solver calls: FD (ratio to the reference), CAS; …" for the caption's numbers.
inline std::string sweep_table(const std::vector<SweepPoint>& points, double ref_fd) {
  std::string s;
  for (const auto& pt : points)
    s += std::string(solver_info(pt.solver).display) + " " + std::to_string(pt.calls) + ": FD " + fmt(pt.q.fd) + " (" +
         fmt(pt.q.fd / ref_fd, 3) + "×), CAS " + fmt(100 * pt.q.cas, 3) + "%, RMSE " + fmt(pt.rmse_to_reference, 3) + "; ";
  return s;
}

}  // namespace examples
