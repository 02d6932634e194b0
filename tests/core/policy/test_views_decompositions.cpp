// Every view and decomposition of issue 16: golden layouts against the reference implementation's
// definitions (visual_anagrams, commit 70f4d5f, views/*.py; only the numbers are kept here),
// view ∘ inverse = identity, the jigsaw's structure, and exact oracles: with a Gaussian field
// denoiser N(μ, s² I) (tests/oracles.hpp), an anagram of μ₁ and V-viewed μ₂ samples exactly as
// plain sampling of N((μ₁ + V⁻¹μ₂)/2, s² I), and a factorized image with Σ fᵢ = I exactly as
// N(Σ fᵢ μᵢ, s² I) — same seed, same noise, the same images, on every backend.
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_views_decompositions {

using namespace scoreflow;
using sftest::make;

namespace {
/// Σ_p p·src[p] and the fixed points of a source map: the reference's summaries at 64 and 256.
std::pair<long long, long long> summary(const std::vector<std::int64_t>& src) {
  long long s = 0, fixed = 0;
  for (std::size_t p = 0; p < src.size(); ++p) {
    s += static_cast<long long>(p) * src[p];
    fixed += src[p] == static_cast<std::int64_t>(p);
  }
  return {s, fixed};
}
bool is_permutation(const std::vector<std::int64_t>& src) {
  std::vector<std::int64_t> sorted = src;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i)
    if (sorted[i] != static_cast<std::int64_t>(i)) return false;
  return true;
}

std::vector<View> every_view(std::int64_t side) {
  std::vector<View> v{View::identity(), View::flip_vertical(), View::flip_horizontal(), View::rotate90(),
                      View::rotate180(), View::rotate270(), View::transpose(), View::skew(), View::skew(-0.7),
                      View::pixel_permute(3), View::inner_circle(), View::square_hinge(),
                      View::flip_vertical().negated(), View::inner_circle().negated()};
  if (side % 4 == 0) {
    v.push_back(View::jigsaw());
    v.push_back(View::patch_permute(4, 11));
  }
  return v;
}
}  // namespace

TEST_CASE("views: golden layouts of the reference at 8×8, and its summaries at 64 and 256") {
  CHECK(View::skew(1.5).index(8, 8) ==
        std::vector<std::int64_t>{48, 33, 26, 11, 4, 61, 46, 39, 56, 41, 34, 19, 12, 5, 54, 47, 0, 49, 42, 27, 20, 13,
                                  62, 55, 8, 57, 50, 35, 28, 21, 6, 63, 16, 1, 58, 43, 36, 29, 14, 7, 24, 9, 2, 51, 44,
                                  37, 22, 15, 32, 17, 10, 59, 52, 45, 30, 23, 40, 25, 18, 3, 60, 53, 38, 31});
  CHECK(View::square_hinge().index(8, 8) ==
        std::vector<std::int64_t>{8, 0, 3, 11, 12, 4, 6, 7, 9, 1, 2, 10, 13, 5, 14, 15, 17, 25, 26, 18, 21, 29,
                                  22, 23, 16, 24, 27, 19, 20, 28, 30, 31, 40, 32, 35, 43, 44, 36, 38, 39, 41, 33,
                                  34, 42, 45, 37, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63});
  CHECK(View::inner_circle().index(8, 8) ==  // radius 3·8/8 = 3
        std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 53, 52, 51, 50, 14, 15, 16, 46, 45, 44, 43, 42,
                                  41, 23, 24, 38, 37, 36, 35, 34, 33, 31, 32, 30, 29, 28, 27, 26, 25, 39, 40, 22,
                                  21, 20, 19, 18, 17, 47, 48, 49, 13, 12, 11, 10, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63});
  // The reference's patch convention: 2×2 patches of an 8×8 plane in the order [1, 3, 0, 2].
  const auto patches = View::patch_permute(2, {1, 3, 0, 2}).index(8, 8);
  CHECK(std::vector<std::int64_t>(patches.begin(), patches.begin() + 16) ==
        std::vector<std::int64_t>{4, 5, 6, 7, 36, 37, 38, 39, 12, 13, 14, 15, 44, 45, 46, 47});
  CHECK(std::vector<std::int64_t>(patches.begin() + 32, patches.begin() + 40) ==
        std::vector<std::int64_t>{0, 1, 2, 3, 32, 33, 34, 35});
  // rotate_cw / rotate_ccw / flip of the reference are rotate270 / rotate90 / flip_vertical.
  CHECK(summary(View::rotate270().index(64, 64)) == std::pair<long long, long long>{17171481600, 0});
  CHECK(summary(View::rotate90().index(64, 64)) == std::pair<long long, long long>{17171481600, 0});
  CHECK(View::rotate270().index(8, 8)[1] == 48);
  CHECK(View::rotate90().index(8, 8)[1] == 15);
  CHECK(summary(View::flip_vertical().index(64, 64)) == std::pair<long long, long long>{11447654400, 0});
  CHECK(summary(View::rotate180().index(64, 64)) == std::pair<long long, long long>{11444858880, 0});
  CHECK(summary(View::skew(1.5).index(64, 64)) == std::pair<long long, long long>{16493402112, 64});
  CHECK(summary(View::inner_circle().index(64, 64)) == std::pair<long long, long long>{20776095946, 2292});
  CHECK(summary(View::square_hinge().index(64, 64)) == std::pair<long long, long long>{22301867910, 136});
  CHECK(summary(View::skew(1.5).index(256, 256)) == std::pair<long long, long long>{67469999177728, 256});
  CHECK(summary(View::inner_circle().index(256, 256)) == std::pair<long long, long long>{85070135927260, 36568});
  CHECK(summary(View::square_hinge().index(256, 256)) == std::pair<long long, long long>{91257395622310, 520});
}

