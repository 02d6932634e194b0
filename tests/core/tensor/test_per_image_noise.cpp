// Per-image noise (issue 17): with Generator::per_image, image i's noise depends only on (seed, i),
// so one batch, several batches or single images give the same samples for the same seed — through
// the whole sampler, with a stochastic step rule and a constraint that draws its own noise.
#include <vector>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_per_image_noise {

using namespace scoreflow;
using sftest::make;

TEST_CASE("per-image generator: image i's numbers depend on (seed, i) only") {
  const std::size_t per = 7;
  auto draw = [&](std::uint64_t first, std::uint64_t count, int draws, std::uint64_t seed = 42) {
    Generator g = Generator::per_image(seed, first, count);
    std::vector<std::vector<double>> rows(count);
    for (int d = 0; d < draws; ++d) {
      std::vector<double> out(count * per);
      g.fill_normal(std::span<double>(out));
      for (std::size_t r = 0; r < count; ++r) rows[r].insert(rows[r].end(), out.begin() + r * per, out.begin() + (r + 1) * per);
    }
    return rows;
  };
  const auto all = draw(0, 6, 3);
  const auto low = draw(0, 2, 3), high = draw(2, 4, 3);
  for (std::size_t r = 0; r < 6; ++r) {
    CHECK(all[r] == (r < 2 ? low[r] : high[r - 2]));
    CHECK(all[r] == draw(r, 1, 3)[0]);
  }
  CHECK(all[0] != all[1]);
  CHECK(draw(0, 1, 1)[0] != draw(0, 1, 1, 43)[0]);
  // Splits are per image too, and the same for every batching.
  Generator a = Generator::per_image(42, 0, 4), b = Generator::per_image(42, 2, 2);
  Generator sa = a.split(), sb = b.split();
  std::vector<double> va(4 * per), vb(2 * per);
  sa.fill_normal(std::span<double>(va));
  sb.fill_normal(std::span<double>(vb));
  CHECK(std::vector<double>(va.begin() + 2 * per, va.end()) == vb);
  // A plain generator is unchanged: split() is Generator(next_u64()).
  Generator p(5), q(5);
  Generator ps = p.split(), qs(q.next_u64());
  CHECK(ps.next_u64() == qs.next_u64());

  Generator bad = Generator::per_image(1, 0, 3);
  std::vector<double> five(5);
  CHECK_THROWS_WITH_AS(bad.fill_normal(std::span<double>(five)), doctest::Contains("does not split into 3 images"),
                       shape_error);
  CHECK_THROWS_WITH_AS(bad.next_u64(), doctest::Contains("one stream per image"), invalid_option);
  CHECK_THROWS_WITH_AS(Generator::per_image(1, 0, 0), doctest::Contains("images = 0"), invalid_option);
}

TEST_CASE_TEMPLATE("per-image noise: one batch, two batches and single images sample the same images", T,
                   SCOREFLOW_BACKENDS) {
  constexpr std::int64_t kN = 6;
  const auto table = NoiseSchedule::cosine();
  auto model = denoiser(sftest::GaussianDiffusion{table, 0.0, 0.5}, Parameterization::noise);
  std::vector<double> means, original, mask;
  for (std::int64_t i = 0; i < kN; ++i) {
    means.push_back(0.3 * static_cast<double>(i) - 0.7);
    for (int p = 0; p < 16; ++p) {
      original.push_back(0.1 * p - 0.4 * static_cast<double>(i));
      mask.push_back(p % 3 == 0 ? 0.0 : 1.0);
    }
  }
  const auto slice = [](const std::vector<double>& v, std::int64_t from, std::int64_t count, std::int64_t per) {
    return std::vector<double>(v.begin() + from * per, v.begin() + (from + count) * per);
  };
  // DDPM steps (fresh noise every step), inpainting (noise of its own), CFG: every draw is per image.
  const auto run = [&](std::int64_t from, std::int64_t count) {
    const T cond = make<T>(slice(means, from, count, 1), {count, 1, 1, 1});
    const T orig = make<T>(slice(original, from, count, 16), {count, 1, 4, 4});
    const T m = make<T>(slice(mask, from, count, 16), {count, 1, 4, 4});
    Generator gen = Generator::per_image(2024, static_cast<std::uint64_t>(from), static_cast<std::uint64_t>(count));
    Sampler s{DiffusionSchedule<DDPMStep>{table, DiffusionGrid::spaced(12)}, ClassifierFree<T>{3.0, sftest::zeros<T>({count, 1, 1, 1})},
              SinglePrompt<T>{cond}, Inpaint<T>{orig, m}};
    return ops::to_vector(s.sample(model, PureNoise<T>{sftest::zeros<T>({count, 1, 4, 4})}, gen));
  };
  const auto whole = run(0, kN);
  std::vector<double> halves = run(0, 2), rest = run(2, 4);
  halves.insert(halves.end(), rest.begin(), rest.end());
  CHECK(halves == whole);
  for (std::int64_t i = 0; i < kN; ++i) CHECK(run(i, 1) == slice(whole, i, 1, 16));
  // The images differ from one another (the streams are not shared).
  CHECK(slice(whole, 0, 1, 16) != slice(whole, 1, 1, 16));
}
}  // namespace test_per_image_noise
