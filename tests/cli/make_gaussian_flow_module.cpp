// The oracle and the checker of the `sample --torchscript` end-to-end test (check_sample_torchscript.sh).
//
//   make_gaussian_flow_module module <file.pt> [--wrong-shape]
//       writes a TorchScript module with sample's signature, forward(x [B,C,H,W], t [B], c [B,K]),
//       answering the EXACT velocity of the seed's flow path x_t = (1 − t) ε + t x₁ for data
//       x₁ ~ N(μ(c), s²) per pixel, μ(c) = μ₀ + a·Σ_k k·c_k (class k: μ₀ + a·k; c = 0: μ₀):
//         u(x, t) = E[x₁ − ε | x_t = x] = (μ(1 − t) + x(t s² − 1 + t)) / ((1 − t)² + t² s²)
//       (the same formula as sftest::GaussianFlow in tests/oracles.hpp). It asserts the signature
//       (t of shape [B] in [0, 1], c of shape [B, K]), so a front end that passes anything else
//       fails. --wrong-shape: returns the top half of the image instead, [B,C,H/2,W].
//   make_gaussian_flow_module check <sample out dir> <solver> <grid> <classes, e.g. 0,5,9>
//                                   <per class> <guidance γ> <model calls per run, or 0: any positive>
//       reads sample's samples-images-idx3-ubyte, samples-labels-idx1-ubyte and summary.json and
//       checks, class by class, that the pixel mean is within 0.01 of μ_γ (20 samples of 8 × 8
//       pixels: the standard error is s/√1280 ≈ 0.003) and the pixel std within 15 % of s; and
//       that summary.json names the solver, grid, guidance and model calls. Classifier-free guidance (Ho & Salimans 2022, eq. 6) mixes the
//       conditional and the unconditional answers as u + γ(u_c − u); u is affine in μ with the
//       same x coefficient for every μ, so the guided velocity is the exact velocity of
//       N(μ_γ, s²), μ_γ = μ₀ + γ(μ(k) − μ₀) = μ₀ + γ·a·k: guided samples keep the std s and move
//       the mean by γ.
// Prints one line per class and exits 1 on any failure.
#include <torch/script.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "scoreflow/torch/data/idx.hpp"
#include "scoreflow/torch/torch_message.hpp"

namespace {

constexpr double mu0 = 0.3, slope = 0.04, s = 0.1;  // the oracle's N(μ₀ + a·k, s²)
constexpr double mean_tolerance = 0.01, std_tolerance = 0.15;

// u for the flow path α = t, σ = 1 − t: E[x₁ | x_t] for Gaussian data, turned into a velocity.
constexpr const char* exact_velocity = R"(
def forward(self, x, t, c):
    assert t.dim() == 1 and t.size(0) == x.size(0), "t must have shape [B]"
    assert c.dim() == 2 and c.size(0) == x.size(0), "c must have shape [B, K]"
    assert bool(t.min() >= 0.0) and bool(t.max() <= 1.0), "t must lie in [0, 1]"
    k = torch.arange(c.size(1), dtype=c.dtype, device=c.device)
    mu = (self.mu0 + self.slope * (c * k).sum(1)).view(-1, 1, 1, 1)
    tt = t.view(-1, 1, 1, 1)
    s2 = self.s * self.s
    d = (1.0 - tt) * (1.0 - tt) + tt * tt * s2
    u = (mu * (1.0 - tt) + x * (tt * s2 - 1.0 + tt)) / d
    if self.wrong_shape:
        return u[:, :, : x.size(2) // 2, :]
    return u
)";

void write_module(const std::string& file, bool wrong_shape) {
  torch::jit::Module m("GaussianFlow");
  m.register_attribute("mu0", c10::FloatType::get(), mu0);
  m.register_attribute("slope", c10::FloatType::get(), slope);
  m.register_attribute("s", c10::FloatType::get(), s);
  m.register_attribute("wrong_shape", c10::BoolType::get(), wrong_shape);
  m.define(exact_velocity);
  m.save(file);
}

std::vector<std::int64_t> parse_classes(const std::string& list) {
  std::vector<std::int64_t> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoll(item));
  return out;
}

