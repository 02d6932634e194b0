#pragma once
// Exception types of scoreflow. Every message names the parameter (or file, or step) and the
// offending value, so a user can fix the call without reading our source.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace scoreflow {

/// An option or argument outside its valid range (γ not finite, σ ≤ 0, i_start past the grid...).
struct invalid_option : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// Tensors whose shapes do not fit together (mask vs image, denoiser output vs input...).
struct shape_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// A sampler step produced NaN or ±inf; the message names the step index and time.
struct non_finite_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Thrown out of `Sampler::sample` when the step callback asked to stop.
struct cancelled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  out.precision(17);
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

/// `require(cond, "gamma", gamma, "must be finite")` → invalid_option("gamma = nan: must be finite").
template <class Value>
void require(bool condition, const char* parameter, const Value& value, const char* what) {
  if (!condition) throw invalid_option(concat(parameter, " = ", value, ": ", what));
}
}  // namespace detail
}  // namespace scoreflow
