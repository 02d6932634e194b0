#pragma once
// Every deliverable of the seed's Part A (§0 – §1.9) on a real denoiser we train ourselves: a
// class-conditioned, noise-predicting DDPM on MNIST standing in for DeepFloyd IF. Each
// deliverable runs through scoreflow::Sampler and is written into a Report. Shared by
// examples/part_a.cpp (and the gallery).
//
// Mapping to the seed: the class one-hot is the "prompt" ("7"), the all-zero condition is the
// unconditional mode, i.e. the seed's "a high quality photo"; images live in [−1, 1] as IF's do.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/part_b.hpp"  // PartBContext, detail::export_idx / quality / digit_grid
#include "common/report.hpp"
#include "common/training_run.hpp"
#include "scoreflow/core.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/eval/evaluator.hpp"
#include "scoreflow/torch/io/image_io.hpp"
#include "scoreflow/torch/models/adapters.hpp"

namespace examples {

struct PartAConfig {
  torch::Device device = torch::kCPU;
  std::uint64_t seed = 42;
  std::int64_t train_limit = 0;  ///< use only the first N training images (0: all)
  std::int64_t hidden = 64, epochs = 20, batch = 128;
  double lr = 1e-3;              ///< Adam, with the seed's exponential decay 0.1^(1/epochs)
  double p_uncond = 0.1;
  /// What the net predicts: ε as DDPM and IF (full), or v (quick: the same model and sampler
  /// through a conversion, but it learns the high-noise steps, where the class is decided, faster).
  scoreflow::Parameterization prediction = scoreflow::Parameterization::noise;
  double gamma = 7.0;            ///< seed §1.6: CFG γ = 7
  std::int64_t eval_per_class = 40;
  int eval_steps = 0;            ///< 0: the strided grid (990, 960, …, 0); else DiffusionGrid::spaced(eval_steps)
  std::int64_t eval_uncond = 400;     ///< unconditional samples for their Fréchet distance
  std::int64_t classifier_limit = 0;  ///< train the evaluator on the first N training images (0: all)

  static PartAConfig full() { return {}; }
  /// A small model and a short run for a 2-core CPU.
  static PartAConfig quick() {
    // Sized for an unloaded 2-core CPU: D = 32, 2 epochs of 6,000 images (≈ 2 min); the
    // evaluation samples on the seed's strided grid. Measured under load ≈ 5 (other jobs running) the same
    // training took 650 s, so timings depend on the machine being free.
    PartAConfig c;
    c.train_limit = 6000;
    c.hidden = 32, c.epochs = 2, c.batch = 32;
    c.lr = 2e-3;  // 376 steps instead of 1,400: a larger step compensates
    // Measured (D = 32, same data and seed, strided grid, γ = 7, 200 samples): ε-prediction,
    // batch 64, 4 epochs: CAS 73.5%, FD 269; v-prediction, same run: CAS 100%, FD 304; v, batch
    // 32, 2 epochs (104 s): CAS 100%, FD 215. See DiffusionObjective for why v.
    c.prediction = scoreflow::Parameterization::velocity;
    c.eval_steps = 0;  // the seed's strided grid (34 steps)
    c.eval_uncond = 100;
    c.classifier_limit = 20000;
    return c;
  }
  /// A smoke test (CI): every code path, meaningless quality.
  static PartAConfig tiny() {
    PartAConfig c;
    c.train_limit = 256;
    c.hidden = 8, c.epochs = 1, c.batch = 32;
    c.eval_per_class = 2, c.eval_steps = 4, c.eval_uncond = 16;
    return c;
  }
};

/// Data and evaluator: the same as Part B's.
using PartAContext = PartBContext;

namespace detail {
namespace sm = scoreflow::models;
using T = torch::Tensor;
using Step = scoreflow::DiffusionSchedule<scoreflow::DDPMStep>;

inline T to_unit(const T& x) { return ((x + 1) / 2).clamp(0, 1); }
inline T to_model(const T& x) { return x * 2 - 1; }
/// MSE in [0, 1] pixel units of two images given in model units [−1, 1].
inline double mse01(const T& a, const T& b) { return ((a - b) / 2).pow(2).mean().item<double>(); }

/// The trained DDPM with what every deliverable needs: its ε̂ denoiser, the cosine table and
/// one-hot prompts on the right device.
struct DDPM {
  sm::ClassConditionalUNet net;
  torch::Device device;
  std::uint64_t seed;
  double gamma;
  std::string name;  ///< "ClassConditionalUNet D = 32 DDPM (cosine, T = 1000)"
  scoreflow::NoiseSchedule table = scoreflow::NoiseSchedule::cosine();
  scoreflow::Parameterization prediction;
  decltype(sm::micro_batched(sm::ddpm_predictor(std::declval<sm::ClassConditionalUNet>(), prediction), forward_chunk)) model =
      sm::micro_batched(sm::ddpm_predictor(net, prediction), forward_chunk);

  [[nodiscard]] Step strided() const { return Step{table, scoreflow::DiffusionGrid::strided(990, 30)}; }
  [[nodiscard]] Step spaced(int steps) const { return Step{table, scoreflow::DiffusionGrid::spaced(steps)}; }
  [[nodiscard]] T prompt(const T& labels) const {
    return sm::one_hot(labels.to(torch::kLong), sm::num_classes(net)).to(device);
  }
  [[nodiscard]] T prompt(std::int64_t digit, std::int64_t n) const { return prompt(torch::full({n}, digit, torch::kLong)); }
  [[nodiscard]] T noise_shape(std::int64_t n) const { return torch::zeros({n, 1, 28, 28}, device); }
  [[nodiscard]] scoreflow::ClassifierFree<T> cfg(const T& cond) const { return {gamma, torch::zeros_like(cond)}; }
  [[nodiscard]] std::string seed_text() const { return "seed " + std::to_string(seed); }
  /// The unconditional ε̂(x_t, t) whatever the net predicts (seed §1.3 works with ε̂).
  [[nodiscard]] T noise(const T& x, int t) {
    const scoreflow::Prediction<T> p{model.fn(x, scoreflow::Timestep{t}, scoreflow::NoCondition{}), prediction};
    return scoreflow::diffusion::to_noise(p, x, table.alpha_bar(t));
  }