int check(const std::filesystem::path& dir, const std::string& solver, const std::string& grid, const std::string& class_list,
          std::int64_t per_class, double gamma, std::int64_t expected_calls) {
  const auto classes = parse_classes(class_list);
  const auto images = scoreflow::read_idx(dir / "samples-images-idx3-ubyte");
  const auto labels = scoreflow::read_idx(dir / "samples-labels-idx1-ubyte").to(torch::kLong);
  int failures = 0;
  auto fail = [&](const std::string& what) {
    std::printf("FAIL %s: %s\n", solver.c_str(), what.c_str());
    ++failures;
  };
  const auto n = static_cast<std::int64_t>(classes.size()) * per_class;
  if (images.dim() != 3 || images.size(0) != n || labels.dim() != 1 || labels.size(0) != n) {
    std::ostringstream m;
    m << "expected " << n << " images and labels, got images " << images.sizes() << " and labels " << labels.sizes();
    fail(m.str());
    return 1;
  }
  // uint8 = round(255 · clamp(x, 0, 1)): back to [0, 1]; rounding adds variance 1/(12 · 255²).
  const auto x = images.to(torch::kFloat64).div(255.0).flatten(1);
  for (std::size_t j = 0; j < classes.size(); ++j) {
    const auto k = classes[j];
    const auto rows = torch::arange(static_cast<std::int64_t>(j) * per_class, static_cast<std::int64_t>(j + 1) * per_class);
    if (!labels.index({rows}).eq(k).all().item<bool>()) fail("labels of class " + std::to_string(k) + " out of place");
    const auto pixels = x.index({rows});
    const double mean = pixels.mean().item<double>(), sd = pixels.std().item<double>();
    const double target = mu0 + gamma * slope * static_cast<double>(k);
    const bool ok = std::abs(mean - target) <= mean_tolerance && std::abs(sd - s) <= std_tolerance * s;
    std::printf("%-4s %-10s class %lld  mean %.4f (target %.4f)  std %.4f (target %.4f)\n", ok ? "ok" : "FAIL",
                solver.c_str(), static_cast<long long>(k), mean, target, sd, s);
    if (!ok) ++failures;
  }
  std::ifstream in(dir / "summary.json");
  if (!in) {
    fail("no summary.json");
    return 1;
  }
  const auto summary = nlohmann::json::parse(in);
  if (summary.value("solver", "") != solver) fail("summary.json solver = " + summary.value("solver", "(none)"));
  if (summary.value("family", "") != "flow") fail("summary.json family = " + summary.value("family", "(none)"));
  if (summary.value("grid", "") != grid) fail("summary.json grid = " + summary.value("grid", "(none)"));
  if (summary.value("guidance", 0.0) != gamma) fail("summary.json guidance = " + std::to_string(summary.value("guidance", 0.0)));
  if (summary.value("samples", std::int64_t{0}) != n) fail("summary.json samples != " + std::to_string(n));
  const auto calls = summary.value("model_calls_per_run", std::int64_t{0});
  if (expected_calls > 0 ? calls != expected_calls : calls <= 0)
    fail("summary.json model_calls_per_run = " + std::to_string(calls) + ", expected " +
         (expected_calls > 0 ? std::to_string(expected_calls) : std::string("> 0")));
  std::printf("%-4s %-10s model calls per run %lld\n", failures ? "FAIL" : "ok", solver.c_str(),
              static_cast<long long>(calls));
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() >= 2 && a.size() <= 3 && a[0] == "module" && (a.size() == 2 || a[2] == "--wrong-shape")) {
      write_module(a[1], a.size() == 3);
      return 0;
    }
    if (a.size() == 8 && a[0] == "check")
      return check(a[1], a[2], a[3], a[4], std::stoll(a[5]), std::stod(a[6]), std::stoll(a[7]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_gaussian_flow_module: %s\n", scoreflow::detail::torch_message(e).c_str());
    return 1;
  }
  std::fprintf(stderr,
               "usage: make_gaussian_flow_module module <file.pt> [--wrong-shape]\n"
               "       make_gaussian_flow_module check <dir> <solver> <grid> <classes> <per class> <guidance> <calls or 0>\n");
  return 2;
}
