#pragma once
// Guidance policies: how conditional (and unconditional) model answers become one prediction.
// A guidance policy takes the list of (input, condition) pairs a combiner asks for and returns
// one prediction per pair, making as few model calls as the condition type allows.
//
// Classifier-free guidance is one policy, `ClassifierFree<C, Rule>`, with three independent parts:
//   - the rule that merges the two answers: LinearCfg (Ho & Salimans 2022), RescaledCfg (Lin et al.
//     2024), ProjectedCfg (APG, Sadat et al. 2024), ZeroStarCfg (CFG-Zero*, Fan et al. 2025);
//   - the space it works in: the model's own output (as diffusers does) or the data estimate x̂
//     (as the APG paper does), exact for every prediction kind through the call's DataMap;
//   - the strength over the run: γ per prompt (anagram and factorized parts may set their own),
//     a weight schedule over the run's progress, and a limited interval of noise levels
//     (Kynkäänniemi et al. 2024), outside which the unconditional branch is not evaluated at all.
// A negative prompt is the unconditional branch replaced by a condition (`negative_prompt`).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <span>
#include <ranges>
#include <utility>
#include <vector>

#include "scoreflow/denoiser.hpp"
#include "scoreflow/errors.hpp"

namespace scoreflow {

/// The conditional model as it is.
struct NoGuidance {
  template <class Call, class T = typename Call::tensor_type, class C = typename Call::condition_type>
  std::vector<Prediction<T>> operator()(const Call& call, std::span<const T> xs, const std::vector<C>& conds) const {
    return call(xs, conds);
  }
};

// ---- rules: (unconditional u, conditional c, γ) → guided prediction ------------------------------

/// ε = u + γ(c − u) (Ho & Salimans 2022, eq. 6 written with γ = 1 + w; seed §1.6).
struct LinearCfg {
  template <Tensor T>
  T operator()(const T& u, const T& c, double gamma, const GuidanceContext&) const {
    return ops::axpby(1.0 - gamma, u, gamma, c);
  }
};

namespace detail {
/// Per-sample standard deviation over all non-batch axes (the ratio of two of them is all the
/// rules use, so Bessel's correction, which torch.std applies, cancels).
template <ImageTensor T>
std::vector<double> std_per_sample(const T& x) {
  const auto sq = ops::dot_per_sample(x, x);
  const auto sum = ops::dot_per_sample(x, ops::add_scalar(ops::scale(0.0, x), 1.0));
  const Shape s = ops::shape(x);
  double count = 1.0;
  for (std::size_t i = 1; i < s.size(); ++i) count *= static_cast<double>(s[i]);
  std::vector<double> out(sq.size());
  for (std::size_t n = 0; n < sq.size(); ++n) out[n] = std::sqrt(std::max(sq[n] / count - (sum[n] / count) * (sum[n] / count), 0.0));
  return out;
}
/// Row n of x times f[n].
template <Tensor T>
T scale_rows(const std::vector<double>& f, const T& x) {
  return ops::axpby_rows(f, x, std::vector<double>(f.size(), 0.0), x);
}
}  // namespace detail

/// CFG with rescale (Lin et al. 2024, "Common diffusion noise schedules and sample steps are
/// flawed", §3.4, eqs. 15–17): x_cfg = u + γ(c − u); x_re = x_cfg · std(c)/std(x_cfg);
/// result φ x_re + (1 − φ) x_cfg, std per sample over C, H, W (diffusers' rescale_noise_cfg,
/// which divides by a zero std where x_cfg is constant; here the ratio is 1 there).
struct RescaledCfg {
  double phi = 0.7;