  /// Unconditional ("a high quality photo") sampling from a start on a schedule.
  template <class Start>
  T uncond(const Step& s, const Start& start) {
    scoreflow::Generator gen(seed);
    return scoreflow::Sampler{s}.sample(model, start, gen);
  }
  /// Class-conditional sampling with CFG γ.
  template <class Start>
  T cond(const Step& s, const T& labels_onehot, const Start& start) {
    scoreflow::Generator gen(seed);
    return scoreflow::Sampler{s, cfg(labels_onehot), scoreflow::SinglePrompt<T>{labels_onehot}}.sample(model, start, gen);
  }
};

/// First test image with this label (model units, on the device), and its index.
inline std::pair<T, std::int64_t> test_digit(PartAContext& ctx, std::int64_t label, torch::Device device, std::int64_t skip = 0) {
  const auto idx = (ctx.test.labels == label).nonzero().view(-1);
  const auto i = idx[skip].item<std::int64_t>();
  return {to_model(ctx.test.images.slice(0, i, i + 1)).to(device), i};
}

inline std::string ints(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s;
}

/// A tiny RGB canvas for the "hand-drawn" inputs of §1.7.1: round brush strokes.
struct Canvas {
  int w, h;
  std::vector<float> rgb;  // h × w × 3 in [0, 1]
  Canvas(int width, int height, float r, float g, float b) : w(width), h(height), rgb(static_cast<std::size_t>(width * height * 3)) {
    for (int i = 0; i < w * h; ++i) rgb[3 * i] = r, rgb[3 * i + 1] = g, rgb[3 * i + 2] = b;
  }
  void dot(double cx, double cy, double radius, float r, float g, float b) {
    for (int y = std::max(0, static_cast<int>(cy - radius - 1)); y <= std::min(h - 1, static_cast<int>(cy + radius + 1)); ++y)
      for (int x = std::max(0, static_cast<int>(cx - radius - 1)); x <= std::min(w - 1, static_cast<int>(cx + radius + 1)); ++x) {
        const double d = std::hypot(x - cx, y - cy);
        const double a = std::clamp(radius + 0.5 - d, 0.0, 1.0);  // soft edge
        if (a <= 0) continue;
        float* p = &rgb[static_cast<std::size_t>(3 * (y * w + x))];
        p[0] = static_cast<float>(p[0] * (1 - a) + r * a);
        p[1] = static_cast<float>(p[1] * (1 - a) + g * a);
        p[2] = static_cast<float>(p[2] * (1 - a) + b * a);
      }
  }
  /// A polyline through `pts`, with a hand's wobble of `wobble` pixels.
  void stroke(const std::vector<std::pair<double, double>>& pts, double radius, float r, float g, float b, double wobble = 0) {
    double travelled = 0;
    for (std::size_t k = 0; k + 1 < pts.size(); ++k) {
      const auto [x0, y0] = pts[k];
      const auto [x1, y1] = pts[k + 1];
      const double len = std::hypot(x1 - x0, y1 - y0);
      const double nx = len > 0 ? -(y1 - y0) / len : 0, ny = len > 0 ? (x1 - x0) / len : 0;
      for (double s = 0; s <= len; s += 0.5) {
        const double u = len > 0 ? s / len : 0, off = wobble * std::sin((travelled + s) / 9.0) * std::cos((travelled + s) / 23.0);
        dot(x0 + u * (x1 - x0) + off * nx, y0 + u * (y1 - y0) + off * ny, radius, r, g, b);
      }
      travelled += len;
    }
  }
  void ellipse(double cx, double cy, double rx, double ry, double radius, float r, float g, float b, double wobble = 0) {
    std::vector<std::pair<double, double>> pts;
    for (int i = 0; i <= 72; ++i) {
      const double a = i * 2 * M_PI / 72;
      pts.emplace_back(cx + rx * std::cos(a), cy + ry * std::sin(a));
    }
    stroke(pts, radius, r, g, b, wobble);
  }
  [[nodiscard]] T tensor() const {  // 1×3×h×w
    return torch::from_blob(const_cast<float*>(rgb.data()), {h, w, 3}, torch::kFloat32).permute({2, 0, 1}).unsqueeze(0).clone();
  }
  [[nodiscard]] std::vector<unsigned char> bytes() const {
    std::vector<unsigned char> out(rgb.size());
    for (std::size_t i = 0; i < rgb.size(); ++i) out[i] = static_cast<unsigned char>(std::lround(std::clamp(rgb[i], 0.0f, 1.0f) * 255));
    return out;
  }
};

/// A drawing or photo loaded as an MNIST-like 28×28 digit in model units: gray, resampled with
/// stb's filter, inverted when the background is light, stretched to [0, 1].
inline T load_as_digit(const std::filesystem::path& path, torch::Device device) {
  scoreflow::ImageLoadOptions o;
  o.channels = 1, o.height = 28, o.width = 28;
  auto x = scoreflow::load_image(path, o);
  if (x.mean().item<double>() > 0.5) x = 1 - x;
  const double lo = x.min().item<double>(), hi = x.max().item<double>();
  x = (x - lo) / std::max(hi - lo, 1e-6);
  return to_model(x).to(device);
}
}  // namespace detail

inline std::string prediction_text(scoreflow::Parameterization p) {
  switch (p) {
    case scoreflow::Parameterization::noise: return "ε-prediction";
    case scoreflow::Parameterization::velocity: return "v-prediction (v = √ᾱ ε − √(1 − ᾱ) x₀, sampled as ε̂ = √(1 − ᾱ) x_t + √ᾱ v̂)";
    case scoreflow::Parameterization::sample: return "x₀-prediction";
  }
  return "?";
}

/// Seed §0 setup: train (or reuse) the DDPM that replaces DeepFloyd IF.
inline detail::DDPM part_a_model(const PartAConfig& cfg, PartAContext& ctx, Report& report) {
  report.section_title("A 0", "Setup: our pretrained model, and sampling from it");
  torch::manual_seed(cfg.seed);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = cfg.hidden});
  // One cache entry per configuration, so quick, full and overridden runs never resume each other.
  const std::string run_id = "a0_ddpm_D" + std::to_string(cfg.hidden) + "_e" + std::to_string(cfg.epochs) + "_b" +
                             std::to_string(cfg.batch) + "_n" + std::to_string(ctx.train.size()) + "_lr" + fmt(cfg.lr) + "_s" +
                             std::to_string(cfg.seed) + "_" + scoreflow::to_string(cfg.prediction);
  tr::TrainOptions o{.epochs = cfg.epochs, .batch_size = cfg.batch, .lr = cfg.lr, .lr_decay = tr::seed_lr_decay(cfg.epochs),
                     .seed = cfg.seed, .device = cfg.device, .log_every = 10, .checkpoint_dir = ctx.cache / run_id};
  tr::Trainer trainer(net, tr::DiffusionObjective<tr::ClassDropout>{scoreflow::NoiseSchedule::cosine(), tr::ClassDropout{cfg.p_uncond}, cfg.prediction}, o);
  const auto data = tr::tensor_source(detail::to_model(ctx.train.images), ctx.train.labels);
  auto run = train_cached("a0_ddpm", "class-conditioned DDPM", trainer, data, report, [](const tr::EpochSummary&) {});
  const std::string name = "ClassConditionalUNet D = " + std::to_string(cfg.hidden) + " DDPM";
  report.add({"A 0", "Training loss of our 'pretrained' DDPM", "a0_ddpm_loss.png",
              name + ": " + prediction_text(cfg.prediction) + " (DiffusionObjective), cosine schedule, T = 1000, input t/1000, class dropout p = " + fmt(cfg.p_uncond) +
                  ", MNIST scaled to [−1, 1], batch " + std::to_string(cfg.batch) + ", Adam " + fmt(cfg.lr) +
                  " with decay 0.1^(1/epochs), " + std::to_string(cfg.epochs) + " epochs on " + std::to_string(ctx.train.size()) +
                  " images, seed " + std::to_string(cfg.seed),
              {{"final epoch mean loss", fmt(run.final_epoch_loss)}, {"training time", fmt(run.seconds, 3) + " s"}}});
  report.note({"A 0", "Our stand-in for DeepFloyd IF",
               "The seed's Part A samples DeepFloyd IF with text prompts. Here every deliverable uses the DDPM above: a "
               "diffusion model on the same cosine ᾱ table (T = 1000) as IF, with images in [−1, 1] as IF's, read as a noise "
               "predictor ε̂(x_t, t, c) wherever the seed uses ε̂ (a v-predicting net is converted exactly: ε̂ = √(1 − ᾱ) x_t + "
               "√ᾱ v̂, and CFG in v equals CFG in ε because the conversion is affine with the same x_t). "
               "A prompt is a class one-hot (\"7\"); the all-zero condition (the model's class-dropout mode) is the "
               "unconditional prompt, i.e. the seed's \"a high quality photo\"; the seed's empty-prompt CFG branch is the "
               "same all-zero condition. PNGs show (x + 1)/2."});
  sm::fold_batchnorm(net);  // sampling only from here on (inference.hpp)
  return detail::DDPM{net, cfg.device, cfg.seed, cfg.gamma, name, scoreflow::NoiseSchedule::cosine(), cfg.prediction};
}

