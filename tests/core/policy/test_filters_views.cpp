#include <cmath>
#include <numeric>

#include "backends.hpp"

namespace test_filters_views {

using namespace scoreflow;
using sftest::make;

TEST_CASE("Gaussian kernel equals torchvision's _get_gaussian_kernel1d") {
  // torchvision, kernel_size 5, sigma 2: exp(−x²/8) normalised, x = −2..2 (derived by hand).
  const double e1 = std::exp(-1.0 / 8), e2 = std::exp(-4.0 / 8), z = 1 + 2 * e1 + 2 * e2;
  const auto k = GaussianBlur(5, 2.0).kernel();
  REQUIRE(k.size() == 5);
  CHECK(k[0] == doctest::Approx(e2 / z).epsilon(1e-15));
  CHECK(k[1] == doctest::Approx(e1 / z).epsilon(1e-15));
  CHECK(k[2] == doctest::Approx(1 / z).epsilon(1e-15));
  CHECK(k[0] == doctest::Approx(0.15246914).epsilon(1e-7));  // torchvision prints 0.1525, 0.2218, 0.2514
  CHECK(k[2] == doctest::Approx(0.25137912).epsilon(1e-7));
  // Default sigma (seed §1.2): 0.3((k − 1)/2 − 1) + 0.8.
  CHECK(GaussianBlur(5).sigma() == doctest::Approx(1.1));
  CHECK(GaussianBlur(33).sigma() == doctest::Approx(5.3));
  CHECK_THROWS_WITH_AS(GaussianBlur(4), doctest::Contains("kernel_size = 4"), invalid_option);
  CHECK_THROWS_WITH_AS(GaussianBlur(-3), doctest::Contains("kernel_size = -3"), invalid_option);
  CHECK_THROWS_WITH_AS(GaussianBlur(5, 0.0), doctest::Contains("sigma = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(GaussianBlur(5, -1.0), doctest::Contains("sigma = -1"), invalid_option);
}

TEST_CASE_TEMPLATE("Gaussian blur: reflect padding + separable kernel, as torchvision", T, SCOREFLOW_BACKENDS) {
  // Independent reference: a direct 2-D sum with explicitly mirrored indices.
  const int h = 4, w = 5, k = 5;
  std::vector<double> img(2 * h * w);
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = std::sin(0.7 * static_cast<double>(i)) + 0.1 * static_cast<double>(i % 7);
  const auto g = GaussianBlur(k, 2.0).kernel();
  auto mirror = [](int i, int n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); };
  std::vector<double> expected(img.size());
  for (int p = 0; p < 2; ++p)
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) {
        double acc = 0;
        for (int dr = -2; dr <= 2; ++dr)
          for (int dc = -2; dc <= 2; ++dc)
            acc += g[dr + 2] * g[dc + 2] * img[p * h * w + mirror(r + dr, h) * w + mirror(c + dc, w)];
        expected[p * h * w + r * w + c] = acc;
      }
  const T x = make<T>(img, {1, 2, h, w});
  const auto got = ops::to_vector(GaussianBlur(k, 2.0)(x));
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-6));
  // A kernel whose half-width reaches the image size is rejected (torch's reflect pad would fail too).
  CHECK_THROWS_AS(GaussianBlur(9)(x), shape_error);
}

TEST_CASE_TEMPLATE("filters: low + high pass of the same blur is the identity", T, SCOREFLOW_BACKENDS) {
  std::vector<double> img(40 * 40);
  Generator gen(3);
  for (auto& v : img) v = gen.normal();
  const T x = make<T>(img, {1, 1, 40, 40});
  const T sum = ops::add(Filter::low_pass()(x), Filter::high_pass()(x));
  CHECK(sftest::max_abs_diff(sum, x) < sftest::tolerance<T>());
  CHECK(sums_to_identity({Filter::low_pass(), Filter::high_pass()}));
  CHECK_FALSE(sums_to_identity({Filter::low_pass(), Filter::high_pass(GaussianBlur(33, 3.0))}));
  CHECK(sums_to_identity({Filter::low_pass(GaussianBlur(9, 1.0)),
                          Filter::band_pass(GaussianBlur(5, 0.5), GaussianBlur(9, 1.0)),
                          Filter::high_pass(GaussianBlur(5, 0.5))}));
}

TEST_CASE_TEMPLATE("views: known layouts and view ∘ inverse = identity", T, SCOREFLOW_BACKENDS) {
  // 2×3 plane [[0 1 2] [3 4 5]]
  const T x = make<T>({0, 1, 2, 3, 4, 5}, {1, 1, 2, 3});
  CHECK(ops::to_vector(View::flip_vertical().apply(x)) == std::vector<double>{3, 4, 5, 0, 1, 2});
  CHECK(ops::to_vector(View::flip_horizontal().apply(x)) == std::vector<double>{2, 1, 0, 5, 4, 3});
  CHECK(ops::to_vector(View::rotate180().apply(x)) == std::vector<double>{5, 4, 3, 2, 1, 0});
  CHECK(ops::to_vector(View::flip_vertical().negated().apply(x)) == std::vector<double>{-3, -4, -5, -0, -1, -2});
  // torch.rot90([[0 1] [2 3]], 1) = [[1 3] [0 2]]
  const T sq = make<T>({0, 1, 2, 3}, {1, 1, 2, 2});
  CHECK(ops::to_vector(View::rotate90().apply(sq)) == std::vector<double>{1, 3, 0, 2});
  CHECK(ops::to_vector(View::rotate270().apply(sq)) == std::vector<double>{2, 0, 3, 1});
  CHECK(ops::to_vector(View::transpose().apply(sq)) == std::vector<double>{0, 2, 1, 3});
  CHECK_THROWS_AS(View::rotate90().apply(x), shape_error);

  std::vector<double> img(2 * 3 * 6 * 6);
  std::iota(img.begin(), img.end(), 0.0);
  const T big = make<T>(img, {2, 3, 6, 6});
  std::vector<std::int64_t> perm(36);
  std::iota(perm.begin(), perm.end(), 0);
  std::reverse(perm.begin(), perm.begin() + 17);
  for (const View& v : {View::identity(), View::flip_vertical(), View::flip_horizontal(), View::rotate90(),
                        View::rotate180(), View::rotate270(), View::transpose(), View::identity().negated(),
                        View::permutation(perm), View::rotate90().negated()}) {
    CHECK(ops::to_vector(v.invert(v.apply(big))) == img);
    CHECK(ops::to_vector(v.apply(v.invert(big))) == img);
  }
  CHECK(ops::to_vector(View::rotate90().apply(View::rotate270().apply(big))) == img);
}

TEST_CASE("views: a user permutation must be invertible") {
  CHECK_THROWS_WITH_AS(View::permutation({0, 0, 1}), doctest::Contains("permutation[1] = 0"), invalid_option);
  CHECK_THROWS_WITH_AS(View::permutation({0, 3, 1}), doctest::Contains("no inverse"), invalid_option);
  CHECK_THROWS_AS(View::permutation({1, 0}).apply(xt::xarray<double>::from_shape({1, 1, 3, 3})), shape_error);
}
}  // namespace test_filters_views
