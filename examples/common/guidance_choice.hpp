#pragma once
// Guidance methods chosen by name at run time (examples/sample): a small table from names to the
// compile-time policies of scoreflow/policy/guidance.hpp; no string parsing inside the library.
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "scoreflow/core.hpp"

namespace examples {

struct GuidanceChoice {
  std::string method = "cfg";
  double phi = 0.7;                 ///< rescaled: φ
  double eta = 0.0, momentum = -0.5, norm_threshold = 0.0;  ///< apg
  std::size_t zero_init_steps = 1;  ///< zero_star
  std::string space;                ///< model or data (empty: the method's default)
  std::optional<std::pair<double, double>> interval;  ///< guidance for EDM σ in (lo, hi]
  std::optional<std::pair<double, double>> ramp;      ///< weight from first to last step
};

struct GuidanceInfo {
  std::string_view name, summary;
};

inline constexpr GuidanceInfo guidance_table[] = {
    {"cfg", "classifier-free guidance u + γ(c − u) (Ho & Salimans 2022)"},
    {"rescaled", "CFG with rescale φ (--rescale-phi; Lin et al. 2024, §3.4)"},
    {"apg", "adaptive projected guidance on data estimates (--apg-eta, --apg-momentum, --apg-norm-threshold; Sadat et al. 2024)"},
    {"zero_star", "CFG-Zero*: optimised unconditional scale and zero-init steps (--zero-init-steps; Fan et al. 2025)"},
};

inline void validate(const GuidanceChoice& g) {
  bool known = false;
  std::string names;
  for (const auto& i : guidance_table) {
    known = known || i.name == g.method;
    names += (names.empty() ? "" : ", ") + std::string(i.name);
  }
  if (!known) throw scoreflow::invalid_option("guidance method '" + g.method + "': unknown; known: " + names);
  if (!g.space.empty() && g.space != "model" && g.space != "data")
    throw scoreflow::invalid_option("guidance space '" + g.space + "': must be model or data");
  if (g.interval && !(g.interval->first < g.interval->second))
    throw scoreflow::invalid_option("guidance interval: lo must be below hi (EDM σ, guidance for σ in (lo, hi])");
}

inline scoreflow::GuidanceOptions guidance_options(const GuidanceChoice& g) {
  scoreflow::GuidanceOptions o;
  if (g.space == "data" || (g.space.empty() && g.method == "apg")) o.space = scoreflow::GuidanceSpace::data;
  if (g.interval) o.interval = scoreflow::GuidanceInterval{g.interval->first, g.interval->second};
  if (g.ramp) o.schedule = scoreflow::GuidanceSchedule::linear(g.ramp->first, g.ramp->second);
  return o;
}

/// Calls f(guidance) with the chosen method's ClassifierFree policy.
template <class C, class F>
auto with_guidance(const GuidanceChoice& g, double gamma, C unconditional, F&& f) {
  validate(g);
  const auto o = guidance_options(g);
  if (g.method == "rescaled")
    return f(scoreflow::ClassifierFree<C, scoreflow::RescaledCfg>{gamma, std::move(unconditional), {g.phi}, o});
  if (g.method == "apg")
    return f(scoreflow::ClassifierFree<C, scoreflow::ProjectedCfg>{
        gamma, std::move(unconditional), {g.eta, g.momentum, g.norm_threshold}, o});
  if (g.method == "zero_star")
    return f(scoreflow::ClassifierFree<C, scoreflow::ZeroStarCfg>{gamma, std::move(unconditional), {g.zero_init_steps}, o});
  return f(scoreflow::ClassifierFree<C>{gamma, std::move(unconditional), {}, o});
}

}  // namespace examples
