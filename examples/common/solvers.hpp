#pragma once
// Solvers and grids chosen by name at run time: a small table from names to the library's
// compile-time policies, shared by `sample` (the command-line front end) and the gallery's solver
// sweeps. The library itself parses no strings; this file is the one place that does.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "scoreflow/core.hpp"

namespace examples {

/// A solver by name plus the options a command line may set (0 / unset: the solver's default).
struct SolverChoice {
  std::string name = "euler";
  int order = 0;               ///< multistep order (dpmpp, unipc, deis, ipndm, k_lms); 0: default
  bool corrector = true;       ///< UniPC's UniC corrector
  double eta = 1.0;            ///< k_euler_ancestral's η
  double s_churn = 0.0;        ///< k_heun's churn (EDM Alg. 2)
  double rtol = 1e-5, atol = 1e-5;  ///< dopri5
};

/// Which model families a solver serves.
enum Families : unsigned { flow_family = 1, diffusion_family = 2, both_families = 3 };

struct SolverInfo {
  const char* name;
  const char* display;   ///< for captions
  const char* summary;   ///< one line for --help
  unsigned families;
  int calls_per_step;    ///< model calls per grid step (0: adaptive)
  int max_order = 0;     ///< --order accepted in 1..max_order (0: the solver has no order option)
};

inline const std::vector<SolverInfo>& solver_table() {
  static const std::vector<SolverInfo> table = {
      {"ddpm", "DDPM", "DDPM ancestral step, posterior variance (Ho et al. 2020, eq. 7; the seed's loop)", diffusion_family, 1},
      {"ddim", "DDIM", "DDIM, deterministic (Song et al. 2021, eq. 12)", diffusion_family, 1},
      {"euler", "Euler", "Euler on the flow ODE (the seed's sampler)", flow_family, 1},
      {"midpoint", "midpoint", "explicit midpoint, 2nd order", flow_family, 2},
      {"heun", "Heun", "Heun / trapezoidal, 2nd order", flow_family, 2},
      {"rk4", "RK4", "classical Runge-Kutta, 4th order", flow_family, 4},
      {"dopri5", "Dopri5", "adaptive Dormand-Prince 5(4), --rtol/--atol; one interval, steps ignored", flow_family, 0},
      {"dpmpp_2m", "DPM-Solver++(2M)", "DPM-Solver++(2M) multistep, midpoint (Lu et al. 2022); --order 1..3", both_families, 1, 3},
      {"dpmpp_2m_heun", "DPM-Solver++(2M, Heun)", "DPM-Solver++(2M) multistep, Heun variant; --order 1..3", both_families, 1, 3},
      {"dpmpp_3m", "DPM-Solver++(3M)", "DPM-Solver++(3M) as diffusers (its D2 weight makes it 2nd order)", both_families, 1, 3},
      {"dpmpp_3m_taylor", "DPM-Solver++(3M, Taylor)", "DPM-Solver++(3M) with the Taylor D2 weight: 3rd order", both_families, 1, 3},
      {"dpmpp_2m_sde", "SDE-DPM-Solver++(2M)", "SDE-DPM-Solver++(2M), stochastic (Lu et al. 2022, sec. 4)", both_families, 1, 2},
      {"dpmpp_2s", "DPM-Solver++(2S)", "DPM-Solver++(2S) single-step, 2 calls per step (continuous time only)", flow_family, 2},
      {"unipc_bh1", "UniPC-bh1", "UniPC, B(h) = h, UniC corrector (Zhao et al. 2023); --order 1..3, --no-corrector", both_families, 1, 3},
      {"unipc_bh2", "UniPC-bh2", "UniPC, B(h) = e^h - 1 (diffusers' default); --order 1..3, --no-corrector", both_families, 1, 3},
      {"deis", "DEIS", "DEIS-tAB, log-rho (Zhang & Chen 2023); --order 1..3", both_families, 1, 3},
      {"ipndm", "iPNDM", "improved PNDM, Adams-Bashforth on the DDIM ODE; --order 1..4", both_families, 1, 4},
      {"k_euler", "k-Euler", "k-diffusion Euler in VE coordinates (Karras et al. 2022)", both_families, 1},
      {"k_euler_ancestral", "k-Euler ancestral", "k-diffusion Euler ancestral, --eta", both_families, 1},
      {"k_heun", "k-Heun", "k-diffusion Heun (EDM Alg. 2), --s-churn", both_families, 2},
      {"k_dpm_2", "k-DPM-2", "k-diffusion DPM-Solver-2 (continuous time only)", flow_family, 2},
      {"k_lms", "k-LMS", "k-diffusion linear multistep; --order (default 4)", both_families, 1, 4},
      {"k_dpmpp_2m", "k-DPM++(2M)", "k-diffusion DPM-Solver++(2M) in VE coordinates", both_families, 1},
  };
  return table;
}

/// Checks the options a command line gave against the named solver, before any model is loaded.
inline void validate(const SolverChoice& c);

inline const SolverInfo& solver_info(const std::string& name) {
  for (const auto& s : solver_table())
    if (name == s.name) return s;
  std::string all;
  for (const auto& s : solver_table()) all += std::string(all.empty() ? "" : ", ") + s.name;
  throw scoreflow::invalid_option("solver = " + name + ": unknown (one of " + all + ")");
}

inline void validate(const SolverChoice& c) {
  const auto& info = solver_info(c.name);
  if (c.order != 0) {
    if (info.max_order == 0)
      throw scoreflow::invalid_option("order = " + std::to_string(c.order) + ": solver " + c.name + " has no order option");
    if (c.order < 1 || c.order > info.max_order)
      throw scoreflow::invalid_option("order = " + std::to_string(c.order) + ": solver " + c.name + " takes 1.." +
                                      std::to_string(info.max_order));
  }
  scoreflow::detail::require(std::isfinite(c.rtol) && c.rtol > 0, "rtol", c.rtol, "must be positive");
  scoreflow::detail::require(std::isfinite(c.atol) && c.atol > 0, "atol", c.atol, "must be positive");
  scoreflow::detail::require(std::isfinite(c.eta) && c.eta >= 0, "eta", c.eta, "must be finite and non-negative");
  scoreflow::detail::require(std::isfinite(c.s_churn) && c.s_churn >= 0, "s_churn", c.s_churn,
                             "must be finite and non-negative");
}

namespace detail {
inline int order_or(const SolverChoice& c, int fallback) { return c.order > 0 ? c.order : fallback; }
inline scoreflow::UniPC unipc(const SolverChoice& c, scoreflow::UniPCVariant v) {
  scoreflow::UniPC u;
  u.order = order_or(c, u.order);
  u.variant = v;
  u.corrector = c.corrector;
  return u;
}
inline scoreflow::DPMSolverPP dpmpp(const SolverChoice& c, int order, scoreflow::DPMSolverVariant v) {
  scoreflow::DPMSolverPP d;
  d.order = order_or(c, order);
  d.variant = v;
  return d;
}
inline void require_family(const SolverChoice& c, Families family) {
  const auto& info = solver_info(c.name);
  if (!(info.families & family))
    throw scoreflow::invalid_option(
        "solver = " + c.name + ": " +
        (family == diffusion_family ? "needs a continuous-time model (a flow); a DDPM's model takes integer timesteps"
                                    : "is a diffusion (DDPM/DDIM) step; a flow model needs an ODE solver"));
}

/// f(rule) for every rule that runs on any SolverPath (solver/path.hpp).
template <class F>
auto with_path_rule(const SolverChoice& c, F&& f) {
  namespace sf = scoreflow;
  const auto& n = c.name;
  if (n == "dpmpp_2m") return f(dpmpp(c, 2, sf::DPMSolverVariant::midpoint));
  if (n == "dpmpp_2m_heun") return f(dpmpp(c, 2, sf::DPMSolverVariant::heun));
  if (n == "dpmpp_3m") return f(dpmpp(c, 3, sf::DPMSolverVariant::midpoint));
  if (n == "dpmpp_3m_taylor") {
    auto d = dpmpp(c, 3, sf::DPMSolverVariant::midpoint);
    d.third_order = sf::DPMSolverThirdOrder::taylor;
    return f(d);
  }
  if (n == "dpmpp_2m_sde") {
    sf::SDEDPMSolverPP<> d;
    d.order = order_or(c, d.order);
    return f(d);
  }
  if (n == "unipc_bh1") return f(unipc(c, sf::UniPCVariant::bh1));
  if (n == "unipc_bh2") return f(unipc(c, sf::UniPCVariant::bh2));
  if (n == "deis") {
    sf::DEIS d;
    d.order = order_or(c, d.order);
    return f(d);
  }
  if (n == "ipndm") {
    sf::IPNDM d;
    d.order = order_or(c, d.order);
    return f(d);
  }
  if (n == "k_euler") return f(sf::KEuler{});
  if (n == "k_euler_ancestral") {
    sf::KEulerAncestral<> k;
    k.eta = c.eta;
    return f(k);
  }
  if (n == "k_heun") {
    sf::KHeun<> k;
    k.s_churn = c.s_churn;
    return f(k);
  }
  if (n == "k_lms") {
    sf::KLMS k;
    k.order = order_or(c, k.order);
    return f(k);
  }
  if (n == "k_dpmpp_2m") return f(sf::KDPMPP2M{});
  solver_info(n);  // unknown names throw there
  throw scoreflow::invalid_option("solver = " + n + ": not a solver of this model family");
}
}  // namespace detail

/// f(schedule) with a FlowSchedule of the named solver on `grid`.
template <class F>
auto with_flow_schedule(const SolverChoice& c, const scoreflow::FlowGrid& grid, F&& f) {
  namespace sf = scoreflow;
  detail::require_family(c, flow_family);
  const auto& n = c.name;
  if (n == "euler") return f(sf::FlowSchedule<sf::Euler>{grid});
  if (n == "midpoint") return f(sf::FlowSchedule<sf::Midpoint>{grid});
  if (n == "heun") return f(sf::FlowSchedule<sf::Heun>{grid, sf::Heun{false}});
  if (n == "rk4") return f(sf::FlowSchedule<sf::RK4>{grid});
  if (n == "dopri5") {
    sf::Dopri5 d;
    d.rtol = c.rtol, d.atol = c.atol;
    return f(sf::FlowSchedule<sf::Dopri5>{sf::FlowGrid({grid.times().front(), grid.times().back()}), d});
  }
  if (n == "dpmpp_2s") return f(sf::FlowSchedule<sf::DPMSolverPP2S>{grid});
  if (n == "k_dpm_2") return f(sf::FlowSchedule<sf::KDPM2>{grid});
  return detail::with_path_rule(c, [&](auto rule) { return f(sf::FlowSchedule<decltype(rule)>{grid, rule}); });
}

/// f(schedule) with a DiffusionSchedule of the named solver on `table` and `grid`.
template <class F>
auto with_diffusion_schedule(const SolverChoice& c, const scoreflow::NoiseSchedule& table,
                             const scoreflow::DiffusionGrid& grid, F&& f) {
  namespace sf = scoreflow;
  detail::require_family(c, diffusion_family);
  if (c.name == "ddpm") return f(sf::DiffusionSchedule<sf::DDPMStep>{table, grid});
  if (c.name == "ddim") return f(sf::DiffusionSchedule<sf::DDIMStep>{table, grid});
  return detail::with_path_rule(c, [&](auto rule) { return f(sf::DiffusionSchedule<decltype(rule)>{table, grid, rule}); });
}

// ---- grids by name -------------------------------------------------------------------------------

struct GridInfo {
  const char* name;
  const char* summary;
  unsigned families;
};

inline const std::vector<GridInfo>& grid_table() {
  static const std::vector<GridInfo> table = {
      {"uniform", "flow: t_i = i/n (the seed's grid)", flow_family},
      {"shift", "flow: uniform grid shifted, sigma' = s sigma/(1 + (s - 1) sigma), sigma = 1 - t (SD3); --shift", flow_family},
      {"logsnr", "flow: uniform in lambda = log(t/(1 - t)) between t = 1e-3 and 1 - 1e-3, then 0 and 1", flow_family},
      {"linspace", "diffusion: diffusers' timestep_spacing 'linspace', then clean data", diffusion_family},
      {"leading", "diffusion: diffusers' 'leading' (its default for DDPM/DDIM)", diffusion_family},
      {"trailing", "diffusion: diffusers' 'trailing' (Lin et al. 2024 sec. 3.3)", diffusion_family},
      {"strided", "diffusion: the seed's 990, 960, ..., 0 (steps ignored)", diffusion_family},
      {"karras", "diffusion: Karras rho = 7 sigmas over the table's range, nearest timesteps", diffusion_family},
      {"exponential", "diffusion: log-uniform sigmas over the table's range, nearest timesteps", diffusion_family},
  };
  return table;
}

inline const GridInfo& grid_info(const std::string& name, Families family) {
  for (const auto& g : grid_table())
    if (name == g.name) {
      if (!(g.families & family))
        throw scoreflow::invalid_option("grid = " + name + ": not a " +
                                        (family == flow_family ? std::string("flow") : std::string("diffusion")) +
                                        " grid");
      return g;
    }
  std::string all;
  for (const auto& g : grid_table()) all += std::string(all.empty() ? "" : ", ") + g.name;
  throw scoreflow::invalid_option("grid = " + name + ": unknown (one of " + all + ")");
}

/// λ = log(t/(1 − t)) uniform between t = 1e-3 and 1 − 1e-3, with t = 0 (pure noise) first and
/// t = 1 (data) last: `steps` intervals in all.
inline scoreflow::FlowGrid logsnr_flow_grid(int steps) {
  scoreflow::detail::require(steps >= 2, "steps", steps, "must be at least 2 for the logsnr grid");
  const double l = std::log(1e-3 / (1 - 1e-3));
  return scoreflow::logsnr_uniform_flow_grid(steps - 1, l, -l, true);
}

inline scoreflow::FlowGrid flow_grid(const std::string& name, int steps, double shift) {
  grid_info(name, flow_family);
  if (name == "shift") return scoreflow::FlowGrid::shifted(scoreflow::FlowGrid::uniform(steps), shift);
  if (name == "logsnr") return logsnr_flow_grid(steps);
  return scoreflow::FlowGrid::uniform(steps);
}

inline scoreflow::DiffusionGrid diffusion_grid(const std::string& name, int steps, const scoreflow::NoiseSchedule& table) {
  namespace sf = scoreflow;
  grid_info(name, diffusion_family);
  using Spacing = sf::DiffusionGrid::Spacing;
  if (name == "linspace") return sf::DiffusionGrid::spaced(steps, table.size(), Spacing::linspace);
  if (name == "trailing") return sf::DiffusionGrid::spaced(steps, table.size(), Spacing::trailing);
  if (name == "strided") return sf::DiffusionGrid::strided();
  if (name == "karras" || name == "exponential") {
    const auto& ac = table.alphas_cumprod();
    const double lo = std::sqrt((1 - ac.front()) / ac.front()), hi = std::sqrt((1 - ac.back()) / ac.back());
    const auto sigmas = name == "karras" ? sf::karras_sigmas(steps, lo, hi) : sf::exponential_sigmas(steps, lo, hi);
    return sf::DiffusionGrid::from_sigmas(table, sigmas);
  }
  return sf::DiffusionGrid::spaced(steps, table.size(), Spacing::leading);
}

}  // namespace examples
