// The tensor extension point (scoreflow/tensor/tensor.hpp) from a new backend's side: a plain
// row-major vector that implements the arithmetic group (and host copies, for the oracle) but no
// image operation and no fast path. It must sample exactly as xtensor does — which declares all
// three fast paths — so the generic defaults and the fast paths give the same numbers.
#include <cmath>
#include <numeric>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_extension_point {
struct Plain {
  std::vector<double> v;
  scoreflow::Shape shape;
};
}  // namespace test_extension_point

template <>
struct scoreflow::tensor_traits<test_extension_point::Plain> {
  using Plain = test_extension_point::Plain;
  static Shape shape(const Plain& x) { return x.shape; }
  template <class F>
  static Plain map2(const Plain& x, const Plain& y, F f) {
    if (x.shape != y.shape) throw shape_error("plain: operands differ in shape");
    Plain out{std::vector<double>(x.v.size()), x.shape};
    for (std::size_t i = 0; i < x.v.size(); ++i) out.v[i] = f(x.v[i], y.v[i]);
    return out;
  }
  static Plain axpby(double a, const Plain& x, double b, const Plain& y) {
    return map2(x, y, [&](double p, double q) { return a * p + b * q; });
  }
  static Plain scale(double a, const Plain& x) { return axpby(a, x, 0.0, x); }
  static Plain add_scalar(const Plain& x, double a) {
    Plain out = x;
    for (auto& e : out.v) e += a;
    return out;
  }
  static Plain multiply(const Plain& x, const Plain& y) { return map2(x, y, std::multiplies<>{}); }
  static Plain exp(const Plain& x) {
    Plain out = x;
    for (auto& e : out.v) e = std::exp(e);
    return out;
  }
  static Plain randn_like(const Plain& x, Generator& gen) {
    Plain out{std::vector<double>(x.v.size()), x.shape};
    gen.fill_normal(std::span<double>(out.v));
    return out;
  }
  static Plain concat_batch(std::span<const Plain> parts) {
    Plain out{{}, parts[0].shape};
    out.shape[0] = 0;
    for (const auto& p : parts) {
      out.v.insert(out.v.end(), p.v.begin(), p.v.end());
      out.shape[0] += p.shape[0];
    }
    return out;
  }
  static std::vector<Plain> split_batch(const Plain& x, std::int64_t parts) {
    std::vector<Plain> out;
    const std::size_t chunk = x.v.size() / static_cast<std::size_t>(parts);
    for (std::int64_t k = 0; k < parts; ++k) {
      Plain p{{x.v.begin() + static_cast<std::ptrdiff_t>(k * chunk),
               x.v.begin() + static_cast<std::ptrdiff_t>((k + 1) * chunk)}, x.shape};
      p.shape[0] /= parts;
      out.push_back(std::move(p));
    }
    return out;
  }
  static std::pair<Plain, Plain> split_channels(const Plain&, std::int64_t) {
    throw shape_error("plain: no learned variance in this test");
  }
  static bool all_finite(const Plain& x) {
    return std::all_of(x.v.begin(), x.v.end(), [](double e) { return std::isfinite(e); });
  }
  static std::vector<double> to_vector(const Plain& x) { return x.v; }
  static Plain from_vector(const std::vector<double>& v, const Shape& s, const Plain&) { return {v, s}; }
};

