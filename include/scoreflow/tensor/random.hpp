#pragma once
// Portable, seeded Gaussian noise. The standard library's normal_distribution differs between
// implementations; ours is xoshiro256** + a 256-layer ziggurat (Marsaglia & Tsang 2000, J. Stat.
// Softw. 5(8), with one 64-bit draw per attempt: 8 bits pick the layer, 1 the sign, 52 the abscissa),
// so the same seed gives the same numbers for every tensor backend (the torch and xtensor paths see
// identical noise). About 98.8% of draws take the fast path: one table lookup, a compare and a multiply.
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "scoreflow/errors.hpp"

namespace scoreflow {

namespace detail {
/// splitmix64's finaliser: a 64-bit mix with full avalanche.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// One stream of numbers: xoshiro256** and the ziggurat (the file comment). Generator holds one,
/// or one per image.
class NormalStream {
 public:
  explicit NormalStream(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    // splitmix64 expands the seed into the 256-bit state (recommended by xoshiro's authors).
    for (auto& word : state_) {
      seed += 0x9E3779B97F4A7C15ULL;
      word = mix64(seed);
    }
  }

  /// Uniform 64-bit integer (xoshiro256**).
  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform double in the open interval (0, 1).
  double uniform() { return (static_cast<double>(next_u64() >> 11) + 0.5) * 0x1.0p-53; }

  /// Standard normal sample (ziggurat; see the file comment). `for_each_normal` gives the same sequence.
  double normal() { return normal(ziggurat()); }

  /// Draws n normals in order and hands each to sink(i, z): the same numbers as n calls to
  /// normal(), for loops that store or combine each draw (fill_normal). Keep the sink small: with
  /// more work in it the state no longer fits in registers (the backends' axpby_randn draws into
  /// its result first, then combines).
  template <class Sink>
  void for_each_normal(std::size_t n, Sink&& sink) {
    const Ziggurat& z = ziggurat();  // one static-guard check per block, not per value
    NormalStream local = *this;      // a local copy keeps the state in registers
    for (std::size_t i = 0; i < n; ++i) sink(i, local.normal(z));
    *this = local;
  }

 private:
  struct Ziggurat;
  static const Ziggurat& ziggurat();

  // The fast path stays small enough to inline into for_each_normal's loop (where the generator's
  // state then lives in registers); the rare rest is out of line. Inlining the whole loop body,
  // log/exp included, made compilers call normal() per draw instead: 60% of a DDPM step's time in
  // bench_sampler_overhead went to that call and the state's loads and stores.
  double normal(const Ziggurat& z) {
    const std::uint64_t bits = next_u64();
    const auto i = static_cast<unsigned>(bits & 0xff);
    const std::uint64_t sign = (bits & 0x100) << 55;  // bit 8 → the double's sign bit (branch-free)
    const std::uint64_t u = bits >> 12;                // 52 bits
    const double x = static_cast<double>(static_cast<std::int64_t>(u)) * z.w[i];
    if (u < z.k[i]) [[likely]]
      return with_sign(x, sign);  // inside the layer's rectangle below the next layer's edge
    return normal_outside_rectangle(z, i, x, sign);
  }

#if defined(__GNUC__)
  __attribute__((noinline))
#endif
  double normal_outside_rectangle(const Ziggurat& z, unsigned i, double x, std::uint64_t sign) {
    if (i == 0) {  // the base layer's tail beyond r (Marsaglia 1964)
      double a, b;
      do {
        a = -std::log(uniform()) / ziggurat_r;
        b = -std::log(uniform());
      } while (b + b < a * a);
      return with_sign(ziggurat_r + a, sign);
    }
    // wedge: accept under the density exp(−x²/2) between the layer's two heights, else draw again
    if (z.f[i] + uniform() * (z.f[i + 1] - z.f[i]) < std::exp(-0.5 * x * x)) return with_sign(x, sign);
    return normal(z);
  }

  static double with_sign(double x, std::uint64_t sign) {
    return std::bit_cast<double>(std::bit_cast<std::uint64_t>(x) ^ sign);
  }

  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  /// Layer edges x[0..256] (x[0] = v/f(r) is the base strip's width, x[1] = r, x[256] = 0) and
  /// heights f = exp(−x²/2); each layer has area v. k[i] = ⌊2⁵² x[i+1]/x[i]⌋, w[i] = x[i]/2⁵².
  static constexpr double ziggurat_r = 3.6541528853610088;
  struct Ziggurat {
    static constexpr double r = ziggurat_r;
    std::array<double, 257> x{}, f{};
    std::array<double, 256> w{};
    std::array<std::uint64_t, 256> k{};
    Ziggurat() {
      const double fr = std::exp(-0.5 * r * r);
      const double v = r * fr + std::sqrt(std::acos(-1.0) / 2.0) * std::erfc(r / std::sqrt(2.0));
      x[0] = v / fr;
      x[1] = r;
      for (int i = 1; i < 255; ++i) x[i + 1] = std::sqrt(-2.0 * std::log(v / x[i] + std::exp(-0.5 * x[i] * x[i])));
      x[256] = 0.0;
      for (int i = 0; i <= 256; ++i) f[i] = std::exp(-0.5 * x[i] * x[i]);
      const double scale = 0x1.0p52;
      for (int i = 0; i < 256; ++i) {
        k[i] = static_cast<std::uint64_t>(x[i + 1] / x[i] * scale);
        w[i] = x[i] / scale;
      }
    }
  };

