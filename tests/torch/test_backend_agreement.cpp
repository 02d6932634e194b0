// The torch and xtensor paths give the same images for the same seed (issue: ≤ 1e-5).
#include <torch/torch.h>

#include "backends.hpp"
#include "oracles.hpp"

namespace test_backend_agreement {

using namespace scoreflow;

namespace {
template <class T, class Schedule, class Guidance, class Combiner, class Constraint, class Model>
std::vector<double> run(const Sampler<Schedule, Guidance, Combiner, Constraint>& s, Model& model, const T& proto) {
  Generator gen(77);
  return ops::to_vector(s.sample(model, PureNoise<T>{proto}, gen));
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}
}  // namespace

TEST_CASE("torch::Tensor and xt::xarray<float> sample identical images") {
  using X = xt::xarray<float>;
  using T = torch::Tensor;
  const auto table = NoiseSchedule::cosine();
  auto model = denoiser(sftest::GaussianDiffusion{table, 0.2, 0.5}, Parameterization::noise);
  const X px = sftest::zeros<X>({2, 3, 16, 16});
  const T pt = torch::zeros({2, 3, 16, 16});
  const X cx = sftest::make<X>({0.5, -0.5}, {2, 1, 1, 1}), ux = sftest::zeros<X>({2, 1, 1, 1});
  const T ct = torch::tensor({0.5f, -0.5f}).view({2, 1, 1, 1}), ut = torch::zeros({2, 1, 1, 1});

  SUBCASE("strided DDPM with fixed-small noise and CFG (seed §1.4–1.6)") {
    const DiffusionSchedule<DDPMStep> schedule{table, DiffusionGrid::strided()};
    CHECK(max_diff(run(Sampler{schedule, ClassifierFree<X>{7.0, ux}, SinglePrompt<X>{cx}}, model, px),
                   run(Sampler{schedule, ClassifierFree<T>{7.0, ut}, SinglePrompt<T>{ct}}, model, pt)) <= 1e-5);
  }
  SUBCASE("anagram with flips and hybrid with blurs (seed §1.8, §1.9)") {
    const DiffusionSchedule<DDPMStep> schedule{table, DiffusionGrid::strided(990, 90)};
    CHECK(max_diff(run(Sampler{schedule, ClassifierFree<X>{3.0, ux},
                               Anagram<X>({{cx, View::identity()}, {ux, View::flip_vertical()}, {cx, View::rotate90().negated()}})},
                       model, px),
                   run(Sampler{schedule, ClassifierFree<T>{3.0, ut},
                               Anagram<T>({{ct, View::identity()}, {ut, View::flip_vertical()}, {ct, View::rotate90().negated()}})},
                       model, pt)) <= 1e-5);
    CHECK(max_diff(run(Sampler{schedule, ClassifierFree<X>{3.0, ux}, Factorized<X>::hybrid(cx, ux, GaussianBlur(9, 2.0))}, model, px),
                   run(Sampler{schedule, ClassifierFree<T>{3.0, ut}, Factorized<T>::hybrid(ct, ut, GaussianBlur(9, 2.0))}, model, pt)) <=
          1e-5);
  }
  SUBCASE("inpainting with RePaint and dynamic thresholding") {
    const DiffusionSchedule<DDPMStep> schedule{table, DiffusionGrid::spaced(12),
                                               DDPMStep{StepVariance::fixed_small, DynamicThreshold{}}};
    std::vector<double> mask(2 * 3 * 16 * 16);
    for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = (i % 16) < 8 ? 1.0 : 0.0;
    std::vector<double> orig(mask.size());
    for (std::size_t i = 0; i < orig.size(); ++i) orig[i] = std::sin(0.01 * static_cast<double>(i));
    const X mx = sftest::make<X>(mask, {2, 3, 16, 16}), ox = sftest::make<X>(orig, {2, 3, 16, 16});
    const T mt = sftest::make<T>(mask, {2, 3, 16, 16}), ot = sftest::make<T>(orig, {2, 3, 16, 16});
    CHECK(max_diff(run(Sampler{schedule, NoGuidance{}, SinglePrompt{}, Inpaint<X>{ox, mx, RePaint{2, 2}}}, model, px),
                   run(Sampler{schedule, NoGuidance{}, SinglePrompt{}, Inpaint<T>{ot, mt, RePaint{2, 2}}}, model, pt)) <= 1e-5);
  }
  SUBCASE("flow matching: Euler, midpoint, Heun") {
    auto flow = denoiser(sftest::GaussianFlow{0.2, 0.5}, Parameterization::velocity);
    CHECK(max_diff(run(Sampler{FlowSchedule<Heun>{FlowGrid::uniform(20)}, ClassifierFree<X>{5.0, ux}, SinglePrompt<X>{cx}}, flow, px),
                   run(Sampler{FlowSchedule<Heun>{FlowGrid::uniform(20)}, ClassifierFree<T>{5.0, ut}, SinglePrompt<T>{ct}}, flow, pt)) <=
          1e-5);
    CHECK(max_diff(run(Sampler{FlowSchedule<Midpoint>{FlowGrid::uniform(20)}}, flow, px),
                   run(Sampler{FlowSchedule<Midpoint>{FlowGrid::uniform(20)}}, flow, pt)) <= 1e-5);
  }
}
}  // namespace test_backend_agreement