/// Seed §0, §1.1 – §1.6.
inline void part_a_sampling(PartAContext& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  report.section_title("A 1.1", "Implementing the forward process");
  report.section_title("A 1.2", "Classical denoising");
  report.section_title("A 1.3", "One-step denoising");
  report.section_title("A 1.4", "Iterative denoising");
  report.section_title("A 1.5", "Diffusion model sampling");
  report.section_title("A 1.6", "Classifier-free guidance");
  const std::string sd = m.seed_text();
  {  // §0: three prompts, 20 and 100 steps
    Progress p("A 0: three prompts at 20 and 100 steps");
    const std::vector<std::int64_t> digits = {3, 7, 8};
    const std::int64_t per = 4;
    const auto labels = torch::tensor(digits).repeat_interleave(per);
    std::vector<T> rows;
    for (int steps : {20, 100}) rows.push_back(m.cond(m.spaced(steps), m.prompt(labels), scoreflow::PureNoise<T>{m.noise_shape(labels.size(0))}));
    const auto all = to_unit(torch::cat(rows).cpu());
    const auto cas20 = scoreflow::classification_accuracy(ctx.classifier, all.slice(0, 0, 12), labels);
    const auto cas100 = scoreflow::classification_accuracy(ctx.classifier, all.slice(0, 12, 24), labels);
    scoreflow::save_grid_png(report.path("a0_prompts.png"), all, digit_grid(12));
    report.add({"A 0", "Prompts \"3\", \"7\", \"8\" with 20 and 100 steps", "a0_prompts.png",
                "four samples per prompt (columns: 3 3 3 3 7 7 7 7 8 8 8 8); row 1: DiffusionGrid::spaced(20), row 2: spaced(100) "
                "(DDPM fixed-small variance, leading spacing, last step to t = −1); CFG γ = " + fmt(m.gamma) + "; " + m.name + "; " + sd,
                {{"evaluator agrees with the prompt, 20 steps", fmt(100 * cas20, 3) + "%"},
                 {"evaluator agrees with the prompt, 100 steps", fmt(100 * cas100, 3) + "%"}}});
    report.timing("A 0 prompts (2 × 12 images, 20 + 100 steps)", p.finish());
  }
  // §1.1 – §1.4 all use one test digit, the seed's "Campanile".
  Progress p("A 1.1 – 1.4: forward process and denoising");
  const auto [x0, x0_index] = test_digit(ctx, 7, m.device);
  const std::string digit_text = "test digit #" + std::to_string(x0_index) + " (a 7)";
  const std::vector<int> levels = {250, 500, 750};
  torch::manual_seed(m.seed);
  const auto eps = torch::randn_like(x0);
  std::vector<T> noisy;
  for (int t : levels) noisy.push_back(scoreflow::diffusion::forward(x0, m.table.alpha_bar(t), eps));
  {
    std::vector<T> row{x0};
    row.insert(row.end(), noisy.begin(), noisy.end());
    scoreflow::save_grid_png(report.path("a11_forward.png"), to_unit(torch::cat(row).cpu()), digit_grid(4));
    report.add({"A 1.1", "Forward process", "a11_forward.png",
                "original " + digit_text + ", then x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε at t = 250, 500, 750 (diffusion::forward, cosine "
                "ᾱ: " + fmt(m.table.alpha_bar(250), 3) + ", " + fmt(m.table.alpha_bar(500), 3) + ", " + fmt(m.table.alpha_bar(750), 3) +
                    "); one ε from torch::manual_seed(" + std::to_string(m.seed) + ")"});
  }
  {  // §1.2: Gaussian blur; the seed's (5, 2) and the best of a small search
    const std::vector<int> ks = {3, 5, 7, 9};
    const std::vector<double> sigmas = {0.5, 1.0, 2.0, 3.0};
    std::vector<T> seed_blur, best_blur;
    std::vector<std::pair<std::string, std::string>> numbers;
    for (std::size_t i = 0; i < levels.size(); ++i) {
      seed_blur.push_back(scoreflow::GaussianBlur(5, 2.0)(noisy[i]));
      double best = 1e9;
      int bk = 0;
      double bs = 0;
      for (int k : ks)
        for (double s : sigmas) {
          const double e = mse01(scoreflow::GaussianBlur(k, s)(noisy[i]), x0);
          if (e < best) best = e, bk = k, bs = s;
        }
      best_blur.push_back(scoreflow::GaussianBlur(bk, bs)(noisy[i]));
      numbers.emplace_back("t = " + std::to_string(levels[i]) + ": MSE noisy / blur(5, 2)",
                           fmt(mse01(noisy[i], x0)) + " / " + fmt(mse01(seed_blur[i], x0)));
      numbers.emplace_back("t = " + std::to_string(levels[i]) + ": best (k, σ), MSE",
                           "(" + std::to_string(bk) + ", " + fmt(bs, 2) + "), " + fmt(best));
    }
    std::vector<T> grid = noisy;
    grid.insert(grid.end(), seed_blur.begin(), seed_blur.end());
    grid.insert(grid.end(), best_blur.begin(), best_blur.end());
    scoreflow::save_grid_png(report.path("a12_blur.png"), to_unit(torch::cat(grid).cpu()), digit_grid(3));
    report.add({"A 1.2", "Gaussian-blur denoising", "a12_blur.png",
                "columns t = 250, 500, 750; rows: noisy, GaussianBlur(5, σ = 2) (the seed's), best blur of kernel ∈ {3, 5, 7, 9} × "
                "σ ∈ {0.5, 1, 2, 3} by MSE to the original (MSE in [0, 1] pixel units); " + digit_text + ", " + sd,
                numbers});
  }
  std::vector<T> one_step;
  {  // §1.3: x̂₀ = (x_t − √(1 − ᾱ) ε̂) / √ᾱ, unconditional ε̂
    std::vector<T> grid;
    std::vector<std::pair<std::string, std::string>> numbers;
    for (std::size_t i = 0; i < levels.size(); ++i) {
      const double ab = m.table.alpha_bar(levels[i]);
      const auto eps_hat = m.noise(noisy[i], levels[i]);
      one_step.push_back(scoreflow::diffusion::sample_from_noise(noisy[i], eps_hat, ab));
      grid.insert(grid.end(), {x0, noisy[i], one_step.back()});
      numbers.emplace_back("t = " + std::to_string(levels[i]) + ": MSE of the estimate", fmt(mse01(one_step.back(), x0)));
    }
    scoreflow::save_grid_png(report.path("a13_one_step.png"), to_unit(torch::cat(grid).cpu()), digit_grid(3));
    report.add({"A 1.3", "One-step denoising", "a13_one_step.png",
                "rows t = 250, 500, 750; columns: original, noisy, x̂₀ = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t "
                "(diffusion::sample_from_noise) with the unconditional ε̂ of " + m.name + "; " + digit_text + ", " + sd,
                numbers});
  }
  {  // §1.4: iterative denoising from i_start = 10 on the strided grid
    const auto sched = m.strided();
    const std::size_t i_start = 10;
    const int t = sched.time(i_start).value;
    const double ab = sched.alpha_bar(i_start);
    const auto xt = scoreflow::diffusion::forward(x0, ab, eps);
    std::vector<T> frames;
    scoreflow::Generator gen(m.seed);
    const auto iterative = scoreflow::Sampler{sched}.sample(m.model, scoreflow::FromState<T>{xt, i_start}, gen,
                                                            scoreflow::RecordEvery<T>{5, &frames});
    const auto eps_hat = m.noise(xt, t);
    const auto single = scoreflow::diffusion::sample_from_noise(xt, eps_hat, ab);
    const auto blurred = scoreflow::GaussianBlur(5, 2.0)(xt);
    scoreflow::save_grid_png(report.path("a14_frames.png"), to_unit(torch::cat(frames).cpu()),
                             digit_grid(static_cast<std::int64_t>(frames.size())));
    scoreflow::save_grid_png(report.path("a14_compare.png"), to_unit(torch::cat({x0, iterative, single, blurred}).cpu()), digit_grid(4));
    report.add({"A 1.4", "Iterative denoising: every 5th step", "a14_frames.png",
                "x_t at t = " + std::to_string(t) + " (grid index 10 of strided(990, 30)), then every 5th DDPM step "
                "(RecordEvery{5}) down to t = 0; FromState start, unconditional, " + m.name + ", " + sd});
    report.add({"A 1.4", "Iterative vs one-step vs Gaussian blur", "a14_compare.png",
                "original; iteratively denoised (" + std::to_string(sched.size() - 1 - i_start) + " steps); one-step estimate at t = " +
                    std::to_string(t) + "; GaussianBlur(5, 2) of x_t. " + sd,
                {{"MSE iterative", fmt(mse01(iterative, x0))}, {"MSE one-step", fmt(mse01(single, x0))},
                 {"MSE blur", fmt(mse01(blurred, x0))}}});
  }
  report.timing("A 1.1 – 1.4 forward process and denoising", p.finish());
  {  // §1.5 and §1.6
    Progress q("A 1.5 – 1.6: sampling from pure noise");
    const auto sched = m.strided();
    const auto uncond = m.uncond(sched, scoreflow::PureNoise<T>{m.noise_shape(5)});
    scoreflow::save_grid_png(report.path("a15_samples.png"), to_unit(uncond.cpu()), digit_grid(5));
    const auto predicted = [&] {
      torch::NoGradGuard g;
      ctx.classifier->eval();
      return ctx.classifier->forward(to_unit(uncond.cpu()).to(ctx.classifier->parameters().front().device())).argmax(1).cpu();
    }();
    std::string classes;
    for (std::int64_t i = 0; i < 5; ++i) classes += (i ? " " : "") + std::to_string(predicted[i].item<std::int64_t>());
    report.add({"A 1.5", "Five unconditional samples", "a15_samples.png",
                "the unconditional prompt (all-zero class = \"a high quality photo\") from pure noise, strided(990, 30) DDPM "
                "(33 steps, no guidance), " + m.name + ", " + sd,
                {{"evaluator reads them as", classes}}});
    // CFG needs a conditional branch different from the unconditional one: one random class per sample.
    torch::manual_seed(m.seed);
    const auto labels = torch::randint(10, {5}, torch::kLong);
    const auto guided = m.cond(sched, m.prompt(labels), scoreflow::PureNoise<T>{m.noise_shape(5)});
    scoreflow::save_grid_png(report.path("a16_cfg_samples.png"), to_unit(guided.cpu()), digit_grid(5));
    std::string asked;
    for (std::int64_t i = 0; i < 5; ++i) asked += (i ? " " : "") + std::to_string(labels[i].item<std::int64_t>());
    report.add({"A 1.6", "Five samples with CFG γ = " + fmt(m.gamma), "a16_cfg_samples.png",
                "ε = ε_u + γ(ε_c − ε_u), one batched call per step. In the seed both prompts are \"a high quality photo\" vs \"\"; "
                "here the unconditional prompt IS the all-zero class, so CFG toward it would be a no-op: the conditional branch "
                "uses one random class per sample (torch::manual_seed(" + std::to_string(m.seed) + "), classes " + asked +
                    "), the unconditional branch the all-zero class. strided(990, 30), " + m.name + ", " + sd,
                {{"classes asked", asked},
                 {"evaluator agrees", fmt(100 * scoreflow::classification_accuracy(ctx.classifier, to_unit(guided.cpu()), labels), 3) + "%"}}});
    report.timing("A 1.5 – 1.6 sampling (5 + 5 images, 33 steps)", q.finish());
  }
}