TEST_CASE_TEMPLATE("views: every view is a permutation and view ∘ inverse = identity", T, SCOREFLOW_BACKENDS) {
  for (std::int64_t side : {8, 16, 28, 30}) {
    std::vector<double> img(static_cast<std::size_t>(2 * 2 * side * side));
    std::iota(img.begin(), img.end(), 0.0);
    const T x = make<T>(img, {2, 2, side, side});
    for (const View& v : every_view(side)) {
      CAPTURE(v.name());
      CAPTURE(side);
      CHECK(is_permutation(v.index(side, side)));
      CHECK(ops::to_vector(v.invert(v.apply(x))) == img);
      CHECK(ops::to_vector(v.apply(v.invert(x))) == img);
      CHECK(v.is_orthogonal());
    }
  }
  // Non-square planes: the flips, skew and patch grids; the others refuse by name.
  const T wide = make<T>(std::vector<double>(1 * 1 * 8 * 12, 1.0), {1, 1, 8, 12});
  for (const View& v : {View::skew(), View::flip_vertical(), View::patch_permute(4, 5), View::pixel_permute(1)})
    CHECK(ops::to_vector(v.invert(v.apply(wide))) == ops::to_vector(wide));
  CHECK_THROWS_WITH_AS(View::inner_circle().apply(wide), doctest::Contains("inner_circle: needs square"), shape_error);
  CHECK_THROWS_WITH_AS(View::jigsaw().apply(make<T>(std::vector<double>(900, 0.0), {1, 1, 30, 30})),
                       doctest::Contains("multiple of 4"), shape_error);
  CHECK_THROWS_WITH_AS(View::patch_permute(8, 1).apply(make<T>(std::vector<double>(784, 0.0), {1, 1, 28, 28})),
                       doctest::Contains("divisible by 8"), shape_error);
  CHECK_THROWS_WITH_AS(View::patch_permute(2, {0, 1, 1, 3}), doctest::Contains("no inverse"), invalid_option);
  // Seeds: reproducible, and different seeds give different layouts.
  CHECK(View::pixel_permute(4).index(8, 8) == View::pixel_permute(4).index(8, 8));
  CHECK(View::pixel_permute(4).index(8, 8) != View::pixel_permute(5).index(8, 8));
  CHECK(View::jigsaw(1).index(16, 16) != View::jigsaw(2).index(16, 16));
}

