#pragma once
// Classic Runge–Kutta rules for the flow ODE dx/dt = u(x, t) (the flow family of
// solver/flow_solvers.hpp: rule(x, FlowTime t, FlowTime t_next, predict)): the classical
// fourth-order method and the adaptive Dormand–Prince 5(4) pair. Every model evaluation goes
// through `predict`, so the sampler's StepInfo::model_calls counts them.
//
// Both evaluate the velocity at t_next. A true velocity model is defined at t = 1; one converted
// from a data (x̂₁) or noise prediction divides by zero there (flow::to_velocity), so with those
// models integrate to t < 1 (or use Heun's Euler last step, flow_solvers.hpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/process/time_grid.hpp"
#include "scoreflow/solver/flow_solvers.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

/// The classical Runge–Kutta method (Kutta 1901; Hairer, Nørsett & Wanner I, §II.1):
///   k₁ = u(x, t), k₂ = u(x + h/2 k₁, t + h/2), k₃ = u(x + h/2 k₂, t + h/2), k₄ = u(x + h k₃, t + h),
///   x' = x + h/6 (k₁ + 2k₂ + 2k₃ + k₄).  Four calls per step; fourth order.
struct RK4 {
  static constexpr int calls_per_step = 4;

  template <Tensor T, class Predict>
  T operator()(const T& x, FlowTime t, FlowTime t_next, Predict&& predict) const {
    const double h = t_next.value - t.value, t0 = t.value;
    const T k1 = detail::velocity(predict, x, t0);
    const T k2 = detail::velocity(predict, ops::axpby(1.0, x, 0.5 * h, k1), t0 + 0.5 * h);
    const T k3 = detail::velocity(predict, ops::axpby(1.0, x, 0.5 * h, k2), t0 + 0.5 * h);
    const T k4 = detail::velocity(predict, ops::axpby(1.0, x, h, k3), t_next.value);
    const T inner = ops::axpby(1.0, ops::add(k1, k4), 2.0, ops::add(k2, k3));
    return ops::axpby(1.0, x, h / 6.0, inner);
  }
};