/// Seed §1.7 – §1.7.3: SDEdit, hand-drawn and web images, inpainting, class-conditional SDEdit.
inline void part_a_editing(PartAContext& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  report.section_title("A 1.7", "Image-to-image translation (SDEdit)");
  report.section_title("A 1.7.1", "Editing hand-drawn and web images");
  report.section_title("A 1.7.2", "Inpainting");
  report.section_title("A 1.7.3", "Class-conditional image-to-image translation");
  const auto sched = m.strided();
  const std::vector<int> starts = {1, 3, 5, 7, 10, 20};
  const std::string sd = m.seed_text();
  auto t_of = [&](int i) { return std::to_string(sched.time(static_cast<std::size_t>(i)).value); };
  std::string t_list;
  for (int i : starts) t_list += (t_list.empty() ? "" : ", ") + t_of(i);
  /// rows: each input, then its SDEdit at every i_start.
  auto sdedit_rows = [&](const T& inputs, const T* onehot) {
    std::vector<T> cols{inputs};
    for (int i : starts) {
      const scoreflow::SDEdit<T> start{inputs, static_cast<std::size_t>(i)};
      cols.push_back(onehot ? m.cond(sched, *onehot, start) : m.uncond(sched, start));
    }
    return torch::stack(cols, 1).reshape({-1, 1, 28, 28});  // input-major
  };
  {  // §1.7
    Progress p("A 1.7: SDEdit");
    const auto a = test_digit(ctx, 7, m.device), b = test_digit(ctx, 2, m.device), c = test_digit(ctx, 4, m.device);
    const auto grid = sdedit_rows(torch::cat({a.first, b.first, c.first}), nullptr);
    scoreflow::save_grid_png(report.path("a17_sdedit.png"), to_unit(grid.cpu()), digit_grid(7));
    report.add({"A 1.7", "SDEdit of three test digits", "a17_sdedit.png",
                "rows: test digits #" + std::to_string(a.second) + " (7), #" + std::to_string(b.second) + " (2), #" +
                    std::to_string(c.second) + " (4); columns: original, then SDEdit<Tensor>{x, i_start} for i_start = " + ints(starts) +
                    " (t = " + t_list + ") on strided(990, 30), unconditional; " + m.name + ", " + sd});
    report.timing("A 1.7 SDEdit (3 digits × 6 starts)", p.finish());
  }
  {  // §1.7.1: drawings and a web-like JPEG, written to disk and loaded back
    Progress p("A 1.7.1: hand-drawn and web images");
    const auto dir = report.path("inputs/x").parent_path();
    Canvas seven(160, 160, 1, 1, 1), zero(160, 160, 1, 1, 1), four(160, 160, 1, 1, 1);
    seven.stroke({{42, 38}, {118, 36}, {96, 80}, {72, 128}}, 7, 0.05f, 0.05f, 0.1f, 2.5);
    zero.ellipse(80, 80, 30, 46, 7, 0.1f, 0.1f, 0.1f, 3.0);
    four.stroke({{92, 28}, {44, 96}, {122, 96}}, 7, 0.1f, 0.1f, 0.3f, 3.5);
    four.stroke({{96, 58}, {98, 134}}, 7, 0.1f, 0.1f, 0.3f, 3.5);
    // "web-like": 240×180, coloured gradient background, a thick dark-red "3", JPEG-compressed.
    Canvas web(240, 180, 0, 0, 0);
    for (int y = 0; y < web.h; ++y)
      for (int x = 0; x < web.w; ++x) {
        float* px = &web.rgb[static_cast<std::size_t>(3 * (y * web.w + x))];
        px[0] = 0.95f - 0.25f * y / web.h, px[1] = 0.85f + 0.1f * x / web.w, px[2] = 0.6f + 0.3f * y / web.h;
      }
    std::vector<std::pair<double, double>> three;
    for (int i = 0; i <= 30; ++i) {  // upper bowl, then lower bowl
      const double a = -M_PI * 0.8 + i * M_PI * 1.3 / 30;
      three.emplace_back(120 + 30 * std::cos(a), 62 + 26 * std::sin(a));
    }
    for (int i = 0; i <= 30; ++i) {
      const double a = -M_PI * 0.5 + i * M_PI * 1.3 / 30;
      three.emplace_back(120 + 34 * std::cos(a), 118 + 28 * std::sin(a));
    }
    web.stroke(three, 9, 0.45f, 0.05f, 0.05f, 1.5);
    std::vector<std::filesystem::path> files = {dir / "hand_7.png", dir / "hand_0.png", dir / "hand_4.png", dir / "web_3.jpg"};
    scoreflow::save_png(files[0], seven.tensor());
    scoreflow::save_png(files[1], zero.tensor());
    scoreflow::save_png(files[2], four.tensor());
    const auto jpg = web.bytes();
    if (!stbi_write_jpg(files[3].c_str(), web.w, web.h, 3, jpg.data(), 80))
      throw std::runtime_error("stbi_write_jpg failed for " + files[3].string());
    std::vector<T> loaded, shown;
    scoreflow::ImageLoadOptions rgb;
    rgb.channels = 3, rgb.height = 120, rgb.width = 120;
    for (const auto& f : files) {
      loaded.push_back(load_as_digit(f, m.device));
      shown.push_back(scoreflow::load_image(f, rgb));
    }
    scoreflow::save_grid_png(report.path("a171_inputs.png"), torch::cat(shown), scoreflow::GridOptions{.nrow = 4});
    report.add({"A 1.7.1", "The inputs as drawn", "a171_inputs.png",
                "drawn by code with a round brush and a hand's wobble: a \"7\", a \"0\", a wobbly \"4\" (160×160 RGB PNGs, "
                "dark on white) and a \"web-like\" 240×180 JPEG (quality 80) with a coloured gradient and a thick dark-red \"3\"; "
                "files in inputs/ (shown here resampled to 120×120)"});
    const auto grid = sdedit_rows(torch::cat(loaded), nullptr);
    scoreflow::save_grid_png(report.path("a171_sdedit.png"), to_unit(grid.cpu()), digit_grid(7));
    report.add({"A 1.7.1", "Projecting the drawings onto the digit manifold", "a171_sdedit.png",
                "first column: each file loaded back with load_image(channels = 1, 28×28: stb's Mitchell filter), inverted "
                "(mean > 0.5: light background) and stretched to [0, 1]; then SDEdit at i_start = " + ints(starts) + " (t = " + t_list +
                    "), unconditional, strided(990, 30); " + m.name + ", " + sd});
    report.timing("A 1.7.1 hand-drawn / web SDEdit (4 images × 6 starts)", p.finish());
  }
  {  // §1.7.2: inpainting, two digits × two masks
    Progress p("A 1.7.2: inpainting");
    const auto a = test_digit(ctx, 9, m.device), b = test_digit(ctx, 5, m.device);
    auto square = torch::zeros({1, 1, 28, 28}, m.device);
    square.slice(2, 9, 19).slice(3, 9, 19).fill_(1.0);
    auto bottom = torch::zeros({1, 1, 28, 28}, m.device);
    bottom.slice(2, 15, 28).fill_(1.0);
    const auto orig = torch::cat({a.first, a.first, b.first, b.first});
    const auto mask = torch::cat({square, bottom, square, bottom});
    scoreflow::Generator gen(m.seed);
    const auto out = scoreflow::Sampler{sched, scoreflow::NoGuidance{}, scoreflow::SinglePrompt<scoreflow::NoCondition>{},
                                        scoreflow::Inpaint<T>{orig, mask}}
                         .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(4)}, gen);
    const double kept_err = ((out - orig) * (1 - mask)).abs().max().item<double>() / 2;
    const auto hole = orig * (1 - mask) + mask * 0.0;  // 0 in model units: mid-gray marks the hole
    const auto grid = torch::cat({orig, to_model(mask), hole, out});
    scoreflow::save_grid_png(report.path("a172_inpaint.png"), to_unit(grid.cpu()), digit_grid(4));
    report.add({"A 1.7.2", "Inpainting two digits with two masks", "a172_inpaint.png",
                "columns: test #" + std::to_string(a.second) + " (9) with a centre square, the same with the bottom half, test #" +
                    std::to_string(b.second) + " (5) with each mask; rows: original, mask m (white = generated), the kept part (gray = "
                    "hole), result. Inpaint<Tensor>{orig, m} as the Sampler's constraint (x ← m x + (1 − m) forward(orig, t) "
                    "after every step), unconditional, strided(990, 30) from pure noise; " + m.name + ", " + sd,
                {{"max |result − original| outside the mask ([0, 1] units)", fmt(kept_err, 3)}}});
    report.timing("A 1.7.2 inpainting (4 images)", p.finish());
  }
  {  // §1.7.3: SDEdit toward a class with CFG
    Progress p("A 1.7.3: class-conditional SDEdit");
    const auto one = test_digit(ctx, 1, m.device), zero = test_digit(ctx, 0, m.device), three = test_digit(ctx, 3, m.device);
    const auto targets = torch::tensor({7, 6, 8}, torch::kLong);
    const auto onehot = m.prompt(targets);
    const auto grid = sdedit_rows(torch::cat({one.first, zero.first, three.first}), &onehot);
    scoreflow::save_grid_png(report.path("a173_text_sdedit.png"), to_unit(grid.cpu()), digit_grid(7));
    report.add({"A 1.7.3", "SDEdit toward a prompt: 1 → \"7\", 0 → \"6\", 3 → \"8\"", "a173_text_sdedit.png",
                "rows: test #" + std::to_string(one.second) + " (1) with prompt \"7\", #" + std::to_string(zero.second) +
                    " (0) with \"6\", #" + std::to_string(three.second) + " (3) with \"8\"; columns: original, then SDEdit at i_start = " +
                    ints(starts) + " (t = " + t_list + ") with CFG γ = " + fmt(m.gamma) + ", strided(990, 30); " + m.name + ", " + sd});
    report.timing("A 1.7.3 class-conditional SDEdit (3 digits × 6 starts)", p.finish());
  }
}

