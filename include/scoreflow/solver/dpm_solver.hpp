#pragma once
// DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
// Probabilistic Models", arXiv:2211.01095): exponential integrators of the probability-flow ODE in
// data-prediction form. With λ = log(α/σ) and h = λ_t − λ_s the ODE's exact solution is
//   x_t = (σ_t/σ_s) x_s + σ_t ∫_{λ_s}^{λ_t} e^λ x̂(λ) dλ,
// and the solvers differ in how they approximate x̂ on the step:
//   DPMSolverPP      multistep 1M / 2M / 3M (Alg. 2; 3M as diffusers writes it: order 2, see below)
//   SDEDPMSolverPP   SDE-DPM-Solver++ 1 / 2M (the paper's SDE variant; diffusers' "sde-dpmsolver++")
//   DPMSolverPP2S    single-step 2nd order, Alg. 1 with r = 1/2 (one extra model call at the λ-midpoint)
// All run on any SolverPath (DiffusionSchedule, FlowSchedule, SigmaSchedule), as rules
// rule(x, i, path, predict, history, gen) (solver/path.hpp). The multistep rules keep no state:
// their earlier answers are the loop's SolverHistory, and the order of each step is decided from
// how many usable answers it holds and where the step lies on the grid, exactly as diffusers'
// DPMSolverMultistepScheduler decides it from its counters.
//
// Both ends of a grid are handled by the limit of the formulas:
//   - a step from pure noise (α = 0, λ = −∞: flow t = 0) has h = +∞; it is first order (there is
//     no earlier answer), e^{−h} = 0 and x_t = σ_t x_s + α_t x̂_s, finite;
//   - an answer at pure noise never enters a later extrapolation: with λ_{s1} = −∞ the step ratio
//     r0 = h0/h is +∞ and the 2M/3M corrections vanish (D1 = (m0 − m1)/r0 → 0, D2 → 0), which is
//     exactly the lower-order formula on the remaining answers; we drop such answers up front;
//   - a step to clean data (σ = 0, λ = +∞) is first order (the extrapolations diverge there: D1
//     grows like h), as diffusers does with final_sigmas_type = "zero": x_t = α_t x̂_s.
#include <cmath>
#include <cstddef>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/solver/history.hpp"
#include "scoreflow/solver/noise_source.hpp"
#include "scoreflow/solver/path.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

namespace detail {
/// The earlier answers a multistep step at grid index i may extrapolate from, most recent first:
/// entries recorded before i, at most `max` of them, skipping any at pure noise (α = 0), whose
/// contribution to every extrapolation below is zero in the limit λ → −∞ (see the header comment).
template <Tensor T, class Path>
std::vector<const typename SolverHistory<T>::Entry*> earlier_answers(const SolverHistory<T>& history, std::size_t i,
                                                                    const Path& path, std::size_t max) {
  std::vector<const typename SolverHistory<T>::Entry*> out;
  for (auto it = history.entries.rbegin(); it != history.entries.rend() && out.size() < max; ++it) {
    if (it->index >= i) continue;
    if (path.level(it->index).is_pure_noise()) continue;
    out.push_back(&*it);
  }
  return out;
}

/// diffusers' DPMSolverMultistepScheduler.step order rule (also DEIS's, without the σ = 0 clause):
/// n = grid size − 1 steps, step i leaves grid index i;
///   final  = last step and (euler_at_final or (lower_order_final and n < 15) or it lands at σ = 0)
///   second = second-to-last step and lower_order_final and n < 15
///   order 1 if order == 1, no earlier answer, or final; 2 if order == 2, one earlier answer, or
///   second; else 3. `earlier` (the usable history size) plays diffusers' lower_order_nums.
inline int multistep_order(int order, std::size_t earlier, std::size_t i, std::size_t grid_size,
                           bool lower_order_final, bool euler_at_final, bool lands_clean) {
  const std::size_t n = grid_size - 1;
  const bool short_grid = lower_order_final && n < 15;
  const bool final_step = i + 1 == n && (euler_at_final || short_grid || lands_clean);
  const bool second_to_last = i + 2 == n && short_grid;
  if (order == 1 || earlier < 1 || final_step) return 1;
  if (order == 2 || earlier < 2 || second_to_last) return 2;
  return 3;
}

/// The sample an earlier entry kept (DEIS, iPNDM and UniPC record it; DPM-Solver++ does not).
template <class Entry>
const auto& sample_of(const Entry& e, const char* rule) {
  if (!e.x)
    throw invalid_option(concat(rule, ": history entry at grid index ", e.index,
                                " holds no sample (it was recorded by a rule that keeps only data estimates)"));
  return *e.x;
}

/// φ₁-type factor 1 − e^{−h} (= −expm1(−h)); 1 at h = +∞.
inline double one_minus_exp_neg(double h) { return -std::expm1(-h); }
}  // namespace detail

