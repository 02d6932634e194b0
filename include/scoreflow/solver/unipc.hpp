#pragma once
// UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
// Diffusion Models", arXiv:2302.04867), data-prediction form ("predict_x0"): the multistep
// predictor UniP-p (Alg. 2) and the corrector UniC (Alg. 3), which improves x_i with the model's
// answer at x_i — the answer the next predictor needs anyway, so the corrector costs no model call.
// UniPC-p with the corrector has order p + 1 (Thm 3.1).
//
// One step at grid index i (one model call, m_i = x̂(x_i)):
//   1. UniC: if the previous grid point's sample x_{i−1} and answer are in the history, replace
//      x_i by the corrected x_i^c, from x_{i−1}, the earlier answers and m_i;
//   2. UniP: predict x_{i+1} from x_i^c, m_i and the earlier answers;
//   3. record (i, x_i^c, m_i) in the history (the corrected sample is what step i+1 corrects from).
// This is the order of diffusers' UniPCMultistepScheduler.step, whose last_sample / model_outputs
// are our SolverHistory, so a cancelled run resumed from FromState{x, grid_index, history}
// continues exactly.
//
// Both forms of B(h) (the paper's §3.2): bh1 B(h) = h, bh2 B(h) = e^h − 1 (with h → −h in the
// data-prediction form, as diffusers: hh = −h). The residual's coefficients ρ enter only as
// B(h)·ρ, which we solve for directly: R (Bρ) = g with g_k = k! h φ_{k+1}, so no 1/B(h) appears.
// diffusers divides by B(h) and multiplies back, which for bh1 at a step to σ = 0 (h = ∞) is
// ∞·0 = NaN even for the first-order predictor (whose residual is empty); ours is the limit,
// x_{i+1} = α x̂_i.
//
// Deviations from diffusers, each where diffusers has no finite result:
//   - a predictor step to clean data (σ = 0) is first order whatever the order and
//     lower_order_final: every higher UniP residual grows like h there (diffusers returns ±inf or,
//     for order 3, fails in linalg.solve); the same rule diffusers' DPM-Solver++ applies with
//     final_sigmas_type="zero";
//   - answers at pure noise (α = 0: flow t = 0) are not extrapolated from (their ratio r_k is
//     infinite and their residual term vanishes, the limit), and the corrector is skipped on a
//     step from pure noise, where h = ∞ and bh1's B(h)ρ with ρ = ½ diverges (diffusers never
//     places a point at α = 0: it shifts flow σ = 1 to 1 − 1e-6).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/noise_level.hpp"
#include "scoreflow/solver/dpm_solver.hpp"
#include "scoreflow/solver/history.hpp"
#include "scoreflow/solver/path.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

enum class UniPCVariant {
  bh1,  ///< B(h) = h
  bh2   ///< B(h) = e^h − 1 (diffusers' default; the paper recommends it for guided sampling)
};