/// Seed §1.8 visual anagrams and §1.9 hybrid images.
inline void part_a_illusions(PartAContext& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  report.section_title("A 1.8", "Visual anagrams");
  report.section_title("A 1.9", "Hybrid images");
  const auto sched = m.strided();
  const std::string sd = m.seed_text();
  const std::int64_t n = 4;
  auto digits = [&](std::int64_t a, std::int64_t b) { return torch::cat({torch::full({n}, a, torch::kLong), torch::full({n}, b, torch::kLong)}); };
  auto agree = [&](const T& images01, const T& labels) { return fmt(100 * scoreflow::classification_accuracy(ctx.classifier, images01, labels), 3) + "%"; };
  {
    Progress p("A 1.8: visual anagrams");
    // Two pairs with the seed's vertical flip, batched (conditions are per sample), and one with a rotation.
    const auto first = digits(6, 2), second = digits(9, 5);
    const auto c1 = m.prompt(first), c2 = m.prompt(second);
    scoreflow::Generator g1(m.seed), g2(m.seed);
    const auto flip = scoreflow::Sampler{sched, m.cfg(c1),
                                         scoreflow::Anagram<T>({{c1, scoreflow::View::identity()}, {c2, scoreflow::View::flip_vertical()}})}
                          .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(2 * n)}, g1);
    const auto flipped = scoreflow::View::flip_vertical().apply(flip);
    const auto r1 = m.prompt(torch::full({n}, 1, torch::kLong)), r2 = m.prompt(torch::full({n}, 7, torch::kLong));
    const auto rot = scoreflow::Sampler{sched, m.cfg(r1),
                                        scoreflow::Anagram<T>({{r1, scoreflow::View::identity()}, {r2, scoreflow::View::rotate90()}})}
                         .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(n)}, g2);
    const auto rotated = scoreflow::View::rotate90().apply(rot);
    const auto u_flip = to_unit(flip.cpu()), u_flipped = to_unit(flipped.cpu());
    scoreflow::save_grid_png(report.path("a18_flip.png"), torch::cat({u_flip, u_flipped}), digit_grid(2 * n));
    report.add({"A 1.8", "Anagrams with the vertical flip: \"6\" / \"9\" and \"2\" / \"5\"", "a18_flip.png",
                "ε = ½(CFG(x, p₁) + flip(CFG(flip(x), p₂))): Anagram<Tensor> with View::identity and View::flip_vertical, CFG γ = " +
                    fmt(m.gamma) + ", strided(990, 30); row 1: the image (columns 1–4 prompt \"6\", 5–8 prompt \"2\"), row 2: the "
                    "same flipped upside down (prompts \"9\", \"5\"); " + m.name + ", " + sd,
                {{"evaluator reads row 1 as p₁", agree(u_flip, first)}, {"evaluator reads row 2 as p₂", agree(u_flipped, second)}}});
    const auto u_rot = to_unit(rot.cpu()), u_rotated = to_unit(rotated.cpu());
    scoreflow::save_grid_png(report.path("a18_rotate.png"), torch::cat({u_rot, u_rotated}), digit_grid(n));
    report.add({"A 1.8", "Anagram with a 90° rotation: \"1\" / \"7\"", "a18_rotate.png",
                "Anagram<Tensor> with View::identity (prompt \"1\") and View::rotate90 (prompt \"7\", counter-clockwise as "
                "torch.rot90); row 1: the image, row 2: rotated 90°; CFG γ = " + fmt(m.gamma) + ", strided(990, 30); " + m.name + ", " + sd,
                {{"evaluator reads row 1 as \"1\"", agree(u_rot, torch::full({n}, 1, torch::kLong))},
                 {"evaluator reads row 2 as \"7\"", agree(u_rotated, torch::full({n}, 7, torch::kLong))}}});
    report.timing("A 1.8 anagrams (12 images)", p.finish());
  }
  {
    Progress p("A 1.9: hybrid images");
    const auto low = digits(0, 8), high = digits(1, 3);
    const auto cl = m.prompt(low), ch = m.prompt(high);
    const scoreflow::GaussianBlur blur(9, 2.0);
    scoreflow::Generator gen(m.seed);
    const auto x = scoreflow::Sampler{sched, m.cfg(cl), scoreflow::Factorized<T>::hybrid(cl, ch, blur)}
                       .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(2 * n)}, gen);
    const auto lowpass = blur(x), highpass = x - lowpass;
    const auto u = to_unit(x.cpu());
    const auto seen_small = scoreflow::upscale_nearest(torch::adaptive_avg_pool2d(u, {7, 7}), 4);
    scoreflow::save_grid_png(report.path("a19_hybrid.png"),
                             torch::cat({u, to_unit(lowpass.cpu()), to_unit((highpass * 2).cpu()), seen_small}), digit_grid(2 * n));
    report.add({"A 1.9", "Hybrids: low \"0\" + high \"1\", low \"8\" + high \"3\"", "a19_hybrid.png",
                "ε = lowpass(CFG(x, p_low)) + highpass(CFG(x, p_high)): Factorized<Tensor>::hybrid(low, high, GaussianBlur(9, 2.0)), "
                "CFG γ = " + fmt(m.gamma) + ", strided(990, 30). Columns 1–4: low \"0\" / high \"1\", 5–8: low \"8\" / high \"3\". "
                "Rows: the image; its low-pass (blur 9, σ 2: what one sees from afar); its high-pass ×2; the image seen small "
                "(7×7 area-downsampled, shown enlarged). The seed's kernel 33 is for IF's 64×64 images: on a 28×28 digit "
                "its reflect padding (16) mirrors over half the image, so we keep σ = 2 and a 9-tap kernel (±2σ). " + m.name + ", " + sd,
                {{"evaluator reads the image as p_high", agree(u, high)}, {"evaluator reads the low-pass as p_low", agree(to_unit(lowpass.cpu()), low)}}});
    report.timing("A 1.9 hybrids (8 images)", p.finish());
  }
}

