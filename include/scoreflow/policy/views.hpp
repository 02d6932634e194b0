#pragma once
// Invertible views of an image for visual anagrams (seed §1.8; Geng et al., "Visual Anagrams",
// CVPR 2024): a permutation of the pixels of each H×W plane, optionally followed by negation or
// (opt-in only) a scale. Every view is given as a source map, view(x)[p] = x[source[p]], the
// convention of the reference implementation's permutation views (visual_anagrams/views/).
//
// A pixel permutation, with or without negation, is orthogonal: the model sees N(0, I) noise
// through it, which is what makes an anagram sample correctly (§3 of the paper). A scale is not
// orthogonal (the reference's "white balance" failure case), so Anagram refuses it unless asked.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/tensor/random.hpp"
#include "scoreflow/tensor/tensor.hpp"

namespace scoreflow {

namespace detail {
/// The 4×4 jigsaw of the reference (visual_anagrams/views/permutations.py, make_jigsaw_perm),
/// with procedural pieces instead of its hand-drawn masks. Cells of side L = S/4; every internal
/// edge carries one tab (a mushroom: a neck, then a wider head) centred on the edge, pointing
/// clockwise around the outer ring, from the ring's edge pieces into the inner ring, and clockwise
/// around the inner ring. The tab set is invariant under a quarter turn about the image centre, so
/// the four pieces of each class — corner, inner and the two edge kinds e, f (the same shape up to a
/// translation along the side) — are rotations of each other. Layout (class and rotation):
///   c0 e0 f0 c1
///   f3 i0 i1 e1
///   e3 i3 i2 f1
///   c3 f2 e2 c2
/// A seed draws one permutation of the four rotations per class and one swap bit per side. Pixel p
/// of piece (k, r) is turned (π_k(r) − r) quarter turns clockwise about the image centre, and on a
/// side whose bit is set the e and f pieces trade places; the view gathers through that map, as the
/// reference's PermuteView does.
class JigsawLayout {
 public:
  explicit JigsawLayout(std::int64_t s) : s_(s), l_(s / 4), piece_(static_cast<std::size_t>(s * s)) {
    for (std::int64_t r = 0; r < s; ++r)
      for (std::int64_t c = 0; c < s; ++c) piece_[flat(r, c)] = cell_piece(r / l_, c / l_);
    // Rotation 0's six tabs (from cell → into cell); the other 18 are their quarter turns.
    const int base[6][4] = {{0, 0, 0, 1}, {0, 1, 0, 2}, {0, 2, 0, 3}, {0, 1, 1, 1}, {0, 2, 1, 2}, {1, 1, 1, 2}};
    for (const auto& e : base) {
      int fr = e[0], fc = e[1], tr = e[2], tc = e[3];
      for (int q = 0; q < 4; ++q) {
        carve_tab(fr, fc, tr, tc);
        std::tie(fr, fc) = std::pair{fc, 3 - fr};
        std::tie(tr, tc) = std::pair{tc, 3 - tr};
      }
    }
  }

  /// Piece of pixel p: 4·class + rotation, class 0 corner, 1 inner, 2 edge e, 3 edge f.
  [[nodiscard]] int piece(std::int64_t p) const { return piece_[static_cast<std::size_t>(p)]; }

  /// The source map for one seed.
  [[nodiscard]] std::vector<std::int64_t> source(std::uint64_t seed) const {
    Generator gen(seed);
    int dest[4][4];
    for (auto& cls : dest) {
      const auto p = random_permutation(4, gen);
      for (int r = 0; r < 4; ++r) cls[r] = static_cast<int>(p[static_cast<std::size_t>(r)]);
    }
    bool swap[4];
    for (auto& b : swap) b = (gen.next_u64() & 1U) != 0;
    std::vector<std::int64_t> out(piece_.size());
    for (std::int64_t r = 0; r < s_; ++r)
      for (std::int64_t c = 0; c < s_; ++c) {
        const int k = piece_[flat(r, c)] / 4, rot = piece_[flat(r, c)] % 4;
        const int to = dest[k][rot];
        std::int64_t nr = r, nc = c;
        for (int q = 0; q < (to - rot + 4) % 4; ++q) std::tie(nr, nc) = std::pair{nc, s_ - 1 - nr};
        if (k >= 2 && swap[to]) {
          const std::int64_t shift = (k == 2 ? 1 : -1) * (to < 2 ? 1 : -1) * l_;
          (to % 2 == 0 ? nc : nr) += shift;
        }
        out[flat(r, c)] = nr * s_ + nc;
      }
    return out;
  }