namespace detail {
/// Solves the k×k system A y = b (k ≤ 3) by Gaussian elimination with partial pivoting.
inline std::vector<double> solve_small(std::vector<std::array<double, 3>> a, std::vector<double> b) {
  const std::size_t k = b.size();
  for (std::size_t c = 0; c < k; ++c) {
    std::size_t pivot = c;
    for (std::size_t r = c + 1; r < k; ++r)
      if (std::abs(a[r][c]) > std::abs(a[pivot][c])) pivot = r;
    std::swap(a[c], a[pivot]);
    std::swap(b[c], b[pivot]);
    for (std::size_t r = c + 1; r < k; ++r) {
      const double f = a[r][c] / a[c][c];
      for (std::size_t j = c; j < k; ++j) a[r][j] -= f * a[c][j];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> y(k);
  for (std::size_t c = k; c-- > 0;) {
    double v = b[c];
    for (std::size_t j = c + 1; j < k; ++j) v -= a[c][j] * y[j];
    y[c] = v / a[c][c];
  }
  return y;
}

/// B(h)·ρ for a UniPC residual of `size` terms with ratios rks (the last one 1 for the
/// corrector's own point): R[a][k] = rks[k]^a, g_a = (a+1)! hφ_{a+2}(hh) as diffusers builds
/// them (hφ₁ = e^{hh} − 1, hφ_{k+1} = hφ_k/hh − 1/(k+1)!, Zhao et al. 2023 eq. 6 / Alg. 2–3).
/// `simplified`: diffusers' fixed ρ = ½ (order-2 predictor, order-1 corrector).
inline std::vector<double> unipc_b_rho(UniPCVariant variant, double hh, const std::vector<double>& rks,
                                       std::size_t size, bool simplified) {
  const double b_h = variant == UniPCVariant::bh1 ? hh : std::expm1(hh);
  if (simplified) return {0.5 * b_h};
  std::vector<std::array<double, 3>> r(size);
  std::vector<double> g(size);
  double h_phi_k = std::expm1(hh) / hh - 1.0;
  double factorial = 1.0;
  for (std::size_t a = 0; a < size; ++a) {
    for (std::size_t k = 0; k < size; ++k) r[a][k] = std::pow(rks[k], static_cast<double>(a));
    g[a] = h_phi_k * factorial;
    factorial *= static_cast<double>(a + 2);
    h_phi_k = h_phi_k / hh - 1.0 / factorial;
  }
  return solve_small(std::move(r), std::move(g));
}
}  // namespace detail

/// UniPC with data prediction. One model call per step. Equals diffusers'
/// UniPCMultistepScheduler(predict_x0=True, solver_order=order, solver_type=variant,
/// lower_order_final, disable_corrector=[] or every step) on its grids (see the deviations above).
struct UniPC {
  int order = 2;                              ///< predictor order p: 1, 2 or 3
  UniPCVariant variant = UniPCVariant::bh2;
  bool corrector = true;                      ///< UniC (order p + 1); false: UniP alone (diffusers' disable_corrector)
  bool lower_order_final = true;              ///< predictor order ≤ the steps left (diffusers: any grid length)

  template <Tensor T, class Path, class Predict>
  T operator()(const T& x, std::size_t i, const Path& path, Predict&& predict, SolverHistory<T>& history,
               Generator& /*gen*/) const {
    detail::require(order >= 1 && order <= 3, "unipc.order", order, "must be 1, 2 or 3");
    const std::size_t n = path.size() - 1;  // steps in the grid (diffusers' len(timesteps))
    const auto cap = [&](std::size_t left) {
      return lower_order_final ? std::min<std::size_t>(static_cast<std::size_t>(order), left)
                               : static_cast<std::size_t>(order);
    };
    T m_i = detail::data_at(path, predict, x, i);  // moved into the history once both updates have read it
    const auto earlier = detail::earlier_answers(history, i, path, static_cast<std::size_t>(order));
    const NoiseLevel l_i = path.level(i);

    // UniC at x_i from x_{i−1} (Alg. 3), when the history holds the previous grid point. Its order
    // is the one the predictor used on the step i−1 → i: min(order, steps left then, answers
    // available then + 1) = min(cap(n − i + 1), earlier.size()).
    const auto corrected = [&]() -> T {
      if (!(corrector && !earlier.empty() && earlier[0]->index + 1 == i)) return x;  // the history keeps its own copy
      const auto& prev = *earlier[0];
      const std::size_t p = std::min(cap(n - i + 1), earlier.size());
      return update(detail::sample_of(prev, "unipc"), prev.data, path.level(prev.index), l_i, earlier, 1, path, p, &m_i);
    };
    T x_i = corrected();
    // UniP from x_i^c (Alg. 2): order min(cap(n − i), earlier + 1); first order onto σ = 0.
    const NoiseLevel l_next = path.level(i + 1);
    const std::size_t p = l_next.is_clean() ? 1 : std::min(cap(n - i), earlier.size() + 1);
    T next = update(x_i, m_i, l_i, l_next, earlier, 0, path, p, static_cast<const T*>(nullptr));
    // Then (the predictor has read the history) record the corrected sample and the answer at i.
    history.record(i, std::move(x_i), std::move(m_i), static_cast<std::size_t>(order));
    return next;
  }

 private:
  /// One UniP (m_t null) or UniC update of order p from (x_s, m_s) at level s to level t, with the
  /// p − 1 earlier answers prev[first], …, prev[first + p − 2] and, for UniC, the answer m_t at t:
  ///   x_t = (σ_t/σ_s) x_s − α_t hφ₁(hh) m_s − α_t Σ_k (Bρ)_k D_k,
  ///   D_k = (m_k − m_s)/r_k, r_k = (λ_k − λ_s)/h, and UniC's last D = m_t − m_s (r = 1).
  template <Tensor T, class Path>
  T update(const T& x_s, const T& m_s, NoiseLevel s, NoiseLevel t,
           const std::vector<const typename SolverHistory<T>::Entry*>& prev, std::size_t first, const Path& path,
           std::size_t p, const T* m_t) const {
    const double lambda_s = s.lambda();
    const double h = t.lambda() - lambda_s;
    const double hh = -h;
    const double c_x = t.sigma / s.sigma, c_s = -t.alpha * std::expm1(hh);
    if (p == 1 && !m_t) return ops::axpby(c_x, x_s, c_s, m_s);  // first-order predictor: no residual (finite for h = ∞)
    std::vector<double> rks;
    std::vector<const T*> answers;  // m_k of each difference D_k, in order
    for (std::size_t k = 0; k + 1 < p; ++k) {
      const auto& e = *prev[first + k];
      rks.push_back((path.level(e.index).lambda() - lambda_s) / h);
      answers.push_back(&e.data);
    }
    if (m_t) {
      rks.push_back(1.0);
      answers.push_back(m_t);
    }
    // UniP-p solves over its p − 1 differences (diffusers' R[:-1, :-1]), with ρ = ½ for p = 2;
    // UniC-p over its p − 1 differences and m_t (the full R), with ρ = ½ for p = 1.
    const bool simplified = m_t ? p == 1 : p == 2;
    const auto b_rho = detail::unipc_b_rho(variant, hh, rks, answers.size(), simplified);
    // −α_t Σ (Bρ)_k D_k with D_k = (m_k − m_s)/r_k, collected per tensor: m_k gets
    // w_k = −α_t (Bρ)_k / r_k and m_s −Σ w_k, so the update is one pass over x_s, m_s and m_1
    // (and one more per further answer) instead of two per difference.
    std::vector<double> w(answers.size());
    double c_m = c_s;
    for (std::size_t k = 0; k < answers.size(); ++k) {
      w[k] = -t.alpha * b_rho[k] / rks[k];
      c_m -= w[k];
    }
    T out = ops::axpbypcz(c_x, x_s, c_m, m_s, w[0], *answers[0]);
    for (std::size_t k = 1; k < answers.size(); ++k) out = ops::axpby(1.0, out, w[k], *answers[k]);
    return out;
  }
};

}  // namespace scoreflow