TEST_CASE("jigsaw: pieces partition the plane, each class is one orbit of quarter turns, e and f are translates") {
  for (std::int64_t s : {16, 28, 64, 256}) {
    CAPTURE(s);
    const scoreflow::detail::JigsawLayout jig(s);
    const std::int64_t l = s / 4;
    std::vector<std::vector<std::pair<std::int64_t, std::int64_t>>> pieces(16);
    for (std::int64_t r = 0; r < s; ++r)
      for (std::int64_t c = 0; c < s; ++c) pieces[static_cast<std::size_t>(jig.piece(r * s + c))].push_back({r, c});
    const auto sorted = [](auto v) { std::sort(v.begin(), v.end()); return v; };
    for (int k = 0; k < 4; ++k)
      for (int rot = 0; rot < 4; ++rot) {
        // A quarter turn clockwise about the centre, (r, c) → (c, S − 1 − r), maps piece rot to rot + 1.
        std::vector<std::pair<std::int64_t, std::int64_t>> turned;
        for (auto [r, c] : pieces[static_cast<std::size_t>(4 * k + rot)]) turned.push_back({c, s - 1 - r});
        CHECK(sorted(turned) == sorted(pieces[static_cast<std::size_t>(4 * k + (rot + 1) % 4)]));
      }
    // e0 shifted right by a cell is f0; corners are a cell's area, inner pieces lose two tabs, edges gain one.
    std::vector<std::pair<std::int64_t, std::int64_t>> shifted;
    for (auto [r, c] : pieces[8]) shifted.push_back({r, c + l});
    CHECK(sorted(shifted) == sorted(pieces[12]));
    const auto tab = static_cast<std::int64_t>(pieces[8].size()) - l * l;
    CHECK(tab > 0);
    CHECK(static_cast<std::int64_t>(pieces[0].size()) == l * l);
    CHECK(static_cast<std::int64_t>(pieces[4].size()) == l * l - 2 * tab);
    // Every seed compiles into a permutation that moves whole pieces onto pieces of their class
    // (an e piece may land on an f slot: they are translates).
    for (std::uint64_t seed : {0ULL, 4522ULL, 99ULL}) {
      const auto src = jig.source(seed);
      CHECK(is_permutation(src));
      for (std::int64_t p = 0; p < s * s; ++p) {
        const int a = jig.piece(p) / 4, b = jig.piece(src[static_cast<std::size_t>(p)]) / 4;
        CHECK((a == b || (a >= 2 && b >= 2)));
      }
    }
  }
}

namespace {
constexpr double kS = 0.6;
constexpr std::int64_t kSide = 8;

template <class T>
T pattern(std::int64_t batch, std::int64_t channels, double a, double b) {
  std::vector<double> v;
  for (std::int64_t n = 0; n < batch; ++n)
    for (std::int64_t ch = 0; ch < channels; ++ch)
      for (std::int64_t r = 0; r < kSide; ++r)
        for (std::int64_t c = 0; c < kSide; ++c)
          v.push_back(std::sin(a * static_cast<double>(r) + b * static_cast<double>(c) + 0.9 * static_cast<double>(ch)) +
                      0.3 * static_cast<double>(ch) - 0.2 * static_cast<double>(n));
  return make<T>(v, {batch, channels, kSide, kSide});
}

/// The combined sampler against plain sampling of the field `mean` with the same seed, under DDPM
/// (stochastic: the step noise must line up too) and flow Heun.
template <class T, class Combiner>
void check_equals_plain(const Combiner& combiner, const T& mean, double tol) {
  const auto table = NoiseSchedule::cosine();
  auto eps_model = denoiser(sftest::GaussianField{table, kS}, Parameterization::noise);
  auto flow_model = denoiser(sftest::GaussianField{table, kS}, Parameterization::velocity);
  const T proto = ops::scale(0.0, mean);
  const DiffusionSchedule<DDPMStep> ddpm{table, DiffusionGrid::spaced(20)};
  const FlowSchedule<Heun> heun{FlowGrid::uniform(12)};
  Generator g1(5), g2(5), g3(6), g4(6);
  const T a = Sampler{ddpm, NoGuidance{}, combiner}.sample(eps_model, PureNoise<T>{proto}, g1);
  const T b = Sampler{ddpm, NoGuidance{}, SinglePrompt<T>{mean}}.sample(eps_model, PureNoise<T>{proto}, g2);
  CHECK(sftest::max_abs_diff(a, b) <= tol);
  const T c = Sampler{heun, NoGuidance{}, combiner}.sample(flow_model, PureNoise<T>{proto}, g3);
  const T d = Sampler{heun, NoGuidance{}, SinglePrompt<T>{mean}}.sample(flow_model, PureNoise<T>{proto}, g4);
  CHECK(sftest::max_abs_diff(c, d) <= tol);
}
}  // namespace