 private:
  [[nodiscard]] std::size_t flat(std::int64_t r, std::int64_t c) const { return static_cast<std::size_t>(r * s_ + c); }

  static int cell_piece(std::int64_t cr, std::int64_t cc) {
    static const int layout[4][4] = {{0, 8, 12, 1}, {15, 4, 5, 9}, {11, 7, 6, 13}, {3, 14, 10, 2}};
    return layout[cr][cc];
  }

  /// The tab of cell (fr, fc) into its neighbour (tr, tc): depth D = max(1, L/4) into the
  /// neighbour; half-width L/8 for the neck (the first half of the depth), L/5 for the head,
  /// symmetric about the edge's midpoint so that quarter turns map tabs onto tabs.
  void carve_tab(int fr, int fc, int tr, int tc) {
    const std::int64_t depth = std::max<std::int64_t>(1, l_ / 4);
    const double mid = (static_cast<double>(l_) - 1.0) / 2.0;
    const int owner = cell_piece(fr, fc);
    for (std::int64_t d = 0; d < depth; ++d) {
      const double half = 2 * d < depth ? static_cast<double>(l_) / 8.0 : static_cast<double>(l_) / 5.0;
      for (std::int64_t t = 0; t < l_; ++t) {
        if (std::abs(static_cast<double>(t) - mid) > half) continue;
        std::int64_t r = tr * l_, c = tc * l_;  // the neighbour cell's corner
        if (tr == fr + 1) { r += d; c += t; }
        else if (tr == fr - 1) { r += l_ - 1 - d; c += t; }
        else if (tc == fc + 1) { r += t; c += d; }
        else { r += t; c += l_ - 1 - d; }
        piece_[flat(r, c)] = owner;
      }
    }
  }

  std::int64_t s_, l_;
  std::vector<int> piece_;
};
}  // namespace detail

class View {
 public:
  enum class Kind {
    identity, flip_vertical, flip_horizontal, rotate90, rotate180, rotate270, transpose, permutation,
    skew, patch_permute, pixel_permute, jigsaw, inner_circle, square_hinge
  };

  static View identity() { return View(Kind::identity); }
  /// The seed's view: upside down (the reference's `flip`).
  static View flip_vertical() { return View(Kind::flip_vertical); }
  static View flip_horizontal() { return View(Kind::flip_horizontal); }
  /// Counter-clockwise, as torch.rot90(x, k, dims = (−2, −1)) (the reference's rotate_ccw).
  static View rotate90() { return View(Kind::rotate90); }
  static View rotate180() { return View(Kind::rotate180); }
  /// Clockwise (the reference's rotate_cw).
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
  /// Column c rolled down by d_c = trunc(f·(c − ⌊H/2⌋)) with wrap-around (the reference's skew,
  /// factor 1.5 by default); the inverse is the skew by −f.
  static View skew(double factor = 1.5) {
    detail::require(std::isfinite(factor), "skew factor", factor, "must be finite");
    View v(Kind::skew);
    v.factor_ = factor;
    return v;
  }
  /// The plane cut into grid × grid patches, permuted by a permutation drawn from `seed` (the
  /// reference's patch_permute is grid 8). Patches scale with the image, so the same view keeps
  /// its meaning at 64 and 256 pixels (DeepFloyd IF's two stages).
  static View patch_permute(int grid, std::uint64_t seed) {
    detail::require(grid >= 1, "patch_permute grid", grid, "must be at least 1");
    View v(Kind::patch_permute);
    v.grid_ = grid;
    v.seed_ = seed;
    return v;
  }
  /// The same with the patch order given: output patch k (row-major) shows input patch
  /// patches[k] (e.g. the reference's torch.randperm(grid²) of a run to be reproduced).
  static View patch_permute(int grid, std::vector<std::int64_t> patches) {
    detail::require(grid >= 1, "patch_permute grid", grid, "must be at least 1");
    permutation(patches);  // validates: a permutation of 0 … grid² − 1
    detail::require(static_cast<std::int64_t>(patches.size()) == std::int64_t{grid} * grid, "patch_permute patches",
                    patches.size(), "must hold grid² entries");
    View v(Kind::patch_permute);
    v.grid_ = grid;
    v.patches_ = std::move(patches);
    return v;
  }
  /// Every pixel to a place drawn from `seed`, at whatever size the view meets (the reference's
  /// pixel_permute is patch_permute with grid 64: one pixel per patch at 64×64; use that for a
  /// view that must hold across IF's stages).
  static View pixel_permute(std::uint64_t seed) {
    View v(Kind::pixel_permute);
    v.seed_ = seed;
    return v;
  }
  /// A 4×4 jigsaw puzzle of interlocking pieces (detail::JigsawLayout), square sides divisible
  /// by 4; the reference's default seed is 4522 (its masks and random generator differ from ours,
  /// so the puzzles differ; their structure is the same).
  static View jigsaw(std::uint64_t seed = 4522) {
    View v(Kind::jigsaw);
    v.seed_ = seed;
    return v;
  }
  /// The disc of radius 3S/8 about the centre turned 180°, the rest kept (the reference's
  /// inner_circle: pixel centres (c − S/2 + ½, r − S/2 + ½) strictly inside). Square images.
  static View inner_circle() { return View(Kind::inner_circle); }
  /// A 3×3 grid of ⌊S/3⌋-pixel squares, each turned a quarter about its centre: clockwise where
  /// the block's row + column is even (corners, centre), counter-clockwise on the others; the
  /// rows and columns past 3⌊S/3⌋ stay (the reference's square_hinge). Square images.
  static View square_hinge() { return View(Kind::square_hinge); }

