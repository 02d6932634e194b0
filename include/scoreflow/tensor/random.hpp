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

namespace scoreflow {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    // splitmix64 expands the seed into the 256-bit state (recommended by xoshiro's authors).
    for (auto& word : state_) {
      seed += 0x9E3779B97F4A7C15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      word = z ^ (z >> 31);
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

  /// Standard normal sample (ziggurat; see the file comment). `fill_normal` gives the same sequence.
  double normal() { return normal(ziggurat()); }

  template <class Scalar>
  void fill_normal(std::span<Scalar> out) {
    Scalar* p = out.data();
    for_each_normal(out.size(), [p](std::size_t i, double z) { p[i] = static_cast<Scalar>(z); });
  }

  /// Draws n normals in order and hands each to sink(i, z): the same numbers as n calls to
  /// normal(), for fused loops (e.g. mean + σ z written in one pass, tensor.hpp's axpby_randn).
  template <class Sink>
  void for_each_normal(std::size_t n, Sink&& sink) {
    const Ziggurat& z = ziggurat();  // one static-guard check per block, not per value
    Generator local = *this;         // a local copy keeps the state in registers
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

inline const Generator::Ziggurat& Generator::ziggurat() {
  static const Ziggurat table;
  return table;
}

}  // namespace scoreflow
