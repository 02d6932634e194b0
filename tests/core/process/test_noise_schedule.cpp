#include <cmath>

#include "backends.hpp"

namespace test_noise_schedule {

using namespace scoreflow;

TEST_CASE("cosine schedule equals DeepFloyd IF / diffusers squaredcos_cap_v2") {
  const auto table = NoiseSchedule::cosine(1000);
  REQUIRE(table.size() == 1000);
  // Acceptance values (float64) from the issue.
  const std::pair<int, double> expected[] = {{0, 0.999958715775178},      {250, 0.8458879864968832},
                                             {500, 0.49228517244880304},   {750, 0.14317864642609812},
                                             {990, 1.9671738012480358e-4}, {999, 2.4287669070348567e-9}};
  for (auto [t, value] : expected) {
    CAPTURE(t);
    CHECK(std::abs(table.alpha_bar(t) / value - 1.0) <= 1e-9);
    // In float the same table keeps a relative error ≤ 1e-6.
    CHECK(std::abs(static_cast<float>(table.alpha_bar(t)) / value - 1.0) <= 1e-6);
  }
  CHECK(table.alpha_bar(-1) == 1.0);
}

TEST_CASE("linear schedule: betas from 1e-4 to 0.02") {
  const auto table = NoiseSchedule::linear(1000);
  CHECK(table.alpha_bar(0) == doctest::Approx(1.0 - 1e-4).epsilon(1e-15));
  CHECK(table.alpha_bar(1) == doctest::Approx((1.0 - 1e-4) * (1.0 - (1e-4 + 0.0199 / 999))).epsilon(1e-14));
  // Last beta is exactly 0.02: ᾱ_999 / ᾱ_998 = 0.98.
  CHECK(table.alpha_bar(999) / table.alpha_bar(998) == doctest::Approx(0.98).epsilon(1e-12));
  // Known value of the DDPM linear schedule: ᾱ_999 ≈ 4.036e-5.
  CHECK(table.alpha_bar(999) == doctest::Approx(4.0358e-5).epsilon(1e-3));
}

TEST_CASE("user tables are validated") {
  CHECK_NOTHROW(NoiseSchedule({0.9, 0.5, 0.1}));
  CHECK_THROWS_WITH_AS(NoiseSchedule({0.9, 0.95}), doctest::Contains("alphas_cumprod[1]"), invalid_option);
  CHECK_THROWS_WITH_AS(NoiseSchedule({1.5}), doctest::Contains("(0, 1]"), invalid_option);
  CHECK_THROWS_AS(NoiseSchedule({0.5, std::nan("")}), invalid_option);
  CHECK_THROWS_AS(NoiseSchedule(std::vector<double>{}), invalid_option);
  CHECK_THROWS_WITH_AS(NoiseSchedule::from_betas({0.1, 1.0}), doctest::Contains("betas[1]"), invalid_option);
  CHECK_THROWS_WITH_AS(static_cast<void>(NoiseSchedule({0.9, 0.5}).alpha_bar(2)), doctest::Contains("timestep = 2"), invalid_option);
}

TEST_CASE("time grids") {
  SUBCASE("the seed's strided list 990, 960, ..., 0") {
    const auto g = DiffusionGrid::strided();
    REQUIRE(g.size() == 34);
    CHECK(g[0].value == 990);
    CHECK(g[1].value == 960);
    CHECK(g[33].value == 0);
    CHECK(DiffusionGrid::strided(100, 25).timesteps() == std::vector<int>{100, 75, 50, 25, 0});
  }
  SUBCASE("diffusers spacings (examples), then the clean target -1") {
    CHECK(DiffusionGrid::spaced(10, 1000, DiffusionGrid::Spacing::leading).timesteps() ==
          std::vector<int>{900, 800, 700, 600, 500, 400, 300, 200, 100, 0, -1});
    CHECK(DiffusionGrid::spaced(10, 1000, DiffusionGrid::Spacing::leading, 1).timesteps() ==
          std::vector<int>{901, 801, 701, 601, 501, 401, 301, 201, 101, 1, -1});
    CHECK(DiffusionGrid::spaced(10, 1000, DiffusionGrid::Spacing::trailing).timesteps() ==
          std::vector<int>{999, 899, 799, 699, 599, 499, 399, 299, 199, 99, -1});
    // np.linspace(0, 999, 10).round()[::-1]
    CHECK(DiffusionGrid::spaced(10, 1000, DiffusionGrid::Spacing::linspace).timesteps() ==
          std::vector<int>{999, 888, 777, 666, 555, 444, 333, 222, 111, 0, -1});
    // trailing with a non-integer ratio: np.round(np.arange(1000, 0, -1000/3)) - 1
    CHECK(DiffusionGrid::spaced(3, 1000, DiffusionGrid::Spacing::trailing).timesteps() ==
          std::vector<int>{999, 666, 332, -1});
  }
  SUBCASE("diffusers' timesteps for every n = 1 ... 1000, to the last integer") {
    struct Recorded {
      int n;
      long linspace_sum, linspace_weighted, leading_sum, leading_weighted;
      int trailing_length;
      long trailing_sum, trailing_weighted;
    };
    static constexpr Recorded recorded[] = {
#include "diffusers_timesteps.inc"
    };
    const auto digest = [](const DiffusionGrid& g) {
      const auto& t = g.timesteps();
      REQUIRE(t.back() == -1);  // our clean target, not part of diffusers' list
      std::pair<long, long> d{0, 0};
      for (std::size_t k = 0; k + 1 < t.size(); ++k) {
        d.first += t[k];
        d.second += static_cast<long>(k + 1) * t[k];
      }
      return d;
    };
    int longer = 0;
    for (const auto& r : recorded) {
      CAPTURE(r.n);
      using S = DiffusionGrid::Spacing;
      const auto lin = DiffusionGrid::spaced(r.n, 1000, S::linspace), lead = DiffusionGrid::spaced(r.n, 1000, S::leading),
                 trail = DiffusionGrid::spaced(r.n, 1000, S::trailing);
      CHECK(lin.size() == static_cast<std::size_t>(r.n) + 1);
      CHECK(lead.size() == static_cast<std::size_t>(r.n) + 1);
      CHECK(trail.size() == static_cast<std::size_t>(r.n) + 1);  // n, even where diffusers returns n + 1
      CHECK(digest(lin) == std::pair<long, long>{r.linspace_sum, r.linspace_weighted});
      CHECK(digest(lead) == std::pair<long, long>{r.leading_sum, r.leading_weighted});
      CHECK(digest(trail) == std::pair<long, long>{r.trailing_sum, r.trailing_weighted});
      if (r.trailing_length == r.n + 1) ++longer;
    }
    CHECK(std::size(recorded) == 1000);
    CHECK(longer == 62);  // diffusers' np.arange bug: n + 1 trailing timesteps ending at -1
    // The two cases the issue names: n = 27 at index 13 (linspace) is 499, not 500.
    CHECK(DiffusionGrid::spaced(27, 1000, DiffusionGrid::Spacing::linspace)[13].value == 499);
  }
  SUBCASE("flow grids on [0, 1]") {
    const auto g = FlowGrid::uniform(300);
    REQUIRE(g.size() == 301);
    CHECK(g[0].value == 0.0);
    CHECK(g[300].value == 1.0);
    CHECK(g[150].value == doctest::Approx(0.5));
  }
  SUBCASE("bad grids name the parameter") {
    CHECK_THROWS_WITH_AS(DiffusionGrid({10, 20}), doctest::Contains("grid[1] = 20"), invalid_option);
    CHECK_THROWS_WITH_AS(DiffusionGrid({10}), doctest::Contains("grid.size()"), invalid_option);
    CHECK_THROWS_WITH_AS(DiffusionGrid::strided(990, 0), doctest::Contains("stride = 0"), invalid_option);
    CHECK_THROWS_WITH_AS(DiffusionGrid::spaced(0), doctest::Contains("steps = 0"), invalid_option);
    CHECK_THROWS_WITH_AS(FlowGrid({0.0, 1.5}), doctest::Contains("grid[1] = 1.5"), invalid_option);
    CHECK_THROWS_WITH_AS(FlowGrid({0.5, 0.5}), doctest::Contains("must increase"), invalid_option);
    CHECK_THROWS_WITH_AS(FlowGrid::uniform(0), doctest::Contains("steps = 0"), invalid_option);
    CHECK_THROWS_WITH_AS(DiffusionSchedule<DDPMStep>(NoiseSchedule::linear(100), DiffusionGrid::strided()),
                         doctest::Contains("grid[0] = 990"), invalid_option);
  }
}
}  // namespace test_noise_schedule
