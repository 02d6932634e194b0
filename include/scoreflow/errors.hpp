#pragma once
// Exception types of scoreflow. Every message names the parameter (or file, or step) and the
// offending value, so a user can fix the call without reading our source.
#include <charconv>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
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
/// Floating-point values in their shortest round-trip form (0.3, not 0.29999999999999999):
/// exact, yet readable in a message.
template <class Part>
void append_part(std::ostringstream& out, Part&& part) {
  if constexpr (std::is_floating_point_v<std::remove_cvref_t<Part>>) {
    char buffer[64];
    const auto r = std::to_chars(buffer, buffer + sizeof buffer, part);
    out.write(buffer, r.ptr - buffer);
  } else {
    out << std::forward<Part>(part);
  }
}

template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (append_part(out, std::forward<Parts>(parts)), ...);
  return out.str();
}

/// "[2, 1, 4, 4]" for messages about shapes (any range of integers).
template <class Sizes>
std::string shape_text(const Sizes& sizes) {
  std::string out = "[";
  for (const auto& s : sizes) out += (out.size() > 1 ? ", " : "") + std::to_string(s);
  return out + "]";
}

/// `require(cond, "gamma", gamma, "must be finite")` → invalid_option("gamma = nan: must be finite").
template <class Value>
void require(bool condition, const char* parameter, const Value& value, const char* what) {
  if (!condition) throw invalid_option(concat(parameter, " = ", value, ": ", what));
}
}  // namespace detail
}  // namespace scoreflow