TEST_CASE_TEMPLATE("anagram oracle: every view samples exactly N((μ₁ + V⁻¹μ₂)/2, s² I)", T, SCOREFLOW_BACKENDS) {
  // The Gaussian field's answer is a x + b μ per element, so V⁻¹ answer(V x; μ₂) = answer(x; V⁻¹μ₂)
  // for any linear V, and the anagram is the field's denoiser for the averaged mean.
  const T m1 = pattern<T>(2, 1, 0.7, 0.3), m2 = pattern<T>(2, 1, -0.4, 1.1), m3 = pattern<T>(2, 1, 1.3, -0.8);
  for (const View& v : every_view(kSide)) {
    CAPTURE(v.name());
    const T mean = ops::scale(0.5, ops::add(m1, v.invert(m2)));
    check_equals_plain<T>(Anagram<T>({{m1, View::identity()}, {m2, v}}), mean, 50 * sftest::tolerance<T>());
  }
  // Three prompts, three views.
  const View a = View::jigsaw(7), b = View::square_hinge().negated();
  const T mean3 = ops::scale(1.0 / 3.0, ops::add(ops::add(m1, a.invert(m2)), b.invert(m3)));
  check_equals_plain<T>(Anagram<T>({{m1, View::identity()}, {m2, a}, {m3, b}}), mean3, 50 * sftest::tolerance<T>());
  // The check tells a view from its inverse (jigsaw and square hinge are not involutions).
  CHECK(sftest::max_abs_diff(a.invert(m2), a.apply(m2)) > 0.1);
  CHECK(sftest::max_abs_diff(View::square_hinge().invert(m2), View::square_hinge().apply(m2)) > 0.1);

  // A scale is not orthogonal: refused unless asked for.
  CHECK_THROWS_WITH_AS(Anagram<T>({{m1, View::identity()}, {m2, View::flip_vertical().scaled(1.5)}}),
                       doctest::Contains("is not orthogonal"), invalid_option);
  const View white_balance = View::identity().scaled(1.5);
  CHECK_FALSE(white_balance.is_orthogonal());
  check_equals_plain<T>(Anagram<T>({{m1, View::identity()}, {m2, white_balance}}, {.allow_non_orthogonal = true}),
                        ops::scale(0.5, ops::add(m1, white_balance.invert(m2))), 50 * sftest::tolerance<T>());
}