enum class DPMSolverVariant {
  midpoint,  ///< D1 weighted ½ α_t (1 − e^{−h}) (Lu et al. 2022, Alg. 2)
  heun       ///< D1 weighted α_t ((e^{−h} − 1)/h + 1) = α_t (1 − (1 − e^{−h})/h) (diffusers' "heun")
};

/// Which weight the 3M update gives its second difference D2 (see DPMSolverPP).
enum class DPMSolverThirdOrder {
  diffusers,  ///< −α_t ((e^{−h} − 1 + h)/h² − ½): diffusers' and the reference code's; order 2 in fact
  taylor      ///< α_t (h² − 2h + 2 − 2e^{−h})/h²: the Taylor term of x̂''; order 3
};

/// Multistep DPM-Solver++ (order 1: DDIM; 2: DPM-Solver++(2M); 3: 3M). One model call per step.
/// Equals diffusers' DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=order,
/// solver_type=variant, lower_order_final, euler_at_final), with final_sigmas_type="zero" on grids
/// that end at clean data (DiffusionGrid ending in −1, flow t = 1, σ = 0) and "sigma_min" on grids
/// that end at a noise level (a diffusion grid ending at timestep 0).
///
/// Order 3 is diffusers' 3M update (the DPM-Solver reference code has the same), kept exactly so
/// that results match diffusers. It converges at order 2, not 3: its D2 = (D1_0 − D1_1)/(r0 + r1)
/// approximates h² x̂''/2 but is weighted with the coefficient of h² x̂'', −α_t ((e^{−h} − 1 + h)/h²
/// − ½) (the Taylor term is α_t h³ φ₃(h) x̂'' with h³ φ₃ = (h² − 2h + 2 − 2e^{−h})/2), so the local
/// error is O(h³). Measured and explained in tests/core/solver/test_exponential_integrators.cpp.
/// `third_order = DPMSolverThirdOrder::taylor` weights D2 with the Taylor coefficient, twice
/// diffusers', α_t (h² − 2h + 2 − 2e^{−h})/h², and converges at order 3 (measured there too).
struct DPMSolverPP {
  int order = 2;                                        ///< 1, 2 or 3
  DPMSolverVariant variant = DPMSolverVariant::midpoint;  ///< the 2M correction (3M has one form)
  bool lower_order_final = true;  ///< on grids of < 15 steps: order 1 on the last step, ≤ 2 on the one before
  bool euler_at_final = false;    ///< order 1 on the last step whatever the grid
  DPMSolverThirdOrder third_order = DPMSolverThirdOrder::diffusers;  ///< 3M's D2 weight (diffusers' is 2nd order)

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& /*gen*/) const {
    detail::require(order >= 1 && order <= 3, "dpmpp.order", order, "must be 1, 2 or 3");
    T m0 = detail::data_at(path, predict, x, i);  // moved into the history once the update has read it
    const auto earlier = detail::earlier_answers(history, i, path, static_cast<std::size_t>(order - 1));
    const NoiseLevel s0 = path.level(i), t = path.level(i + 1);
    const int p = detail::multistep_order(order, earlier.size(), i, path.size(), lower_order_final, euler_at_final,
                                          t.is_clean());
    T next = [&] {
      const double h = t.lambda() - s0.lambda();
      const double phi = detail::one_minus_exp_neg(h);  // 1 − e^{−h}
      // First order (x̂ constant on the step) = DDIM: (σ_t/σ_s) x + α_t (1 − e^{−h}) m0.
      if (p == 1) return ops::axpby(t.sigma / s0.sigma, x, t.alpha * phi, m0);
      const double lambda_s0 = s0.lambda();
      const auto& e1 = *earlier[0];
      const double h0 = lambda_s0 - path.level(e1.index).lambda();
      const double r0 = h0 / h;
      if (p == 2) {
        // 2M (Alg. 2): x1 + c1 D1 with D1 = (m0 − m1)/r0, a backward difference of x̂ in λ scaled
        // to the step; collected per tensor into one pass over x, m0 and m1.
        const double c1 = variant == DPMSolverVariant::midpoint ? 0.5 * t.alpha * phi : t.alpha * (1.0 - phi / h);
        return ops::axpbypcz(t.sigma / s0.sigma, x, t.alpha * phi + c1 / r0, m0, -c1 / r0, e1.data);
      }
      const T x1 = ops::axpby(t.sigma / s0.sigma, x, t.alpha * phi, m0);
      // 3M (third-order multistep in data-prediction form, as diffusers' multistep_dpm_solver_third_order_update):
      //   D1_0 = (m0 − m1)/r0, D1_1 = (m1 − m2)/r1, D1 = D1_0 + r0/(r0 + r1) (D1_0 − D1_1),
      //   D2 = (D1_0 − D1_1)/(r0 + r1),
      //   x_t = x1 + α_t (1 − (1 − e^{−h})/h) D1 − α_t ((h − (1 − e^{−h}))/h² − ½) D2.
      const auto& e2 = *earlier[1];
      const double h1 = path.level(e1.index).lambda() - path.level(e2.index).lambda();
      const double r1 = h1 / h;
      const T d10 = ops::axpby(1.0 / r0, m0, -1.0 / r0, e1.data);
      const T d11 = ops::axpby(1.0 / r1, e1.data, -1.0 / r1, e2.data);
      const T diff = ops::sub(d10, d11);
      const T d1 = ops::axpby(1.0, d10, r0 / (r0 + r1), diff);
      const double c1 = t.alpha * (1.0 - phi / h);
      const double c2 = third_order == DPMSolverThirdOrder::taylor ? -2.0 * t.alpha * ((h - phi) / (h * h) - 0.5)
                                                                   : -t.alpha * ((h - phi) / (h * h) - 0.5);
      return ops::axpbypcz(1.0, x1, c1, d1, c2 / (r0 + r1), diff);
    }();
    history.record(i, std::move(m0), static_cast<std::size_t>(order));
    return next;
  }
};