namespace detail {
/// Dormand & Prince 1980, "A family of embedded Runge–Kutta formulae", the pair RK5(4)7M: nodes,
/// the stage matrix, the fifth-order weights b (= the last stage row: FSAL) and the weights of the
/// error estimate e = b − b̂ (b̂ the embedded fourth-order weights).
struct DormandPrince54 {
  static constexpr std::array<double, 7> c{0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0};
  static constexpr std::array<std::array<double, 6>, 7> a{{
      {},
      {1.0 / 5},
      {3.0 / 40, 9.0 / 40},
      {44.0 / 45, -56.0 / 15, 32.0 / 9},
      {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
      {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
      {35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84},
  }};
  // b − b̂ with b̂ = (5179/57600, 0, 7571/16695, 393/640, −92097/339200, 187/2100, 1/40).
  static constexpr std::array<double, 7> e{71.0 / 57600,      0.0,        -71.0 / 16695, 71.0 / 1920,
                                           -17253.0 / 339200, 22.0 / 525, -1.0 / 40};
};

/// One Dormand–Prince step from (t, x) of signed size h, given k₁ = u(x, t): the fifth-order
/// solution x', the error estimate h Σ e_i k_i (x' minus the embedded fourth-order solution) and
/// k₇ = u(x', t + h), the next step's k₁ (FSAL). Six model calls.
template <Tensor T>
struct DormandPrinceStep {
  T x;
  T error;
  T k_last;
};

template <Tensor T, class Predict>
DormandPrinceStep<T> dormand_prince_step(const T& x, double t, double h, const T& k1, Predict& predict) {
  using Tableau = DormandPrince54;
  std::vector<T> k{k1};
  k.reserve(7);
  const auto stage_input = [&](std::size_t s) {  // x + h Σ_j a_sj k_j
    T stage = x;
    for (std::size_t j = 0; j < s; ++j)
      if (Tableau::a[s][j] != 0.0) stage = ops::axpby(1.0, stage, h * Tableau::a[s][j], k[j]);
    return stage;
  };
  for (std::size_t s = 1; s < 6; ++s)
    k.push_back(velocity(predict, stage_input(s), s == 5 ? t + h : t + Tableau::c[s] * h));  // c₆ = 1: exactly t + h
  T x_new = stage_input(6);  // stage 7's input is the fifth-order solution
  k.push_back(velocity(predict, x_new, t + h));
  T error = ops::scale(h * Tableau::e[0], k[0]);
  for (std::size_t j = 1; j < 7; ++j)
    if (Tableau::e[j] != 0.0) error = ops::axpby(1.0, error, h * Tableau::e[j], k[j]);
  return {std::move(x_new), std::move(error), std::move(k[6])};
}

/// RMS over all elements of v/(atol + rtol · scale) (Hairer, Nørsett & Wanner I, §II.4, eq. 4.11;
/// scipy's and torchdiffeq's norm). `scale` holds the elementwise max(|x₀|, |x₁|) or |x₀|.
inline double scaled_rms(const std::vector<double>& v, const std::vector<double>& scale, double rtol, double atol) {
  double sum = 0.0;
  for (std::size_t k = 0; k < v.size(); ++k) {
    const double q = v[k] / (atol + rtol * scale[k]);
    sum += q * q;
  }
  return v.empty() ? 0.0 : std::sqrt(sum / static_cast<double>(v.size()));
}
}  // namespace detail

/// Adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; the DOPRI5 of Hairer, Nørsett & Wanner I,
/// §II.5), first-same-as-last, integrating the whole interval [t, t_next] of its step with as many
/// internal steps as the tolerance needs; sample with FlowGrid{{t₀, t₁}} for one adaptive solve.
///
///   error   err = ‖h Σ e_i k_i / (atol + rtol max(|x|, |x'|))‖_RMS (HNW I eq. 4.10–4.11; the
///           norm scipy's RK45 and torchdiffeq's dopri5 use); the step is accepted when err ≤ 1.
///   control the PI ("stabilized") controller of Hairer & Wanner II, §IV.2 (Gustafsson 1991), as in
///           Hairer's DOPRI5 code: h_new = h · clamp(safety · err^{−(1/5 − 0.75 β)} · err_prev^{β},
///           min_factor, max_factor), β = 0.04, err_prev the last accepted error (≥ 1e-4); after a
///           rejection h_new = h · max(min_factor, safety · err^{−(1/5 − 0.75 β)}) and the next
///           accepted step may not grow. β = 0 is the standard control of HNW I eq. 4.13, which
///           scipy's RK45 and torchdiffeq's dopri5 use (torchdiffeq never shrinks an accepted step).
///   start   h_initial > 0, or Hairer's starting step (HNW I §II.4, "Starting step size"; scipy's
///           select_initial_step), which costs one model call.
///   end     a step that would pass t_next, or stop short of it by less than 1 % of the step,
///           is set to end there (DOPRI5).
///
/// Model calls: 6 per attempted step plus the first stage (and the starting-step call); the
/// sampler's StepInfo::model_calls reports them. Needs HostCopyable T: the error norm is a scalar
/// over all elements, computed on the host.
struct Dopri5 {
  double rtol = 1e-5, atol = 1e-5;
  double h_initial = 0.0;         ///< 0: Hairer's automatic starting step
  std::size_t max_steps = 10000;  ///< attempted internal steps (accepted + rejected) per interval
  double safety = 0.9, min_factor = 0.2, max_factor = 10.0;
  static constexpr double pi_beta = 0.04;  ///< Hairer's DOPRI5 default for the stabilized control

  void validate() const {
    detail::require(std::isfinite(rtol) && rtol > 0.0, "dopri5.rtol", rtol, "must be finite and positive");
    detail::require(std::isfinite(atol) && atol > 0.0, "dopri5.atol", atol, "must be finite and positive");
    detail::require(std::isfinite(h_initial) && h_initial >= 0.0, "dopri5.h_initial", h_initial,
                    "must be finite and non-negative (0: automatic)");
    detail::require(max_steps > 0, "dopri5.max_steps", max_steps, "must be positive");
    detail::require(std::isfinite(safety) && safety > 0.0 && safety <= 1.0, "dopri5.safety", safety,
                    "must lie in (0, 1]");
    detail::require(std::isfinite(min_factor) && min_factor > 0.0 && min_factor <= 1.0, "dopri5.min_factor", min_factor,
                    "must lie in (0, 1]");
    detail::require(std::isfinite(max_factor) && max_factor >= 1.0, "dopri5.max_factor", max_factor,
                    "must be finite and at least 1");
  }