TEST_CASE_TEMPLATE("factorized oracle: every decomposition samples exactly N(Σ fᵢ μᵢ, s² I)", T, SCOREFLOW_BACKENDS) {
  const T m1 = pattern<T>(2, 3, 0.7, 0.3), m2 = pattern<T>(2, 3, -0.4, 1.1), m3 = pattern<T>(2, 3, 1.3, -0.8);
  const GaussianBlur g1(5, 1.0), g2(5, 2.0);
  const std::vector<std::vector<Filter>> splits{
      {Filter::low_pass(g2), Filter::high_pass(g2)},
      {Filter::triple_low(g1, g2), Filter::triple_medium(g1, g2), Filter::triple_high(g1)},
      {Filter::grayscale(), Filter::color()},
      {Filter::motion(), Filter::motion_residual()},
      {Filter::motion(3), Filter::motion_residual(3)},
      {Filter::scaled(-6.5), Filter::scaled(7.5)},  // Factorized Diffusion §4: CFG 7.5 as a sum of prompts
  };
  const std::vector<T> means{m1, m2, m3};
  for (const auto& split : splits) {
    CHECK(sums_to_identity(split));
    std::vector<typename Factorized<T>::Part> parts;
    std::optional<T> mean;
    for (std::size_t i = 0; i < split.size(); ++i) {
      parts.push_back({means[i], split[i]});
      const T f = split[i](means[i]);
      mean = mean ? ops::add(*mean, f) : f;
    }
    check_equals_plain<T>(Factorized<T>(parts), *mean, 50 * sftest::tolerance<T>());
  }
  // The components sum to the image numerically, and each is what its definition says.
  const T y = pattern<T>(1, 3, 0.9, -0.5);
  const T low = Filter::triple_low(g1, g2)(y), mid = Filter::triple_medium(g1, g2)(y), high = Filter::triple_high(g1)(y);
  CHECK(sftest::max_abs_diff(ops::add(ops::add(low, mid), high), y) <= 10 * sftest::tolerance<T>());
  CHECK(sftest::max_abs_diff(low, g2(g1(y))) <= 10 * sftest::tolerance<T>());
  const auto gray = ops::to_vector(Filter::grayscale()(y)), yv = ops::to_vector(y);
  const std::size_t plane = kSide * kSide;
  for (std::size_t p = 0; p < plane; ++p) {
    const double m = (yv[p] + yv[plane + p] + yv[2 * plane + p]) / 3.0;
    for (std::size_t ch = 0; ch < 3; ++ch) CHECK(gray[ch * plane + p] == doctest::Approx(m).epsilon(1e-6));
  }
  // Motion blur: the mean of 7 taps on the main diagonal, zeros outside (the reference's conv2d).
  const auto motion = ops::to_vector(Filter::motion()(y));
  for (std::int64_t r : {0, 3, 7})
    for (std::int64_t c : {0, 4, 7}) {
      double sum = 0.0;
      for (std::int64_t a = -3; a <= 3; ++a)
        if (r + a >= 0 && r + a < kSide && c + a >= 0 && c + a < kSide)
          sum += yv[static_cast<std::size_t>((r + a) * kSide + c + a)];
      CHECK(motion[static_cast<std::size_t>(r * kSide + c)] == doctest::Approx(sum / 7.0).epsilon(1e-6));
    }
  CHECK_FALSE(sums_to_identity({Filter::triple_low(g1, g2), Filter::triple_medium(g1, g2)}));
  CHECK_FALSE(sums_to_identity({Filter::grayscale(), Filter::color(), Filter::scaled(0.5)}));
  CHECK_THROWS_WITH_AS(Factorized<T>({{m1, Filter::motion()}, {m2, Filter::color()}}),
                       doctest::Contains("must sum to the identity"), invalid_option);
}