  template <ImageTensor T>
  T operator()(const T& u, const T& c, double gamma, const GuidanceContext&) const {
    const T cfg = ops::axpby(1.0 - gamma, u, gamma, c);
    const auto s_c = detail::std_per_sample(c), s_cfg = detail::std_per_sample(cfg);
    std::vector<double> f(s_c.size());
    for (std::size_t n = 0; n < f.size(); ++n) f[n] = phi * (s_cfg[n] > 0.0 ? s_c[n] / s_cfg[n] : 1.0) + 1.0 - phi;
    return detail::scale_rows(f, cfg);
  }
};

/// Adaptive projected guidance (Sadat et al. 2024, "Eliminating oversaturation and artifacts of
/// high guidance scales in diffusion models", Alg. 1): Δ = c − u, with momentum the running
/// average Δ̄ ← Δ + β Δ̄ (β < 0 in the paper), clipped to norm r per sample, split into the parts
/// parallel and orthogonal to c; result c + (γ − 1)(Δ⊥ + η Δ∥). The average is kept unclipped;
/// norms and projections are per sample over C, H, W. This is diffusers' `normalized_guidance`
/// with use_original_formulation = True and guidance_scale γ − 1 (as its ACE-Step pipeline calls
/// it); diffusers' default form u + γ(Δ⊥ + η Δ∥) differs from the paper's for η ≠ 1. The paper
/// applies it to data estimates: use GuidanceSpace::data for that (`apg()` does); diffusers
/// applies it to the model's output.
struct ProjectedCfg {
  double eta = 0.0;             ///< weight of the parallel part (0: drop it, as the paper recommends)
  double momentum = -0.5;       ///< β; 0 disables the running average
  double norm_threshold = 0.0;  ///< r; 0 disables the clipping

  /// Δ̄ of each input, kept across the predictions of one run.
  template <class T>
  using state_type = std::optional<T>;

  template <ImageTensor T>
  T operator()(const T& u, const T& c, double gamma, const GuidanceContext&, std::optional<T>& average) const {
    T diff = ops::sub(c, u);
    if (momentum != 0.0) {
      if (average) diff = ops::axpby(1.0, diff, momentum, *average);
      average = diff;
    }
    if (norm_threshold > 0.0) {
      const auto sq = ops::dot_per_sample(diff, diff);
      std::vector<double> f(sq.size());
      for (std::size_t n = 0; n < f.size(); ++n) f[n] = std::min(1.0, norm_threshold / std::sqrt(sq[n]));
      diff = detail::scale_rows(f, diff);
    }
    // Δ∥ = (⟨Δ, c⟩ / ‖c‖²) c, with torch.nn.functional.normalize's floor on ‖c‖.
    const auto dc = ops::dot_per_sample(diff, c), cc = ops::dot_per_sample(c, c);
    std::vector<double> p(dc.size());
    for (std::size_t n = 0; n < p.size(); ++n) p[n] = dc[n] / std::max(cc[n], 1e-24);
    const T parallel = detail::scale_rows(p, c);
    const T update = ops::axpby(1.0, diff, eta - 1.0, parallel);  // Δ⊥ + η Δ∥ = Δ + (η − 1) Δ∥
    return ops::axpby(1.0, c, gamma - 1.0, update);
  }
};

/// CFG-Zero* (Fan et al. 2025, eqs. 9–11): the unconditional answer scaled by
/// s* = ⟨c, u⟩ / (‖u‖² + 10⁻⁸) per sample, result s* u + γ(c − s* u); and the first
/// `zero_init_steps` steps of the run predict zero ("zero-init", for flow models: x stays put).
/// zero_init_steps = k zeroes steps 1 … k, as diffusers' ClassifierFreeZeroStarGuidance; the
/// authors' scripts' `zero_steps = k` zeroes k + 1 steps. Zero is the merged quantity's: a zero
/// velocity in model-output space (the paper's flow models), a zero data estimate in data space.
struct ZeroStarCfg {
  std::size_t zero_init_steps = 1;

  template <ImageTensor T>
  T operator()(const T& u, const T& c, double gamma, const GuidanceContext& context) const {
    if (zeroes(context)) return ops::scale(0.0, c);
    const auto cu = ops::dot_per_sample(c, u), uu = ops::dot_per_sample(u, u);
    std::vector<double> s(cu.size());
    for (std::size_t n = 0; n < s.size(); ++n) s[n] = cu[n] / (uu[n] + 1e-8);
    const T scaled = detail::scale_rows(s, u);
    return ops::axpby(1.0 - gamma, scaled, gamma, c);
  }
  [[nodiscard]] bool zeroes(const GuidanceContext& context) const {
    return context.step >= 1 && context.step <= zero_init_steps;
  }
};

// ---- strength over the run -----------------------------------------------------------------------

/// Where guidance acts, in EDM's σ = σ/α (the noise level's ve_sigma; Kynkäänniemi et al. 2024,
/// "Applying guidance in a limited interval improves sample and distribution quality in diffusion
/// models": guidance for σ ∈ (σ_lo, σ_hi], the conditional model elsewhere). Decided once per
/// step, at the level the step starts from, and kept for every evaluation of that step, as the
/// authors' EDM sampler does (its interval is a range of step indices; their EDM2-XXL setting, steps
/// 17–22 of the 32-step ρ = 7 grid, is σ ∈ [0.283, 1.609]). σ in (0.28, 5.42] is the setting
/// usually quoted for SD-XL.
struct GuidanceInterval {
  double sigma_lo = 0.0;
  double sigma_hi = std::numeric_limits<double>::infinity();

