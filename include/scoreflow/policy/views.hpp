#pragma once
// Invertible views of an image for visual anagrams (seed §1.8; Geng et al. 2024): a permutation of
// the pixels of each H×W plane, optionally followed by negation.
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

class View {
 public:
  enum class Kind { identity, flip_vertical, flip_horizontal, rotate90, rotate180, rotate270, transpose, permutation };

  static View identity() { return View(Kind::identity); }
  /// The seed's view: upside down.
  static View flip_vertical() { return View(Kind::flip_vertical); }
  static View flip_horizontal() { return View(Kind::flip_horizontal); }
  /// Counter-clockwise, as torch.rot90(x, k, dims = (−2, −1)).
  static View rotate90() { return View(Kind::rotate90); }
  static View rotate180() { return View(Kind::rotate180); }
  static View rotate270() { return View(Kind::rotate270); }
  static View transpose() { return View(Kind::transpose); }
  /// y[p] = x[source[p]] over the flattened H·W plane; `source` must be a permutation of 0 … H·W−1.
  static View permutation(std::vector<std::int64_t> source) {
    std::vector<char> seen(source.size(), 0);
    for (std::size_t p = 0; p < source.size(); ++p) {
      const auto s = source[p];
      if (s < 0 || static_cast<std::size_t>(s) >= source.size() || seen[static_cast<std::size_t>(s)])
        throw invalid_option(detail::concat("permutation[", p, "] = ", s,
                                            ": not a permutation of 0 … ", source.size() - 1,
                                            " (the view would have no inverse)"));
      seen[static_cast<std::size_t>(s)] = 1;
    }
    View v(Kind::permutation);
    v.source_ = std::move(source);
    return v;
  }
  /// Negation x → −x; composes with any of the above.
  [[nodiscard]] View negated() const {
    View v = *this;
    v.negate_ = !v.negate_;
    return v;
  }

  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] bool negates() const { return negate_; }

  /// Source index of every output pixel for an h×w plane.
  [[nodiscard]] std::vector<std::int64_t> index(std::int64_t h, std::int64_t w) const {
    const bool square_only = kind_ == Kind::rotate90 || kind_ == Kind::rotate270 || kind_ == Kind::transpose;
    if (square_only && h != w)
      throw shape_error(detail::concat("view: rotation by 90/270 and transpose need square images; got ", h, "x", w));
    std::vector<std::int64_t> idx(static_cast<std::size_t>(h * w));
    if (kind_ == Kind::permutation) {
      if (static_cast<std::int64_t>(source_.size()) != h * w)
        throw shape_error(detail::concat("view: permutation has ", source_.size(), " entries, image has ", h * w, " pixels"));
      return source_;
    }
    for (std::int64_t r = 0; r < h; ++r)
      for (std::int64_t c = 0; c < w; ++c) {
        std::int64_t sr = r, sc = c;
        switch (kind_) {
          case Kind::identity: break;
          case Kind::flip_vertical: sr = h - 1 - r; break;
          case Kind::flip_horizontal: sc = w - 1 - c; break;
          case Kind::rotate90: sr = c; sc = w - 1 - r; break;
          case Kind::rotate180: sr = h - 1 - r; sc = w - 1 - c; break;
          case Kind::rotate270: sr = w - 1 - c; sc = r; break;
          case Kind::transpose: sr = c; sc = r; break;
          case Kind::permutation: break;
        }
        idx[static_cast<std::size_t>(r * w + c)] = sr * w + sc;
      }
    return idx;
  }

  /// The view of x.
  template <ImageTensor T>
  T apply(const T& x) const { return transform(x, false, true); }
  /// Maps a view back: invert(apply(x)) == x.
  template <ImageTensor T>
  T invert(const T& x) const { return transform(x, true, true); }
  /// Maps a per-pixel variance back: the permutation only, never the sign.
  template <ImageTensor T>
  T invert_positions(const T& x) const { return transform(x, true, false); }

 private:
  explicit View(Kind k) : kind_(k) {}

  template <ImageTensor T>
  T transform(const T& x, bool inverse, bool with_sign) const {
    T out = x;
    if (kind_ != Kind::identity) {
      const auto s = ops::shape(x);
      if (s.size() < 2) throw shape_error("view: needs at least two axes");
      auto idx = index(s[s.size() - 2], s[s.size() - 1]);
      if (inverse) {
        std::vector<std::int64_t> inv(idx.size());
        for (std::size_t p = 0; p < idx.size(); ++p) inv[static_cast<std::size_t>(idx[p])] = static_cast<std::int64_t>(p);
        idx = std::move(inv);
      }
      out = ops::permute_pixels(x, idx);
    }
    return with_sign && negate_ ? ops::scale(-1.0, out) : out;
  }

  Kind kind_;
  bool negate_ = false;
  std::vector<std::int64_t> source_;
};

}  // namespace scoreflow