TEST_CASE_TEMPLATE("inverse problems: a fixed component follows its target; colourisation keeps the grayscale", T,
                   SCOREFLOW_BACKENDS) {
  const T reference = pattern<T>(2, 3, 0.5, 0.2), mean = pattern<T>(2, 3, -0.3, 0.9);
  const auto table = NoiseSchedule::cosine();
  auto flow_model = denoiser(sftest::GaussianField{table, kS}, Parameterization::velocity);
  const FlowSchedule<Heun> heun{FlowGrid::uniform(12)};
  const FixComponent<T> fix(reference, Filter::grayscale());

  // One application, against its definition: f(forward(ref, i, z)) + x − f(x), z the constraint's draw.
  const T x = pattern<T>(2, 3, 1.1, -0.4);
  Generator g(9), g_copy(9);
  const T got = fix.apply(x, 4, heun, g);
  const T known = heun.forward(reference, 4, ops::randn_like(reference, g_copy));
  const Filter gray = Filter::grayscale();
  CHECK(sftest::max_abs_diff(got, ops::add(gray(known), ops::sub(x, gray(x)))) <= 10 * sftest::tolerance<T>());

  // Sampling: after every step the grayscale of x is that of the noised reference (the
  // constraint's part), so at t = 1 it is the reference's own; the colour is generated.
  Generator gen(3);
  std::vector<T> frames;
  const T out = Sampler{heun, NoGuidance{}, SinglePrompt<T>{mean}, fix}.sample(
      flow_model, PureNoise<T>{ops::scale(0.0, mean)}, gen, [&](const StepInfo<T>& info) { frames.push_back(info.x); });
  CHECK(sftest::max_abs_diff(gray(out), gray(reference)) <= 10 * sftest::tolerance<T>());
  CHECK(sftest::max_abs_diff(Filter::color()(out), Filter::color()(reference)) > 0.1);
  // A constraint with the identity filter fixes everything: the output is the reference.
  Generator gen2(3);
  const T all = Sampler{heun, NoGuidance{}, SinglePrompt<T>{mean}, FixComponent<T>(reference, Filter::identity())}.sample(
      flow_model, PureNoise<T>{ops::scale(0.0, mean)}, gen2);
  CHECK(sftest::max_abs_diff(all, reference) <= 10 * sftest::tolerance<T>());
  CHECK_THROWS_WITH_AS(fix.check(pattern<T>(2, 1, 0.1, 0.1)), doctest::Contains("reference image"), shape_error);
}

TEST_CASE_TEMPLATE("anagram reductions: alternate evaluates one prompt per step; k prompts under CFG cost one call", T,
                   SCOREFLOW_BACKENDS) {
  const T m1 = pattern<T>(2, 1, 0.7, 0.3), m2 = pattern<T>(2, 1, -0.4, 1.1);
  const auto table = NoiseSchedule::cosine();
  // Euler on t = 0, 0.1, …: step k uses prompt (k − 1) mod 2, i.e. μ₁ at even tenths.
  struct Switching {
    sftest::GaussianField field;
    T first, second;
    std::vector<std::int64_t>* batches;
    T operator()(const T& x, FlowTime t, const T& mean) const {
      batches->push_back(ops::batch_size(x));
      const int step = static_cast<int>(std::lround(t.value * 10.0));
      (void)mean;
      return field(x, t, step % 2 == 0 ? first : second);
    }
  };
  std::vector<std::int64_t> batches;
  auto plain_model = denoiser(Switching{{table, kS}, m1, m2, &batches}, Parameterization::velocity);
  auto field_model = denoiser(sftest::GaussianField{table, kS}, Parameterization::velocity);
  const FlowSchedule<Euler> euler{FlowGrid::uniform(10)};
  Generator g1(2), g2(2);
  const T alternating = Sampler{euler, NoGuidance{}, Anagram<T>({{m1, View::identity()}, {m2, View::identity()}}, {.alternate = true})}
                            .sample(field_model, PureNoise<T>{ops::scale(0.0, m1)}, g1);
  const T expected = Sampler{euler, NoGuidance{}, SinglePrompt<T>{m1}}.sample(plain_model, PureNoise<T>{ops::scale(0.0, m1)}, g2);
  CHECK(sftest::max_abs_diff(alternating, expected) <= sftest::tolerance<T>());

  // Three prompts with views under CFG: one batched call per step on 2 · 3 · B rows.
  batches.clear();
  struct Counting {
    sftest::GaussianField field;
    std::vector<std::int64_t>* batches;
    T operator()(const T& x, FlowTime t, const T& mean) const {
      batches->push_back(ops::batch_size(x));
      return field(x, t, mean);
    }
  };
  auto counted = denoiser(Counting{{table, kS}, &batches}, Parameterization::velocity);
  Generator g3(4);
  Sampler{euler, ClassifierFree<T>{3.0, ops::scale(0.0, m1)},
          Anagram<T>({{m1, View::identity(), 2.0}, {m2, View::jigsaw()}, {m1, View::skew()}})}
      .sample(counted, PureNoise<T>{ops::scale(0.0, m1)}, g3);
  REQUIRE(batches.size() == 10);
  for (auto b : batches) CHECK(b == 2 * 3 * 2);
}
}  // namespace test_views_decompositions