  /// The same interval written in the seed's flow time (x_t = (1 − t) ε + t x₁, σ = (1 − t)/t):
  /// guidance for t ∈ [t_lo, t_hi).
  static GuidanceInterval flow_times(double t_lo, double t_hi) {
    detail::require(t_lo >= 0.0 && t_lo < t_hi && t_hi <= 1.0, "guidance interval t_lo", t_lo,
                    "must satisfy 0 <= t_lo < t_hi <= 1");
    return {flow::level(t_hi).ve_sigma(), flow::level(t_lo).ve_sigma()};  // the σ that contains() reads
  }
  [[nodiscard]] bool contains(NoiseLevel l) const {
    const double s = l.ve_sigma();
    return s > sigma_lo && s <= sigma_hi;
  }
};

/// A weight w over the run's progress p ∈ [0, 1] (GuidanceContext::progress), piecewise linear
/// between knots (p, w) and constant beyond them; the guidance scale at p is 1 + (γ − 1)·w, so
/// w = 1 is γ, w = 0 the conditional model. A ramp from γ_a to γ_b over the run is the knots
/// {0, (γ_a − 1)/(γ − 1)}, {1, (γ_b − 1)/(γ − 1)}.
class GuidanceSchedule {
 public:
  struct Knot {
    double progress;
    double weight;
  };

  GuidanceSchedule() = default;
  static GuidanceSchedule constant() { return {}; }
  static GuidanceSchedule piecewise_linear(std::vector<Knot> knots) {
    detail::require(!knots.empty(), "guidance schedule knots", 0, "must not be empty");
    for (std::size_t i = 0; i < knots.size(); ++i) {
      detail::require(knots[i].progress >= 0.0 && knots[i].progress <= 1.0, "guidance schedule progress",
                      knots[i].progress, "must lie in [0, 1]");
      detail::require(std::isfinite(knots[i].weight), "guidance schedule weight", knots[i].weight, "must be finite");
      if (i > 0)
        detail::require(knots[i].progress > knots[i - 1].progress, "guidance schedule progress", knots[i].progress,
                        "must increase from knot to knot");
    }
    GuidanceSchedule s;
    s.knots_ = std::move(knots);
    return s;
  }
  /// w from `first` at the first step to `last` at the last.
  static GuidanceSchedule linear(double first, double last) { return piecewise_linear({{0.0, first}, {1.0, last}}); }

  [[nodiscard]] double weight(double p) const {
    if (knots_.empty()) return 1.0;
    if (p <= knots_.front().progress) return knots_.front().weight;
    for (std::size_t i = 1; i < knots_.size(); ++i)
      if (p <= knots_[i].progress) {
        const auto& a = knots_[i - 1];
        const auto& b = knots_[i];
        return a.weight + (b.weight - a.weight) * (p - a.progress) / (b.progress - a.progress);
      }
    return knots_.back().weight;
  }