/// SDE-DPM-Solver++ (Lu et al. 2022, the SDE solver in data-prediction form; order 1 and 2M), diffusers'
/// "sde-dpmsolver++":
///   x_t = (σ_t/σ_s) e^{−h} x + α_t (1 − e^{−2h}) m0 [+ 2M term] + σ_t √(1 − e^{−2h}) z,
///   2M term: midpoint ½ α_t (1 − e^{−2h}) D1, heun α_t ((1 − e^{−2h})/(−2h) + 1) D1.
/// z = noise(x, i, gen): drawn (DrawnNoise) or recorded (RecordedNoise, e.g. diffusers'
/// variance_noise). One draw per step, the last step included (its coefficient is 0 when it lands
/// at σ = 0), as diffusers draws one per step. The order rule is DPMSolverPP's.
/// Write SDEDPMSolverPP<>{.order = 2} (designated initializers do not deduce the default Noise on
/// every compiler: clang 14 lacks aggregate CTAD).
template <class Noise = DrawnNoise>
struct SDEDPMSolverPP {
  int order = 2;  ///< 1 or 2
  DPMSolverVariant variant = DPMSolverVariant::midpoint;
  bool lower_order_final = true;
  Noise noise{};

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& gen) const {
    detail::require(order >= 1 && order <= 2, "sde_dpmpp.order", order, "must be 1 or 2");
    T m0 = detail::data_at(path, predict, x, i);
    const auto earlier = detail::earlier_answers(history, i, path, static_cast<std::size_t>(order - 1));
    const NoiseLevel s0 = path.level(i), t = path.level(i + 1);
    const int p = detail::multistep_order(order, earlier.size(), i, path.size(), lower_order_final, false,
                                          t.is_clean());
    const T z = noise(x, i, gen);
    T next = [&] {
      const double h = t.lambda() - s0.lambda();
      const double e_h = std::exp(-h);                    // 0 at h = +∞
      const double phi2 = detail::one_minus_exp_neg(2.0 * h);  // 1 − e^{−2h}
      T mean = ops::axpby(t.sigma / s0.sigma * e_h, x, t.alpha * phi2, m0);
      if (p == 2) {
        const auto& e1 = *earlier[0];
        const double r0 = (s0.lambda() - path.level(e1.index).lambda()) / h;
        const T d1 = ops::axpby(1.0 / r0, m0, -1.0 / r0, e1.data);
        const double c1 =
            variant == DPMSolverVariant::midpoint ? 0.5 * t.alpha * phi2 : t.alpha * (phi2 / (-2.0 * h) + 1.0);
        mean = ops::axpby(1.0, mean, c1, d1);
      }
      return ops::axpby(1.0, mean, t.sigma * std::sqrt(phi2), z);
    }();
    history.record(i, std::move(m0), static_cast<std::size_t>(order));
    return next;
  }
};

