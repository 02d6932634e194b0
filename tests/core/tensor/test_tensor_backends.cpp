// Conformance suite for the tensor extension point: every backend must give the same answers.
#include <cmath>

#include "backends.hpp"

namespace test_tensor_backends {

using namespace scoreflow;
using sftest::make;

TEST_CASE_TEMPLATE("tensor backend: elementwise operations", T, SCOREFLOW_BACKENDS) {
  const T x = make<T>({1, 2, 3, 4}, {1, 1, 2, 2});
  const T y = make<T>({0.5, -1, 2, 0}, {1, 1, 2, 2});
  CHECK(ops::shape(x) == Shape{1, 1, 2, 2});
  CHECK(ops::to_vector(ops::axpby(2.0, x, -3.0, y)) == std::vector<double>{0.5, 7, 0, 8});
  CHECK(ops::to_vector(ops::scale(0.5, x)) == std::vector<double>{0.5, 1, 1.5, 2});
  CHECK(ops::to_vector(ops::add_scalar(x, 1.0)) == std::vector<double>{2, 3, 4, 5});
  CHECK(ops::to_vector(ops::multiply(x, y)) == std::vector<double>{0.5, -2, 6, 0});
  CHECK(ops::to_vector(ops::exp(y))[3] == 1.0);
  CHECK(ops::all_finite(x));
  CHECK_FALSE(ops::all_finite(make<T>({1, std::nan(""), 0, 0}, {1, 1, 2, 2})));
  CHECK_FALSE(ops::all_finite(make<T>({1, INFINITY, 0, 0}, {1, 1, 2, 2})));
  CHECK_THROWS_AS(ops::axpby(1.0, x, 1.0, make<T>({1, 2}, {1, 1, 1, 2})), shape_error);
}

TEST_CASE_TEMPLATE("tensor backend: batch and channel splits", T, SCOREFLOW_BACKENDS) {
  const T a = make<T>({1, 2, 3, 4}, {2, 2, 1, 1});
  const T b = make<T>({5, 6}, {1, 2, 1, 1});
  const std::vector<T> parts{a, b};
  const T c = ops::concat_batch(std::span<const T>(parts));
  CHECK(ops::shape(c) == Shape{3, 2, 1, 1});
  CHECK(ops::to_vector(c) == std::vector<double>{1, 2, 3, 4, 5, 6});
  auto halves = ops::split_batch(a, 2);
  REQUIRE(halves.size() == 2);
  CHECK(ops::to_vector(halves[1]) == std::vector<double>{3, 4});
  CHECK_THROWS_AS(ops::split_batch(c, 2), shape_error);
  auto [first, second] = ops::split_channels(a, 1);
  CHECK(ops::to_vector(first) == std::vector<double>{1, 3});
  CHECK(ops::to_vector(second) == std::vector<double>{2, 4});
}

TEST_CASE_TEMPLATE("tensor backend: per-sample quantile and clamp (as torch.quantile)", T, SCOREFLOW_BACKENDS) {
  // |x| of sample 0 = 0..9 → q(0.95) = 8.55 by linear interpolation; sample 1 all 2 → 2.
  std::vector<double> v;
  for (int i = 0; i < 10; ++i) v.push_back(i % 2 ? -i : i);
  for (int i = 0; i < 10; ++i) v.push_back(2);
  const T x = make<T>(v, {2, 1, 2, 5});
  auto q = ops::abs_quantile_per_sample(x, 0.95);
  REQUIRE(q.size() == 2);
  CHECK(q[0] == doctest::Approx(8.55));
  CHECK(q[1] == doctest::Approx(2.0));
  auto c = ops::to_vector(ops::clamp_divide_per_sample(x, {4.0, 1.0}));
  CHECK(c[0] == 0.0);
  CHECK(c[9] == -1.0);  // −9 clamped to −4, divided by 4
  CHECK(c[2] == 0.5);
  CHECK(c[10] == 1.0);  // 2 clamped to 1
}

TEST_CASE_TEMPLATE("tensor backend: seeded noise is identical across backends", T, SCOREFLOW_BACKENDS) {
  Generator g1(7), g2(7);
  const T like = sftest::zeros<T>({2, 3, 4, 4});
  auto n = ops::to_vector(ops::randn_like(like, g1));
  std::vector<double> ref(n.size());
  for (auto& r : ref) r = static_cast<float>(g2.normal());  // backends round through float32 or keep double
  double worst = 0;
  for (std::size_t i = 0; i < n.size(); ++i) worst = std::max(worst, std::abs(n[i] - ref[i]));
  CHECK(worst < 1e-6);
  // Same seed, same stream; moments of a standard normal.
  Generator g3(123);
  const auto m = ops::to_vector(ops::randn_like(sftest::zeros<T>({100, 1, 10, 10}), g3));
  double mean = 0, var = 0;
  for (double e : m) mean += e;
  mean /= static_cast<double>(m.size());
  for (double e : m) var += (e - mean) * (e - mean);
  var /= static_cast<double>(m.size() - 1);
  CHECK(std::abs(mean) < 4.0 / 100.0);  // 4 standard errors for 10,000 samples
  CHECK(std::abs(var - 1.0) < 4.0 * std::sqrt(2.0 / 1e4));
}

TEST_CASE("generator: reproducible and seed-dependent") {
  Generator a(1), b(1), c(2);
  for (int i = 0; i < 10; ++i) {
    const auto va = a.next_u64();
    CHECK(va == b.next_u64());
    CHECK(va != c.next_u64());
  }
}
}  // namespace test_tensor_backends
