#pragma once
// Sampling the seed's flow-matching UNets through scoreflow::Sampler (Part B §2.3, §2.6), with the
// solver chosen at run time by name (common/solvers.hpp).
#include <string>
#include <utility>
#include <vector>

#include "common/cli.hpp"
#include "common/solvers.hpp"
#include "common/training_run.hpp"  // fmt
#include "scoreflow/core.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/models/inference.hpp"
#include "scoreflow/torch/tensor.hpp"

namespace examples {

/// A solver's display name for captions ("Heun", "DPM-Solver++(2M)", …).
inline std::string name(const SolverChoice& s) { return solver_info(s.name).display; }
/// Model calls per grid step (0: adaptive; count the calls with the sampler's StepInfo instead).
inline int calls_per_step(const SolverChoice& s) { return solver_info(s.name).calls_per_step; }
inline SolverChoice parse_solver(const std::string& s) {
  solver_info(s);  // unknown names: one line listing the known ones
  return SolverChoice{s};
}

/// Images per model forward when sampling: small chunks stay in cache on a CPU (inference.hpp).
inline constexpr std::int64_t forward_chunk = 8;

/// "euler:300,heun:10,midpoint:15" → {(euler, 300), (heun, 10), (midpoint, 15)}.
inline std::vector<std::pair<SolverChoice, int>> parse_solver_list(const std::string& text) {
  std::vector<std::pair<SolverChoice, int>> out;
  for (const auto& item : split_list(text)) {
    const auto colon = item.find(':');
    if (colon == std::string::npos)
      throw scoreflow::invalid_option("solver list item '" + item + "': expected <solver>:<steps>, e.g. heun:10");
    const auto steps = whole_int(item.substr(colon + 1));
    if (!steps) throw scoreflow::invalid_option("solver list item '" + item + "': steps must be an integer");
    if (*steps < 1 || *steps > 100000)
      throw scoreflow::invalid_option("solver list item '" + item + "': steps must lie in [1, 100000]");
    out.emplace_back(parse_solver(item.substr(0, colon)), *steps);
  }
  return out;
}

struct FlowSampling {
  int steps = 300;               ///< seed §2.3: 300 Euler steps
  SolverChoice solver{"euler"};
  double gamma = 5.0;            ///< seed §2.6: CFG γ = 5
  std::int64_t chunk = 250;      ///< images per sampler run (memory bound)
  /// Where the steps lie, by name (common/solvers.hpp): the seed's uniform grid, or SD3's shift
  /// grid (Esser et al. 2024, §5.3.2; FlowGrid::shifted), which spends more of them near the noise.
  std::string grid = "uniform";
  double shift = 1.0;            ///< the shift grid's s (1: the uniform grid)
};

/// The grid `s` names: `s.steps` intervals from noise (t = 0) to data (t = 1).
inline scoreflow::FlowGrid grid_of(const FlowSampling& s) { return flow_grid(s.grid, s.steps, s.shift); }

/// Calls f(schedule) with a FlowSchedule of the chosen solver on the chosen grid.
template <class F>
auto with_solver(const FlowSampling& s, F&& f) {
  return with_flow_schedule(s.solver, grid_of(s), std::forward<F>(f));
}

/// "the uniform grid", "the shift grid (s = 3)": where the steps lie, for captions.
inline std::string grid_text(const FlowSampling& s) {
  return "the " + s.grid + " grid" + (s.grid == "shift" ? " (s = " + fmt(s.shift) + ")" : "");
}

/// "10 Heun steps", or "10 Heun steps on the shift grid (s = 3)": how samples were drawn, for captions.
inline std::string sampling_text(const FlowSampling& s) {
  const auto text = std::to_string(s.steps) + " " + name(s.solver) + " steps";
  return s.grid == "uniform" ? text : text + " on " + grid_text(s);
}

/// n samples from the time-conditioned UNet (seed Algorithm 2).
inline torch::Tensor sample_time_flow(scoreflow::models::TimeConditionalUNet net, std::int64_t n, const FlowSampling& s,
                                      scoreflow::Generator& gen, torch::Device device) {
  auto model = scoreflow::models::micro_batched(scoreflow::models::flow_velocity(net), forward_chunk);
  std::vector<torch::Tensor> parts;
  for (std::int64_t done = 0; done < n; done += s.chunk) {
    const auto k = std::min(s.chunk, n - done);
    parts.push_back(with_solver(s, [&](auto schedule) {
      return scoreflow::Sampler{schedule}.sample(model, scoreflow::PureNoise<torch::Tensor>{torch::zeros({k, 1, 28, 28}, device)}, gen);
    }).cpu());
  }
  return torch::cat(parts);
}

/// Samples of the class-conditioned UNet for `labels`, with CFG γ (seed Algorithm 4).
/// `calls` (when given) receives the model calls per sample of the last sampler run.
inline torch::Tensor sample_class_flow(scoreflow::models::ClassConditionalUNet net, const torch::Tensor& labels,
                                       const FlowSampling& s, scoreflow::Generator& gen, torch::Device device,
                                       std::size_t* calls = nullptr) {
  auto model = scoreflow::models::micro_batched(scoreflow::models::flow_velocity(net), forward_chunk);
  std::vector<torch::Tensor> parts;
  const auto n = labels.size(0);
  for (std::int64_t done = 0; done < n; done += s.chunk) {
    const auto k = std::min(s.chunk, n - done);
    const auto cond =
        scoreflow::models::one_hot(labels.slice(0, done, done + k), scoreflow::models::num_classes(net)).to(device);
    parts.push_back(with_solver(s, [&](auto schedule) {
      scoreflow::Sampler sampler{schedule, scoreflow::ClassifierFree<torch::Tensor>{s.gamma, torch::zeros_like(cond)},
                                 scoreflow::SinglePrompt<torch::Tensor>{cond}};
      return sampler.sample(model, scoreflow::PureNoise<torch::Tensor>{torch::zeros({k, 1, 28, 28}, device)}, gen,
                            [&](const scoreflow::StepInfo<torch::Tensor>& info) {
                              if (calls) *calls = info.model_calls;
                            });
    }).cpu());
  }
  return torch::cat(parts);
}

/// 0, 0, 0, 0, 1, 1, … : `per_class` of each of 10 digits.
inline torch::Tensor digit_labels(std::int64_t per_class) {
  return torch::arange(10, torch::kLong).repeat_interleave(per_class);
}

}  // namespace examples