  std::uint64_t state_[4]{};
};

inline const NormalStream::Ziggurat& NormalStream::ziggurat() {
  static const Ziggurat table;
  return table;
}

/// A stream key from a seed and an index, different for every (seed, index) pair in practice.
constexpr std::uint64_t stream_key(std::uint64_t seed, std::uint64_t index) {
  return mix64(seed ^ mix64(index + 0x9E3779B97F4A7C15ULL));
}
}  // namespace detail

/// The random source of every sampler: a seeded stream, or one stream per image.
///
/// Plain (`Generator(seed)`): one stream; a draw for a tensor takes its elements in order.
///
/// Per image (`Generator::per_image(seed, first, count)`): a batch of `count` images, image
/// first + r of the whole job drawing from its own stream keyed by (seed, first + r). A draw of n
/// values for the batch gives image r the next n/count numbers of its stream (row-major: the batch
/// is the leading axis), so image i's noise depends only on (seed, i) and on the sequence of draws
/// the sampler makes, never on the batch size, on how a job is split into batches or across
/// processes, or on the device. Sampling images 0 … 255 in one batch, in batches of 32, or on four
/// ranks of 64 gives the same images for the same seed.
class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : stream_(seed) {}

  static Generator per_image(std::uint64_t seed, std::uint64_t first_image, std::uint64_t images) {
    if (images == 0) throw invalid_option("Generator::per_image: images = 0: must be at least 1");
    Generator g(seed);
    g.key_ = seed, g.first_ = first_image;
    g.images_.reserve(static_cast<std::size_t>(images));
    for (std::uint64_t r = 0; r < images; ++r) g.images_.emplace_back(detail::stream_key(seed, first_image + r));
    return g;
  }

  [[nodiscard]] bool is_per_image() const { return !images_.empty(); }
  [[nodiscard]] std::size_t images() const { return images_.size(); }

  /// Back to one plain stream from `seed`.
  void reseed(std::uint64_t seed) {
    images_.clear();
    stream_.reseed(seed);
  }

  /// An independent generator of the same kind (the sampler's start and policy streams): plain,
  /// Generator(next_u64()); per image, each image's stream keyed anew from (seed, split count, i).
  Generator split() {
    if (!is_per_image()) return Generator(next_u64());
    return per_image(detail::stream_key(key_, 0xD1B54A32D192ED03ULL + ++splits_), first_, images_.size());
  }

  /// Uniform 64-bit integer, normal and uniform draws: one stream only (a per-image generator has
  /// no single next number; draw through a tensor, or split it first).
  std::uint64_t next_u64() { return plain("next_u64").next_u64(); }
  double uniform() { return plain("uniform").uniform(); }
  double normal() { return plain("normal").normal(); }

  template <class Scalar>
  void fill_normal(std::span<Scalar> out) {
    Scalar* p = out.data();
    for_each_normal(out.size(), [p](std::size_t i, double z) { p[i] = static_cast<Scalar>(z); });
  }

  /// Draws n normals and hands each to sink(i, z) (a small sink: see NormalStream::for_each_normal):
  /// plain, the same numbers as n calls to normal(); per image, element i from image
  /// ⌊i / (n / images)⌋'s stream.
  template <class Sink>
#if defined(__GNUC__)
  __attribute__((always_inline)) inline
#endif
  void for_each_normal(std::size_t n, Sink&& sink) {
    if (images_.empty()) [[likely]] {
      stream_.for_each_normal(n, sink);
      return;
    }
    for_each_normal_per_image(n, sink);
  }

 private:
  // Out of line, so that the plain path above stays as small as before per-image streams existed
  // (bench_sampler_overhead: inlined together, the fused DDPM step lost ~10 µs a step).
  template <class Sink>
#if defined(__GNUC__)
  __attribute__((noinline))
#endif
  void for_each_normal_per_image(std::size_t n, Sink& sink) {
    const std::size_t count = images_.size();
    if (n % count != 0)
      throw shape_error("per-image noise: a draw of " + std::to_string(n) + " values does not split into " +
                                  std::to_string(count) + " images (the batch must be the generator's image count)");
    const std::size_t per = n / count;
    for (std::size_t r = 0; r < count; ++r)
      images_[r].for_each_normal(per, [&](std::size_t j, double z) { sink(r * per + j, z); });
  }

  detail::NormalStream& plain(const char* what) {
    if (!images_.empty())
      throw invalid_option(std::string("Generator::") + what +
                                  ": a per-image generator has one stream per image, not one next number");
    return stream_;
  }

  detail::NormalStream stream_;
  std::vector<detail::NormalStream> images_;  ///< empty: plain
  std::uint64_t key_ = 0, first_ = 0, splits_ = 0;
};

/// Uniform integer in [0, bound), without modulo bias (rejects the few values past the last
/// complete multiple of bound).
inline std::uint64_t uniform_index(Generator& gen, std::uint64_t bound) {
  if (bound == 0) throw invalid_option("uniform_index: bound = 0: must be positive");
  const std::uint64_t threshold = (0 - bound) % bound;  // = 2^64 mod bound
  for (;;) {
    const std::uint64_t r = gen.next_u64();
    if (r >= threshold) return r % bound;
  }
}

/// A uniformly random permutation of 0..n-1 (Fisher–Yates; Knuth, TAOCP vol. 2, §3.4.2, Alg. P):
/// training shuffles, seeded views' layouts, class-balanced picks.
inline std::vector<std::int64_t> random_permutation(std::int64_t n, Generator& gen) {
  if (n < 0) throw invalid_option(detail::concat("random_permutation: n = ", n, ": must be ≥ 0"));
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(uniform_index(gen, static_cast<std::uint64_t>(i) + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

}  // namespace scoreflow