/// Single-step DPM-Solver++(2S) (Lu et al. 2022, Alg. 1, r = ½): from x_s,
///   u = (σ_m/σ_s) x_s + α_m (1 − e^{−h/2}) x̂(x_s),  λ_m = λ_s + h/2,
///   x_t = (σ_t/σ_s) x_s + α_t (1 − e^{−h}) x̂(u, λ_m)          (D = x̂ at the midpoint for r = ½).
/// Two model calls per step, the second between grid points, so it needs a ContinuousPath.
/// A step with infinite h (from pure noise, flow t = 0, or to clean data, σ = 0) has no finite
/// midpoint; it is taken first order (DDIM, one call), as k-diffusion's dpmpp_2s takes its last
/// step to σ = 0. It uses no history.
struct DPMSolverPP2S {
  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& /*history*/,
               Generator& /*gen*/) const {
    static_assert(ContinuousPath<Path, T>,
                  "DPMSolverPP2S evaluates the model at the λ-midpoint of each step, but a DiffusionSchedule's "
                  "model takes integer timesteps; use FlowSchedule or SigmaSchedule (or the multistep "
                  "DPMSolverPP, which calls the model only on grid points)");
    if constexpr (ContinuousPath<Path, T>) {  // (only the assertion's message when it is not)
      const NoiseLevel s = path.level(i), t = path.level(i + 1);
      const double h = t.lambda() - s.lambda();
      const T m0 = detail::data_at(path, predict, x, i);
      if (!std::isfinite(h)) return ops::axpby(t.sigma / s.sigma, x, t.alpha * detail::one_minus_exp_neg(h), m0);
      const NoiseLevel mid = path.level_at_lambda(s.lambda() + 0.5 * h);
      const T u = ops::axpby(mid.sigma / s.sigma, x, mid.alpha * detail::one_minus_exp_neg(0.5 * h), m0);
      const T d = detail::data_at_level(path, predict, u, mid);
      return ops::axpby(t.sigma / s.sigma, x, t.alpha * detail::one_minus_exp_neg(h), d);
    } else {
      return x;
    }
  }
};

}  // namespace scoreflow