 private:
  std::vector<Knot> knots_;
};

/// Which quantity the rule merges.
enum class GuidanceSpace {
  model_output,  ///< the model's own output (ε, x̂, v or u), as diffusers' guiders do
  data           ///< the data estimates x̂ = a x + b·answer (DataMap), mapped back to the model's kind
};

struct GuidanceOptions {
  GuidanceSpace space = GuidanceSpace::model_output;
  GuidanceSchedule schedule{};
  std::optional<GuidanceInterval> interval{};
};

namespace detail {
/// The unconditional branch's condition for an input whose condition is `cond`: the policy's
/// own, or, where condition_traits<C> provides unconditional_for(uncond, cond), a condition that
/// keeps the input's image-space part (IF stage II's upsampled image: only the text is dropped,
/// as IFSuperResolutionPipeline does).
template <class C>
C unconditional_for(const C& unconditional, const C& cond) {
  if constexpr (requires { condition_traits<C>::unconditional_for(unconditional, cond); })
    return condition_traits<C>::unconditional_for(unconditional, cond);
  else
    return unconditional;
}

template <class Rule>
struct rule_state_base {};
template <class Rule>
  requires requires { typename Rule::template state_type<int>; }
struct rule_state_base<Rule> {
  /// One rule state per input (prompt) of the combiner.
  template <class T>
  using state_type = std::vector<typename Rule::template state_type<T>>;
};
}  // namespace detail

/// Classifier-free guidance (Ho & Salimans 2022; seed §1.6), with the rules, spaces and strength
/// controls above. Conditional and unconditional inputs go through one batched call when C
/// concatenates (with x passed once to a model that SharesInputAcrossConditions); where the
/// effective scale is 1 for every input (outside the interval, a zero weight), only the conditional
/// half is evaluated. A learned variance is taken from the conditional branch, as DeepFloyd IF does.
template <class C, class Rule = LinearCfg>
class ClassifierFree : public detail::rule_state_base<Rule> {
 public:
  ClassifierFree(double gamma, C unconditional, Rule rule = {}, GuidanceOptions options = {})
      : gamma_(gamma), unconditional_(std::move(unconditional)), rule_(std::move(rule)), options_(std::move(options)) {
    detail::require(std::isfinite(gamma), "gamma", gamma, "must be finite");
    if (options_.interval)
      detail::require(options_.interval->sigma_lo < options_.interval->sigma_hi, "guidance interval sigma_lo",
                      options_.interval->sigma_lo, "must be below sigma_hi");
  }
  /// Negative prompting: the "unconditional" branch is a condition to steer away from,
  /// ε = ε_neg + γ(ε_c − ε_neg) (as diffusers' negative_prompt_embeds).
  static ClassifierFree negative_prompt(double gamma, C negative, Rule rule = {}, GuidanceOptions options = {}) {
    return ClassifierFree(gamma, std::move(negative), std::move(rule), std::move(options));
  }

  [[nodiscard]] double gamma() const { return gamma_; }
  [[nodiscard]] const C& unconditional() const { return unconditional_; }
  [[nodiscard]] const Rule& rule() const { return rule_; }
  [[nodiscard]] const GuidanceOptions& options() const { return options_; }

  /// The scale input i gets at this call: its prompt's γ (or the policy's), weighted by the
  /// schedule, and 1 outside the interval.
  [[nodiscard]] double effective_scale(const GuidanceContext& context, std::size_t i) const {
    double gamma = gamma_;
    if (i < context.prompt_scales.size() && context.prompt_scales[i]) gamma = *context.prompt_scales[i];
    double w = options_.schedule.weight(context.progress());
    if (options_.interval) {
      const auto& level = context.step_level ? context.step_level : context.level;
      if (!level)
        throw invalid_option("guidance interval: the schedule gives no noise level for this call (level_at(time))");
      if (!options_.interval->contains(*level)) w = 0.0;
    }
    return 1.0 + (gamma - 1.0) * w;
  }

  template <class Call, class T = typename Call::tensor_type>
    requires std::same_as<typename Call::condition_type, C>
  std::vector<Prediction<T>> operator()(const Call& call, std::span<const T> xs, const std::vector<C>& conds) const
    requires(!requires { typename Rule::template state_type<T>; })
  {
    detail::NoGuidanceState stateless;
    return guide(call, xs, conds, stateless);
  }
  template <class Call, class State, class T = typename Call::tensor_type>
    requires std::same_as<typename Call::condition_type, C> && requires { typename Rule::template state_type<T>; } &&
             std::same_as<State, std::vector<typename Rule::template state_type<T>>>
  std::vector<Prediction<T>> operator()(const Call& call, std::span<const T> xs, const std::vector<C>& conds,
                                        State& state) const {
    if (state.size() < xs.size()) state.resize(xs.size());
    return guide(call, xs, conds, state);
  }