namespace test_extension_point {

using namespace scoreflow;
using Array = xt::xarray<double>;

static_assert(Tensor<Plain> && HostCopyable<Plain>);
static_assert(!ImageTensor<Plain>, "a backend without the image group is still a Tensor");
static_assert(scoreflow::detail::declared_fast_paths<Array>().axpby_randn &&
              scoreflow::detail::declared_fast_paths<Array>().repeat_batch &&
              scoreflow::detail::declared_fast_paths<Array>().axpby_halves &&
              scoreflow::detail::declared_fast_paths<Array>().axpbypcz);
static_assert(!scoreflow::detail::declared_fast_paths<Plain>().axpby_randn);

TEST_CASE("an arithmetic-only backend samples exactly as xtensor's fast paths do") {
  const auto table = NoiseSchedule::cosine();
  const Shape shape{64, 1, 2, 2};
  const Plain plain{std::vector<double>(256, 0.0), shape};
  const Array array = ops::from_vector(std::vector<double>(256, 0.0), shape, Array{});
  const auto same = [](const Plain& p, const Array& a) {
    REQUIRE(p.v.size() == a.size());
    double worst = 0;
    for (std::size_t i = 0; i < p.v.size(); ++i) worst = std::max(worst, std::abs(p.v[i] - a.data()[i]));
    return worst;
  };
  SUBCASE("DDPM, fixed-small variance (axpby_randn)") {
    auto model = denoiser(sftest::GaussianDiffusion{table, 0.3, 0.5}, Parameterization::noise);
    Sampler sampler{DiffusionSchedule<DDPMStep>{table, DiffusionGrid::strided()}};
    Generator g1(7), g2(7);
    CHECK(same(sampler.sample(model, PureNoise<Plain>{plain}, g1), sampler.sample(model, PureNoise<Array>{array}, g2)) <
          1e-12);
  }
  SUBCASE("classifier-free guidance, one batched call (repeat_batch, axpby_halves)") {
    auto model = denoiser(sftest::GaussianFlow{0.3, 0.5}, Parameterization::velocity);
    const auto cond = [&](const auto& like, double mean) {
      return ops::from_vector(std::vector<double>(256, mean), shape, like);
    };
    Sampler p_sampler{FlowSchedule<Heun>{FlowGrid::uniform(8)}, ClassifierFree{3.0, cond(plain, 0.0)},
                      SinglePrompt<Plain>{cond(plain, 1.0)}};
    Sampler a_sampler{FlowSchedule<Heun>{FlowGrid::uniform(8)}, ClassifierFree{3.0, cond(array, 0.0)},
                      SinglePrompt<Array>{cond(array, 1.0)}};
    Generator g1(8), g2(8);
    CHECK(same(p_sampler.sample(model, PureNoise<Plain>{plain}, g1), a_sampler.sample(model, PureNoise<Array>{array}, g2)) <
          1e-12);
  }
  SUBCASE("multistep rules (axpbypcz): DPM-Solver++ 2M and 3M, UniPC, DEIS, iPNDM") {
    auto model = denoiser(sftest::GaussianDiffusion{table, 0.3, 0.5}, Parameterization::noise);
    const auto run = [&](auto rule) {
      Sampler sampler{DiffusionSchedule<decltype(rule)>{table, DiffusionGrid::spaced(12), rule}};
      Generator g1(11), g2(11);
      return same(sampler.sample(model, PureNoise<Plain>{plain}, g1), sampler.sample(model, PureNoise<Array>{array}, g2));
    };
    CHECK(run(DPMSolverPP{.order = 2}) < 1e-12);
    CHECK(run(DPMSolverPP{.order = 3}) < 1e-12);
    CHECK(run(UniPC{.order = 3}) < 1e-12);
    CHECK(run(DEIS{.order = 3}) < 1e-12);
    CHECK(run(IPNDM{.order = 4}) < 1e-12);
  }
  SUBCASE("dynamic thresholding needs the image group: a clear error, not a compile failure") {
    auto model = denoiser(sftest::GaussianDiffusion{table, 0.3, 0.5}, Parameterization::noise);
    Sampler sampler{DiffusionSchedule<DDIMStep>{table, DiffusionGrid::spaced(10), DDIMStep{0.0, DynamicThreshold{}}}};
    Generator gen(9);
    CHECK_THROWS_WITH_AS(sampler.sample(model, PureNoise<Plain>{plain}, gen),
                         doctest::Contains("needs the image operations"), invalid_option);
  }
}
}  // namespace test_extension_point
