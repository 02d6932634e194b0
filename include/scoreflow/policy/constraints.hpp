#pragma once
// Constraints: what happens to x after each step, and which grid points the sampler visits.
//
// One family: each keeps part of x equal to a known image noised to the current level, and lets
// the model generate the rest —
//   Inpaint       the pixels outside a mask                 (seed §1.7.2; RePaint)
//   FixComponent  one linear component of a decomposition   (Factorized Diffusion's inverse
//                 (low frequencies, grayscale, …)            problems: hybrids from a real image,
//                                                            colourisation)
// and SDEdit (policy/starts.hpp) is the same idea applied once, at the start.
#include <cstddef>
#include <map>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/policy/filters.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

/// The straight path start, start + 1, …, n − 1.
inline std::vector<std::size_t> straight_path(std::size_t n, std::size_t start) {
  std::vector<std::size_t> path;
  for (std::size_t i = start; i < n; ++i) path.push_back(i);
  return path;
}

struct Unconstrained {
  [[nodiscard]] std::vector<std::size_t> path(std::size_t n, std::size_t start) const { return straight_path(n, start); }
  template <Tensor T, class Schedule>
  T apply(T x, std::size_t, const Schedule&, Generator&) const { return x; }
  template <Tensor T>
  void check(const T&) const {}
};

/// RePaint's resampling (Lugmayr et al. 2022, Alg. 1 and its "jump" schedule): every
/// `jump_length` grid points, go back `jump_length` points by re-noising and step forward again,
/// `resamples − 1` extra times. resamples = 1 is plain inpainting.
struct RePaint {
  int jump_length = 1;
  int resamples = 1;
};

/// Inpainting (seed §1.7.2; RePaint): after every step x ← m x + (1 − m) forward(x_orig, t).
/// m = 1 where new content is generated, 0 where the original is kept.
template <Tensor T>
class Inpaint {
 public:
  Inpaint(T original, T mask, RePaint repaint = {})
      : original_(std::move(original)), mask_(std::move(mask)), repaint_(repaint) {
    if (ops::shape(original_) != ops::shape(mask_))
      throw shape_error(detail::concat("inpaint: mask shape ", detail::shape_text(ops::shape(mask_)),
                                       " differs from the original image's shape ",
                                       detail::shape_text(ops::shape(original_))));
    detail::require(repaint_.jump_length >= 1, "repaint.jump_length", repaint_.jump_length, "must be at least 1");
    detail::require(repaint_.resamples >= 1, "repaint.resamples", repaint_.resamples, "must be at least 1");
  }

  /// RePaint's jump schedule, in grid indices (index grows as noise falls).
  [[nodiscard]] std::vector<std::size_t> path(std::size_t n, std::size_t start) const {
    if (repaint_.resamples == 1) return straight_path(n, start);
    // Written in "steps left" r = n − 1 − i, as RePaint's get_schedule_jump.
    const auto total = static_cast<long>(n - 1 - start);
    const long j = repaint_.jump_length;
    std::map<long, int> jumps;
    for (long r = 0; r < total - j; r += j) jumps[r] = repaint_.resamples - 1;
    std::vector<std::size_t> path{start};
    long r = total;
    while (r >= 1) {
      --r;
      path.push_back(n - 1 - static_cast<std::size_t>(r));
      if (auto it = jumps.find(r); it != jumps.end() && it->second > 0) {
        --it->second;
        for (long k = 0; k < j; ++k) {
          ++r;
          path.push_back(n - 1 - static_cast<std::size_t>(r));
        }
      }
    }
    return path;
  }

  template <class Schedule>
  T apply(const T& x, std::size_t i, const Schedule& schedule, Generator& gen) const {
    const T known = schedule.forward(original_, i, ops::randn_like(original_, gen));
    // m x + (1 − m) known = known + m ⊙ (x − known)
    return ops::add(known, ops::multiply(mask_, ops::sub(x, known)));
  }

  void check(const T& x) const {
    if (ops::shape(x) != ops::shape(mask_))
      throw shape_error(detail::concat("inpaint: mask shape ", detail::shape_text(ops::shape(mask_)),
                                       " differs from the sample's shape ", detail::shape_text(ops::shape(x))));
  }

  [[nodiscard]] const T& original() const { return original_; }
  [[nodiscard]] const T& mask() const { return mask_; }

 private:
  T original_;
  T mask_;
  RePaint repaint_;
};

/// Hold component f of the image to a reference (Geng et al., "Factorized Diffusion", ECCV 2024,
/// §4.3 and the reference's --ref_im_path): after every step x ← f(forward(ref, t, z)) + (I − f)(x)
/// with fresh noise z, so the model generates only the complement. With f = Filter::grayscale()
/// a gray image is colourised; with f = Filter::low_pass() a real image's low frequencies carry a
/// prompt's high ones. The reference projects before each model call, which is the same sequence:
/// here the projection follows step k, which is before step k + 1's calls; it also follows the
/// last step, so the final image's component is the (clean) reference's own, and it does not
/// precede the first step (at pure noise the noised reference carries no signal).
template <ImageTensor T>
class FixComponent {
 public:
  FixComponent(T reference, Filter component) : reference_(std::move(reference)), component_(std::move(component)) {}

  [[nodiscard]] std::vector<std::size_t> path(std::size_t n, std::size_t start) const { return straight_path(n, start); }

  template <class Schedule>
  T apply(const T& x, std::size_t i, const Schedule& schedule, Generator& gen) const {
    const T known = schedule.forward(reference_, i, ops::randn_like(reference_, gen));
    // f(known) + x − f(x) = x + f(known − x), one filter pass.
    return ops::add(x, component_(ops::sub(known, x)));
  }

  void check(const T& x) const {
    if (ops::shape(x) != ops::shape(reference_))
      throw shape_error(detail::concat("fixed component: the reference image's shape ",
                                       detail::shape_text(ops::shape(reference_)), " differs from the sample's shape ",
                                       detail::shape_text(ops::shape(x))));
  }

  [[nodiscard]] const T& reference() const { return reference_; }
  [[nodiscard]] const Filter& component() const { return component_; }

 private:
  T reference_;
  Filter component_;
};

}  // namespace scoreflow