 private:
  template <class Call, class T, class State>
  std::vector<Prediction<T>> guide(const Call& call, std::span<const T> xs, const std::vector<C>& conds,
                                   State& state) const {
    const std::size_t n = xs.size();
    const GuidanceContext& context = call.context();
    std::vector<double> scales(n);
    bool all_one = true;
    for (std::size_t i = 0; i < n; ++i) {
      scales[i] = effective_scale(context, i);
      all_one = all_one && scales[i] == 1.0;
    }
    bool zeroes = false;
    if constexpr (requires { rule_.zeroes(context); }) zeroes = rule_.zeroes(context);
    if (all_one && !zeroes) return call(xs, conds);  // every rule gives c at γ = 1

    if constexpr (ConcatenableCondition<C>) {
      // One call on every input under [u … u, c₁ … cₙ] (unconditional first, as diffusers does).
      std::vector<C> both;
      both.reserve(2 * n);
      for (std::size_t i = 0; i < n; ++i) both.push_back(detail::unconditional_for(unconditional_, conds[i]));
      both.insert(both.end(), conds.begin(), conds.end());
      Prediction<T> whole = call.under_conditions(xs, std::span<const C>(both));
      std::optional<T> variance;  // the conditional half's
      if (whole.variance) variance = ops::split_batch(*whole.variance, 2)[1];
      if constexpr (std::same_as<Rule, LinearCfg>) {
        const bool one_scale = std::ranges::all_of(scales, [&](double s) { return s == scales[0]; });
        if (one_scale) {
          // Linear guidance is the same in every space: one pass over the answer's two halves.
          return detail::split_prediction(
              Prediction<T>{ops::axpby_halves(1.0 - scales[0], scales[0], whole.value), whole.kind, std::move(variance)},
              n);
        }
      }
      auto parts = ops::split_batch(whole.value, static_cast<std::int64_t>(2 * n));
      std::vector<T> variances;
      if (variance) variances = ops::split_batch(*variance, static_cast<std::int64_t>(n));
      std::vector<Prediction<T>> out;
      out.reserve(n);
      for (std::size_t i = 0; i < n; ++i)
        out.push_back({merge(parts[i], parts[n + i], xs[i], scales[i], context, state, i), whole.kind,
                       variance ? std::optional<T>(std::move(variances[i])) : std::nullopt});
      return out;
    } else {
      // Two calls per input, straight on the caller's tensors.
      std::vector<Prediction<T>> out;
      out.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        const std::span<const T> x(&xs[i], 1);
        auto cond = std::move(call(x, {conds[i]}).front());
        const auto uncond = std::move(call(x, {detail::unconditional_for(unconditional_, conds[i])}).front());
        cond.value = merge(uncond.value, cond.value, xs[i], scales[i], context, state, i);
        out.push_back(std::move(cond));
      }
      return out;
    }
  }

  /// The rule on input i's two answers, in the chosen space.
  template <class T, class State>
  T merge(const T& u, const T& c, const T& x, double gamma, const GuidanceContext& context, State& state,
          std::size_t i) const {
    const auto apply = [&](const T& uu, const T& cc) -> T {
      if constexpr (std::same_as<State, detail::NoGuidanceState>)
        return rule_(uu, cc, gamma, context);
      else
        return rule_(uu, cc, gamma, context, state[i]);
    };
    if (options_.space == GuidanceSpace::model_output) return apply(u, c);
    if (!context.data_map)
      throw invalid_option(detail::concat(
          "guidance in data space: no data estimate for this model's prediction at step ", context.step,
          " (the schedule has no data_map, or the prediction kind determines no x̂ at this noise level)"));
    const DataMap m = *context.data_map;
    // At b = 0 the answer does not move x̂ (a flow velocity at t = 1): nothing to merge there, and
    // no way back, so the model-output rule stands in.
    if (m.from_prediction == 0.0) return apply(u, c);
    const T guided = apply(ops::axpby(m.from_input, x, m.from_prediction, u), ops::axpby(m.from_input, x, m.from_prediction, c));
    return ops::axpby(-m.from_input / m.from_prediction, x, 1.0 / m.from_prediction, guided);
  }

  double gamma_;
  C unconditional_;
  Rule rule_;
  GuidanceOptions options_;
};

/// Adaptive projected guidance as its paper applies it: ProjectedCfg on data estimates.
template <class C>
ClassifierFree<C, ProjectedCfg> apg(double gamma, C unconditional, ProjectedCfg rule = {}, GuidanceOptions options = {}) {
  options.space = GuidanceSpace::data;
  return ClassifierFree<C, ProjectedCfg>(gamma, std::move(unconditional), rule, std::move(options));
}

}  // namespace scoreflow
