#pragma once
// ODE solvers for flow matching, dx/dt = u(x, t), t from 0 (noise) to 1 (data), the seed's
// convention. Each receives `predict(x, time)` (guidance and combiners included) and converts
// whatever the model predicts to a velocity.
#include "scoreflow/process/process.hpp"
#include "scoreflow/process/time_grid.hpp"

namespace scoreflow {

namespace detail {
template <Tensor T, class Predict>
T velocity(Predict& predict, const T& x, double t) {
  return flow::to_velocity(predict(x, FlowTime{t}), x, t);
}
}  // namespace detail

/// Seed Part B §2.3: x ← x + h u(x, t). One model call per step; first order.
struct Euler {
  static constexpr int calls_per_step = 1;
  template <Tensor T, class Predict>
  T operator()(const T& x, FlowTime t, FlowTime t_next, Predict&& predict) const {
    return ops::axpby(1.0, x, t_next.value - t.value, detail::velocity(predict, x, t.value));
  }
};

/// Explicit midpoint: x ← x + h u(x + h/2 u(x, t), t + h/2). Two calls; second order.
struct Midpoint {
  static constexpr int calls_per_step = 2;
  template <Tensor T, class Predict>
  T operator()(const T& x, FlowTime t, FlowTime t_next, Predict&& predict) const {
    const double h = t_next.value - t.value;
    const T mid = ops::axpby(1.0, x, 0.5 * h, detail::velocity(predict, x, t.value));
    return ops::axpby(1.0, x, h, detail::velocity(predict, mid, t.value + 0.5 * h));
  }
};

/// Heun (trapezoidal predictor–corrector): two calls, second order. By default the step that ends
/// at t = 1 is an Euler step, as k-diffusion does at σ = 0: a velocity converted from a data or
/// noise prediction is undefined there (one first-order step keeps the global order 2). A true
/// velocity model is defined at t = 1; set `euler_last_step = false` to correct that step too.
struct Heun {
  static constexpr int calls_per_step = 2;
  bool euler_last_step = true;
  template <Tensor T, class Predict>
  T operator()(const T& x, FlowTime t, FlowTime t_next, Predict&& predict) const {
    const double h = t_next.value - t.value;
    const T u0 = detail::velocity(predict, x, t.value);
    const T euler = ops::axpby(1.0, x, h, u0);
    if (euler_last_step && t_next.value >= 1.0) return euler;
    const T u1 = detail::velocity(predict, euler, t_next.value);
    return ops::axpby(1.0, x, 0.5 * h, ops::add(u0, u1));
  }
};

}  // namespace scoreflow