/// Quality of the model: ≥ 40 samples per class with CFG, exported as IDX, CAS and Fréchet
/// distance; unconditional samples' Fréchet distance; real digits as a reference.
inline void part_a_evaluation(const PartAConfig& cfg, PartAContext& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  report.section_title("A 2", "Evaluation of our DDPM (not in the seed)");
  const auto sched = cfg.eval_steps > 0 ? m.spaced(cfg.eval_steps) : m.strided();
  const std::string grid_text = cfg.eval_steps > 0 ? "spaced(" + std::to_string(cfg.eval_steps) + ")" : "strided(990, 30)";
  const auto labels = digit_labels(cfg.eval_per_class);
  Progress p("A 2: evaluation samples");
  std::vector<T> parts;
  for (std::int64_t done = 0; done < labels.size(0); done += 200) {
    const auto l = labels.slice(0, done, std::min<std::int64_t>(done + 200, labels.size(0)));
    scoreflow::Generator gen(m.seed + 10 + static_cast<std::uint64_t>(done));
    const auto onehot = m.prompt(l);
    parts.push_back(scoreflow::Sampler{sched, m.cfg(onehot), scoreflow::SinglePrompt<T>{onehot}}
                        .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(l.size(0))}, gen).cpu());
  }
  const auto x = to_unit(torch::cat(parts));
  const double secs_cfg = p.seconds();
  scoreflow::Generator gen_u(m.seed + 20);
  const auto xu = to_unit(scoreflow::Sampler{sched}.sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(cfg.eval_uncond)}, gen_u).cpu());
  report.timing("A 2 evaluation samples (" + std::to_string(x.size(0)) + " CFG + " + std::to_string(xu.size(0)) + " unconditional)", p.finish());
  export_idx(report, "ddpm_cfg", x, labels);
  export_idx(report, "ddpm_uncond", xu, torch::full({xu.size(0)}, 255, torch::kLong));
  const auto q = quality(ctx, x, labels);
  const auto qu = quality(ctx, xu, {});
  const auto real = ctx.train.images.slice(0, 0, x.size(0));
  const auto qr = quality(ctx, real, ctx.train.labels.slice(0, 0, x.size(0)));
  const auto show = x.view({10, -1, 1, 28, 28}).slice(1, 0, 4).transpose(0, 1).reshape({-1, 1, 28, 28});
  scoreflow::save_grid_png(report.path("a2_eval_cfg.png"), show, digit_grid(10));
  scoreflow::save_grid_png(report.path("a2_eval_uncond.png"), xu.slice(0, 0, 40), digit_grid(10));
  report.add({"A 2", "Class-conditional samples with CFG γ = " + fmt(m.gamma), "a2_eval_cfg.png",
              std::to_string(x.size(0)) + " samples (" + std::to_string(cfg.eval_per_class) + " per digit; 4 of each shown, columns 0 … 9), " +
                  grid_text + " DDPM, exported as samples/ddpm_cfg-*-idx*-ubyte; " + m.name + ", generator seeds " +
                  std::to_string(m.seed + 10) + " + offset. Fréchet distance to held-out real test digits in the evaluator's features.",
              {{"CAS", fmt(100 * q.cas, 3) + "%"}, {"Fréchet distance", fmt(q.fd)}, {"sampling time", fmt(secs_cfg, 3) + " s"},
               {"reference: real training digits, CAS / FD", fmt(100 * qr.cas, 3) + "% / " + fmt(qr.fd)}}});
  report.add({"A 2", "Unconditional samples", "a2_eval_uncond.png",
              std::to_string(xu.size(0)) + " samples (first 40 shown), all-zero class, no guidance, " + grid_text +
                  ", exported as samples/ddpm_uncond-*; generator seed " + std::to_string(m.seed + 20),
              {{"Fréchet distance", fmt(qu.fd)}, {"reference: real training digits, FD", fmt(qr.fd)}}});
  std::fprintf(stderr, "[scoreflow] A 2: CFG CAS %.2f%% FD %.3f; unconditional FD %.3f; real FD %.3f\n", 100 * q.cas, q.fd, qu.fd, qr.fd);
}

}  // namespace examples

namespace examples {
/// Every Part A deliverable in seed order (the gallery's entry point).
inline void part_a(const PartAConfig& cfg, PartAContext& ctx, Report& report) {
  auto model = part_a_model(cfg, ctx, report);
  part_a_sampling(ctx, model, report);
  part_a_editing(ctx, model, report);
  part_a_illusions(ctx, model, report);
  part_a_evaluation(cfg, ctx, model, report);
}
}  // namespace examples
