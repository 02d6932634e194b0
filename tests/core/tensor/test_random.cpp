// The Gaussian generator (ziggurat) and the fused noisy step op built on it.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "backends.hpp"

namespace test_random {

using namespace scoreflow;
using sftest::make;

TEST_CASE("generator: ziggurat normals follow the standard normal CDF, tails included") {
  Generator gen(2024);
  constexpr int n = 1'000'000;
  const std::vector<double> points{-4.0, -3.7, -2.5, -1.0, -0.3, 0.0, 0.2, 1.0, 2.0, 3.0, 3.6541, 3.8, 4.5};
  std::vector<int> below(points.size(), 0);
  double sum = 0, sum2 = 0, sum4 = 0;
  for (int i = 0; i < n; ++i) {
    const double z = gen.normal();
    sum += z, sum2 += z * z, sum4 += z * z * z * z;
    for (std::size_t k = 0; k < points.size(); ++k) below[k] += z < points[k];
  }
  for (std::size_t k = 0; k < points.size(); ++k) {
    const double p = 0.5 * std::erfc(-points[k] / std::sqrt(2.0));
    const double se = std::sqrt(p * (1 - p) / n);
    CHECK(std::abs(below[k] / static_cast<double>(n) - p) < 5 * se + 1e-7);  // the tail beyond r = 3.654 too
  }
  CHECK(std::abs(sum / n) < 5.0 / std::sqrt(n));
  CHECK(std::abs(sum2 / n - 1.0) < 5.0 * std::sqrt(2.0 / n));
  CHECK(std::abs(sum4 / n - 3.0) < 5.0 * std::sqrt(96.0 / n));  // kurtosis 3 (Var z⁴ = 96)
}

TEST_CASE("generator: fill_normal and for_each_normal give the sequence of normal()") {
  Generator a(9), b(9), c(9);
  std::vector<float> block(1000);
  a.fill_normal(std::span<float>(block));
  std::vector<double> seen(1000);
  c.for_each_normal(seen.size(), [&](std::size_t i, double z) { seen[i] = z; });
  for (std::size_t i = 0; i < block.size(); ++i) {
    const double z = b.normal();
    CHECK(block[i] == static_cast<float>(z));
    CHECK(seen[i] == z);
  }
  const auto next = b.next_u64();
  CHECK(a.next_u64() == next);  // the streams continue in step
  CHECK(c.next_u64() == next);
}

TEST_CASE_TEMPLATE("tensor backend: fused axpby_randn equals the unfused reference", T, SCOREFLOW_BACKENDS) {
  const T x = make<T>({1, -2, 3, 0.25, 5, 6, -7, 8}, {2, 1, 2, 2});
  const T y = make<T>({0.5, 1, -2, 4, 0, 1, 2, 3}, {2, 1, 2, 2});
  Generator g1(3), g2(3);
  const auto fused = ops::to_vector(ops::axpby_randn(0.7, x, -1.3, y, 0.25, g1));
  const auto reference = ops::to_vector(ops::axpby(1.0, ops::axpby(0.7, x, -1.3, y), 0.25, ops::randn_like(x, g2)));
  CHECK(fused == reference);
  CHECK(g1.next_u64() == g2.next_u64());
}

TEST_CASE_TEMPLATE("tensor backend: fused axpbypcz equals the unfused reference bit for bit", T, SCOREFLOW_BACKENDS) {
  // float rounding where fusing could differ: a·x + b·y is rounded to the scalar first, as the
  // two-axpby reference does (tensor.hpp), so a multistep rule gives the same numbers with or
  // without the fast path.
  const T x = make<T>({1, -2, 3, 0.25, 5, 6, -7, 8.125}, {2, 1, 2, 2});
  const T y = make<T>({0.5, 1, -2, 4, 0, 1.0 / 3.0, 2, 3}, {2, 1, 2, 2});
  const T z = make<T>({-0.1, 0.7, 1e-3, 4, 9, -1, 2.5, 1.0 / 7.0}, {2, 1, 2, 2});
  const auto fused = ops::to_vector(ops::axpbypcz(0.7, x, -1.3, y, 0.3, z));
  const auto reference = ops::to_vector(ops::axpby(1.0, ops::axpby(0.7, x, -1.3, y), 0.3, z));
  CHECK(fused == reference);
  CHECK_THROWS_WITH_AS(ops::axpbypcz(1.0, x, 1.0, y, 1.0, make<T>({1, 2}, {1, 1, 1, 2})),
                       doctest::Contains("axpbypcz: operands differ in shape"), shape_error);
  CHECK_THROWS_AS(ops::axpbypcz(1.0, x, 1.0, make<T>({1, 2}, {1, 1, 1, 2}), 1.0, z), shape_error);
}

TEST_CASE("random_permutation is a seeded, unbiased Fisher–Yates (training shuffles, seeded views)") {
  Generator a(42), b(42);
  const auto p = random_permutation(10, a);
  CHECK(p == random_permutation(10, b));
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Pinned: the order must not change between versions (runs must stay reproducible).
  CHECK(p == std::vector<std::int64_t>{7, 3, 8, 9, 5, 6, 4, 1, 0, 2});
  CHECK(random_permutation(0, a).empty());
  CHECK(random_permutation(1, a) == std::vector<std::int64_t>{0});

  // All 6 orders of 3 items, 6000 draws: each within ±5σ of 1000 (σ ≈ 29).
  std::map<std::vector<std::int64_t>, int> counts;
  Generator g(7);
  for (int i = 0; i < 6000; ++i) ++counts[random_permutation(3, g)];
  CHECK(counts.size() == 6);
  for (const auto& [perm, count] : counts) CHECK(std::abs(count - 1000) < 145);
  // uniform_index covers its whole range, even for a bound not dividing 2^64.
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(uniform_index(g, 3));
  CHECK(seen == std::set<std::uint64_t>{0, 1, 2});
  CHECK_THROWS_AS(uniform_index(g, 0), invalid_option);
}
}  // namespace test_random