  /// Negation x → −x; composes with any of the above (the reference's negate).
  [[nodiscard]] View negated() const {
    View v = *this;
    v.negate_ = !v.negate_;
    return v;
  }
  /// x → s·x after the permutation. Not orthogonal for |s| ≠ 1: the model then sees noise of
  /// standard deviation |s| (the reference's white-balance failure case); Anagram refuses such
  /// a view unless AnagramOptions::allow_non_orthogonal is set.
  [[nodiscard]] View scaled(double s) const {
    detail::require(std::isfinite(s) && s != 0.0, "view scale", s, "must be finite and non-zero");
    View v = *this;
    v.scale_ *= s;
    return v;
  }

  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] bool negates() const { return negate_; }
  [[nodiscard]] double scale() const { return scale_; }
  /// Whether the view preserves N(0, I): a permutation with a sign.
  [[nodiscard]] bool is_orthogonal() const { return std::abs(scale_) == 1.0; }

  /// Source index of every output pixel for an h×w plane.
  [[nodiscard]] std::vector<std::int64_t> index(std::int64_t h, std::int64_t w) const {
    const bool square_only = kind_ == Kind::rotate90 || kind_ == Kind::rotate270 || kind_ == Kind::transpose ||
                             kind_ == Kind::jigsaw || kind_ == Kind::inner_circle || kind_ == Kind::square_hinge;
    if (square_only && h != w)
      throw shape_error(detail::concat("view ", name(), ": needs square images; got ", h, "x", w));
    if (kind_ == Kind::permutation) {
      if (static_cast<std::int64_t>(source_.size()) != h * w)
        throw shape_error(detail::concat("view: permutation has ", source_.size(), " entries, image has ", h * w, " pixels"));
      return source_;
    }
    if (kind_ == Kind::patch_permute) return patch_index(h, w);
    if (kind_ == Kind::pixel_permute) {
      Generator gen(seed_);
      return random_permutation(h * w, gen);
    }
    if (kind_ == Kind::jigsaw) {
      if (h % 4 != 0 || h < 4)
        throw shape_error(detail::concat("view jigsaw: the side must be a positive multiple of 4; got ", h));
      return detail::JigsawLayout(h).source(seed_);
    }
    std::vector<std::int64_t> idx(static_cast<std::size_t>(h * w));
    for (std::int64_t r = 0; r < h; ++r)
      for (std::int64_t c = 0; c < w; ++c) {
        const auto [sr, sc] = source_pixel(r, c, h, w);
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
  /// Maps a per-pixel variance back: the permutation only, never the sign or the scale (as the
  /// reference's negate leaves the variance channels alone).
  template <ImageTensor T>
  T invert_positions(const T& x) const { return transform(x, true, false); }

  [[nodiscard]] std::string name() const {
    switch (kind_) {
      case Kind::identity: return "identity";
      case Kind::flip_vertical: return "flip_vertical";
      case Kind::flip_horizontal: return "flip_horizontal";
      case Kind::rotate90: return "rotate90";
      case Kind::rotate180: return "rotate180";
      case Kind::rotate270: return "rotate270";
      case Kind::transpose: return "transpose";
      case Kind::permutation: return "permutation";
      case Kind::skew: return "skew";
      case Kind::patch_permute: return "patch_permute";
      case Kind::pixel_permute: return "pixel_permute";
      case Kind::jigsaw: return "jigsaw";
      case Kind::inner_circle: return "inner_circle";
      case Kind::square_hinge: return "square_hinge";
    }
    return "unknown";
  }

 private:
  explicit View(Kind k) : kind_(k) {}

  /// The source pixel of output pixel (r, c) for the views given by a formula.
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> source_pixel(std::int64_t r, std::int64_t c, std::int64_t h,
                                                                   std::int64_t w) const {
    switch (kind_) {
      case Kind::flip_vertical: return {h - 1 - r, c};
      case Kind::flip_horizontal: return {r, w - 1 - c};
      case Kind::rotate90: return {c, w - 1 - r};
      case Kind::rotate180: return {h - 1 - r, w - 1 - c};
      case Kind::rotate270: return {w - 1 - c, r};
      case Kind::transpose: return {c, r};
      case Kind::skew: {
        // torch.roll by d along the column: out[r] = in[(r − d) mod H]; trunc as Python's int().
        const auto d = static_cast<std::int64_t>(std::trunc(factor_ * static_cast<double>(c - h / 2)));
        return {((r - d) % h + h) % h, c};
      }
      case Kind::inner_circle: {
        const double x = static_cast<double>(c) - static_cast<double>(h) / 2.0 + 0.5;
        const double y = static_cast<double>(r) - static_cast<double>(h) / 2.0 + 0.5;
        const double radius = 3.0 * static_cast<double>(h) / 8.0;
        if (x * x + y * y < radius * radius) return {h - 1 - r, w - 1 - c};
        return {r, c};
      }
      case Kind::square_hinge: {
        const std::int64_t q = h / 3;
        if (q == 0 || r >= 3 * q || c >= 3 * q) return {r, c};
        const std::int64_t bi = r / q, bj = c / q, a = r % q, b = c % q;
        // torch.rot90 of the block of source indices, k = −1 on even blocks, +1 on odd ones.
        if ((bi + bj) % 2 == 0) return {bi * q + (q - 1 - b), bj * q + a};
        return {bi * q + b, bj * q + (q - 1 - a)};
      }
      default: return {r, c};
    }
  }

  [[nodiscard]] std::vector<std::int64_t> patch_index(std::int64_t h, std::int64_t w) const {
    if (h % grid_ != 0 || w % grid_ != 0)
      throw shape_error(detail::concat("view patch_permute: a ", grid_, "x", grid_, " grid needs sides divisible by ",
                                       grid_, "; got ", h, "x", w));
    Generator gen(seed_);
    const auto perm =
        patches_.empty() ? random_permutation(grid_ * grid_, gen) : patches_;
    const std::int64_t ph = h / grid_, pw = w / grid_;
    std::vector<std::int64_t> idx(static_cast<std::size_t>(h * w));
    for (std::int64_t r = 0; r < h; ++r)
      for (std::int64_t c = 0; c < w; ++c) {
        const std::int64_t s = perm[static_cast<std::size_t>((r / ph) * grid_ + c / pw)];
        idx[static_cast<std::size_t>(r * w + c)] = ((s / grid_) * ph + r % ph) * w + (s % grid_) * pw + c % pw;
      }
    return idx;
  }

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
    if (!with_sign) return out;
    const double factor = (negate_ ? -1.0 : 1.0) * (inverse ? 1.0 / scale_ : scale_);
    return factor == 1.0 ? out : ops::scale(factor, out);
  }

  Kind kind_;
  bool negate_ = false;
  double scale_ = 1.0;
  double factor_ = 0.0;
  int grid_ = 1;
  std::uint64_t seed_ = 0;
  std::vector<std::int64_t> source_;
  std::vector<std::int64_t> patches_;
};

}  // namespace scoreflow