  template <Tensor T, class Predict>
  T operator()(const T& x0, FlowTime t_from, FlowTime t_to, Predict&& predict) const {
    static_assert(HostCopyable<T>,
                  "Dopri5 computes its error norm over all elements on the host: the tensor "
                  "type must be HostCopyable (tensor_traits<T>::to_vector / from_vector)");
    validate();
    const double t_end = t_to.value, direction = t_end >= t_from.value ? 1.0 : -1.0;
    const double span = std::abs(t_end - t_from.value);
    double t = t_from.value;
    T x = x0;
    if (span == 0.0) return x;
    std::vector<double> xs = ops::to_vector(x);
    const auto abs_of = [](std::vector<double> v) {
      for (auto& e : v) e = std::abs(e);
      return v;
    };
    T k_first = detail::velocity(predict, x, t);
    double h = h_initial > 0.0 ? std::min(h_initial, span) : starting_step(x, xs, k_first, t, span, direction, predict);
    double err_prev = 1e-4;
    bool rejected = false;
    std::size_t attempts = 0;
    while (direction * (t_end - t) > 0.0) {
      if (attempts == max_steps)
        throw invalid_option(detail::concat("dopri5.max_steps = ", max_steps, ": exceeded at t = ", t, " of [",
                                            t_from.value, ", ", t_end, "] (rtol = ", rtol, ", atol = ", atol,
                                            "): raise max_steps or loosen the tolerances"));
      if (0.1 * h <= std::abs(t) * std::numeric_limits<double>::epsilon())
        throw invalid_option(detail::concat("dopri5: step size h = ", h, " underflowed at t = ", t, " (rtol = ", rtol,
                                            ", atol = ", atol, "): the tolerances cannot be met there"));
      ++attempts;
      if (direction * (t + 1.01 * direction * h - t_end) > 0.0) h = std::abs(t_end - t);  // last step (DOPRI5)
      const double hs = direction * h;
      detail::DormandPrinceStep<T> step = detail::dormand_prince_step(x, t, hs, k_first, predict);
      const std::vector<double> xs_new = ops::to_vector(step.x);
      std::vector<double> scale = abs_of(xs);
      for (std::size_t m = 0; m < scale.size(); ++m) scale[m] = std::max(scale[m], std::abs(xs_new[m]));
      const double err = detail::scaled_rms(ops::to_vector(step.error), scale, rtol, atol);
      if (!std::isfinite(err))
        throw non_finite_error(detail::concat("dopri5: non-finite error estimate on the step t = ", t, " -> ", t + hs,
                                              " (the velocity is not finite there)"));
      const double grow = std::pow(err, 0.2 - 0.75 * pi_beta);  // 1/factor before the PI term
      if (err <= 1.0) {
        double factor = std::clamp(safety / (grow / std::pow(err_prev, pi_beta)), min_factor, max_factor);
        if (rejected) factor = std::min(factor, 1.0);
        err_prev = std::max(err, 1e-4);
        rejected = false;
        t = direction * (t_end - (t + hs)) <= 0.0 ? t_end : t + hs;
        x = std::move(step.x);
        xs = xs_new;
        k_first = std::move(step.k_last);
        h *= factor;
      } else {
        rejected = true;
        h *= std::max(min_factor, safety / grow);
      }
    }
    return x;
  }

 private:
  /// HNW I, §II.4 "Starting step size" (RMS norms, as scipy): h₀ = 0.01 ‖x‖/‖u‖ (1e-6 if either
  /// is below 1e-5), one Euler step to estimate the second derivative ‖u(x + h₀u) − u‖/h₀ = d₂,
  /// then h = min(100 h₀, (0.01/max(‖u‖, d₂))^{1/5}) within the interval.
  template <Tensor T, class Predict>
  double starting_step(const T& x, const std::vector<double>& xs, const T& u0, double t, double span, double direction,
                       Predict& predict) const {
    std::vector<double> scale(xs.size());
    for (std::size_t m = 0; m < xs.size(); ++m) scale[m] = std::abs(xs[m]);
    const auto us = ops::to_vector(u0);
    const double d0 = detail::scaled_rms(xs, scale, rtol, atol), d1 = detail::scaled_rms(us, scale, rtol, atol);
    double h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : 0.01 * d0 / d1;
    h0 = std::min(h0, span);
    const T u1 = detail::velocity(predict, ops::axpby(1.0, x, direction * h0, u0), t + direction * h0);
    const T du = ops::sub(u1, u0);
    const double d2 = detail::scaled_rms(ops::to_vector(du), scale, rtol, atol) / h0;
    const double dmax = std::max(d1, d2);
    const double h1 = dmax <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dmax, 1.0 / 5.0);
    return std::min({100.0 * h0, h1, span});
  }
};

}  // namespace scoreflow
