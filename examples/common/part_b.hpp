#pragma once
// Every deliverable of the seed's Part B (one-step denoiser, time- and class-conditioned flow
// matching), written into a Report. Shared by examples/part_b.cpp and the gallery.
#include <cmath>
#include <filesystem>
#include <vector>

#include "common/context.hpp"
#include "common/flow_sampling.hpp"
#include "common/report.hpp"
#include "common/training_run.hpp"
#include "scoreflow/core.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/data/idx.hpp"
#include "scoreflow/torch/eval/evaluator.hpp"
#include "scoreflow/torch/io/image_io.hpp"

namespace examples {

namespace sm = scoreflow::models;

struct PartBConfig {
  torch::Device device = torch::kCPU;
  std::uint64_t seed = 42;
  std::int64_t train_limit = 0;  ///< use only the first N training images (0: all)
  // §1.2 one-step denoiser
  std::int64_t denoiser_hidden = 128, denoiser_epochs = 5, denoiser_batch = 256;
  std::int64_t denoiser_train_limit = 0;    ///< train the two denoisers on the first N images (0: all)
  double denoiser_lr = 1e-4;
  // §2 flow matching
  std::int64_t flow_hidden = 64, flow_epochs = 10, flow_batch = 64;
  std::int64_t class_flow_batch = 0;        ///< batch of the main class-conditioned model (0: flow_batch)
  double flow_lr = 1e-2;
  std::int64_t variant_hidden = 64;         ///< D of the time-only model and the §2.6 scheduler comparison
  std::int64_t time_flow_epochs = 10;       ///< epochs of the time-only model
  std::int64_t comparison_epochs = 10;      ///< epochs of each §2.6 comparison model
  std::int64_t comparison_per_class = 40;   ///< samples per digit to score each §2.6 comparison model
  bool naive_no_scheduler = true;           ///< §2.6: also train without scheduler and without compensation
  std::vector<std::int64_t> snapshot_epochs = {1, 5, 10};  ///< sample grids after these epochs (and the last)
  FlowSampling sampling{};                  ///< snapshots and exported samples
  std::int64_t eval_per_class = 40;         ///< samples per digit for CAS / Fréchet distance
  double no_scheduler_lr = 1e-3;            ///< §2.6 question: the compensation we measure
  std::int64_t sweep_per_class = 0;          ///< samples per digit for each sweep point (0: eval_per_class)
  /// Quality against model calls: the seed's 300 Euler steps and cheaper solvers on the same noise.
  std::vector<std::pair<Solver, int>> solver_sweep = {{Solver::euler, 300}, {Solver::euler, 100}, {Solver::euler, 30},
                                                      {Solver::midpoint, 10}, {Solver::midpoint, 15}, {Solver::midpoint, 30},
                                                      {Solver::heun, 10}, {Solver::heun, 15}, {Solver::heun, 30}};

  /// The epochs after which a model trained for `epochs` is sampled: snapshot_epochs up to
  /// `epochs`, and always the last one.
  [[nodiscard]] std::vector<std::int64_t> snapshots(std::int64_t epochs) const {
    std::vector<std::int64_t> out;
    for (auto e : snapshot_epochs)
      if (e < epochs) out.push_back(e);
    out.push_back(epochs);
    return out;
  }

  static PartBConfig full() { return {}; }
  /// Small models and short runs for a 2-core CPU (the gallery's --quick).
  static PartBConfig quick() {
    PartBConfig c;
    c.train_limit = 6000;
    c.denoiser_hidden = 16, c.denoiser_epochs = 2, c.denoiser_batch = 64, c.denoiser_train_limit = 3000;
    c.denoiser_lr = 1e-3;  // 94 steps instead of the seed's 1,170: a larger step compensates
    // Within the 10-minute budget (measured cold, unloaded: 776 s with 4 / 3 / 2 epochs and a
    // 2-point sweep of 400 samples each). The main model: batch 32 for 3 epochs (563 steps) gave
    // CAS 93.5%, FD 152 in 171 s; batch 64 for 3 epochs CAS 83%, for 4 epochs 95% in 196 s.
    c.flow_hidden = 32, c.flow_epochs = 3, c.flow_batch = 64, c.class_flow_batch = 32;
    c.variant_hidden = 16, c.naive_no_scheduler = false;
    c.time_flow_epochs = 2, c.comparison_epochs = 1, c.comparison_per_class = 20;
    c.snapshot_epochs = {1};
    // Heun with 10 steps (20 model calls) matched 20 steps on this model (CAS 96.5% both, FD 165 vs 168).
    c.sampling = FlowSampling{10, Solver::heun, 5.0};
    c.eval_per_class = 40;
    c.no_scheduler_lr = 3e-3;
    c.solver_sweep = {{Solver::euler, 20}};  // the same 20 calls as the main Heun 10
    c.sweep_per_class = 20;
    return c;
  }
};

/// Everything Part B needs from outside: data and the evaluator.
struct PartBContext {
  scoreflow::ImageDataset train, test;
  scoreflow::DigitClassifier classifier;
  std::filesystem::path cache;
};

namespace detail {
inline std::string epochs_label(std::int64_t e) { return "after epoch " + std::to_string(e); }

inline scoreflow::GridOptions digit_grid(std::int64_t nrow) {
  scoreflow::GridOptions g;
  g.nrow = nrow;
  g.upscale = 3;
  return g;
}

/// Writes samples and their intended labels (255: none) as IDX (uint8, 28×28).
inline void export_idx(Report& report, const std::string& name, const torch::Tensor& images, const torch::Tensor& labels) {
  const auto bytes = (images.clamp(0, 1) * 255).round().to(torch::kUInt8).reshape({images.size(0), 28, 28});
  scoreflow::write_idx(report.path("samples/" + name + "-images-idx3-ubyte"), bytes);
  scoreflow::write_idx(report.path("samples/" + name + "-labels-idx1-ubyte"), labels.to(torch::kUInt8));
}

struct Quality {
  double cas = NAN, fd = NAN;
};
inline Quality quality(PartBContext& ctx, const torch::Tensor& images, const torch::Tensor& labels) {
  Quality q;
  if (labels.defined()) q.cas = scoreflow::classification_accuracy(ctx.classifier, images, labels);
  const auto n = std::min<std::int64_t>(ctx.test.size(), std::max<std::int64_t>(images.size(0), 500));
  q.fd = scoreflow::classifier_frechet_distance(ctx.classifier, ctx.test.images.slice(0, 0, n), images);
  return q;
}
}  // namespace detail

/// Seed Part B §1: the one-step denoiser and its pure-noise variant.
inline void part_b_denoiser(const PartBConfig& cfg, PartBContext& ctx, Report& report) {
  report.section_title("B 1.2", "Using the UNet to train a denoiser");
  report.section_title("B 1.2.1", "Training (σ = 0.5)");
  report.section_title("B 1.2.2", "Out-of-distribution testing");
  report.section_title("B 1.2.3", "Denoising pure noise");
  const std::vector<double> sigmas = {0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0};
  const auto digits = ctx.test.images.slice(0, 0, 5);
  torch::manual_seed(cfg.seed);
  {  // §1.2: z = x + σε for each σ; rows = digits, columns = σ
    std::vector<torch::Tensor> cols;
    for (double s : sigmas) cols.push_back(digits + s * torch::randn_like(digits));
    const auto grid = torch::stack(cols, 1).reshape({-1, 1, 28, 28});
    scoreflow::save_grid_png(report.path("b12_noising.png"), grid, detail::digit_grid(7));
    report.add({"B 1.2", "Noising process", "b12_noising.png",
                "z = x + σε for σ = 0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0 (columns), five test digits (rows); seed " +
                    std::to_string(cfg.seed)});
  }
  for (const bool pure : {false, true}) {
    const std::string name = pure ? "b123_pure_noise" : "b121_denoiser";
    const std::string section = pure ? "B 1.2.3" : "B 1.2.1";
    torch::manual_seed(cfg.seed);
    sm::UnconditionalUNet net(sm::UNetOptions{.hidden = cfg.denoiser_hidden});
    tr::TrainOptions o{.epochs = cfg.denoiser_epochs, .batch_size = cfg.denoiser_batch, .lr = cfg.denoiser_lr,
                       .seed = cfg.seed, .device = cfg.device, .log_every = 5};
    const auto train = limited(ctx.train, cfg.denoiser_train_limit);
    const auto n_train = train.size();
    o.checkpoint_dir = run_dir(ctx.cache, name, o, "unet D" + std::to_string(cfg.denoiser_hidden) + " n" + std::to_string(n_train));
    tr::Trainer trainer(net, pure ? tr::Denoising::pure_noise() : tr::Denoising(0.5), o);
    torch::manual_seed(cfg.seed + 1);
    const auto test_x = ctx.test.images.slice(0, 0, 8);
    const auto test_z = pure ? torch::randn_like(test_x) : test_x + 0.5 * torch::randn_like(test_x);
    auto snapshot = [&](std::int64_t epoch) {
      torch::NoGradGuard g;
      net->eval();
      const auto out = net->forward(test_z.to(cfg.device)).cpu();
      net->train();
      const auto grid = pure ? out : torch::cat({test_x, test_z, out});
      scoreflow::save_grid_png(report.path(name + "_epoch" + std::to_string(epoch) + ".png"), grid.clamp(0, 1), detail::digit_grid(8));
    };
    const auto data = tr::tensor_source(train.images, train.labels);
    auto run = train_cached(name, pure ? "pure-noise denoiser" : "one-step denoiser (σ = 0.5)", trainer, data, report,
                            [&](const tr::EpochSummary& s) {
                              if (s.epoch == 1 || s.epoch == cfg.denoiser_epochs) snapshot(s.epoch);
                            });
    const std::string what = "UnconditionalUNet D = " + std::to_string(cfg.denoiser_hidden) + ", batch " +
                             std::to_string(cfg.denoiser_batch) + ", Adam " + fmt(cfg.denoiser_lr) + ", " +
                             std::to_string(cfg.denoiser_epochs) + " epochs on " + std::to_string(n_train) +
                             " images, seed " + std::to_string(cfg.seed);
    report.add({section, pure ? "Training loss (pure noise input)" : "Training loss", name + "_loss.png", what,
                {{"final epoch mean loss", fmt(run.final_epoch_loss)}, {"training time", fmt(run.seconds, 3) + " s"}}});
    for (std::int64_t e : {std::int64_t{1}, cfg.denoiser_epochs})
      report.add({section, (pure ? "Outputs from pure noise " : "Test digits: clean / noisy / denoised, ") + detail::epochs_label(e),
                  name + "_epoch" + std::to_string(e) + ".png",
                  pure ? "D(ε) for eight draws ε ~ N(0, I)" : "rows: x, z = x + 0.5ε, D(z)"});
    torch::NoGradGuard g;
    net->eval();
    if (!pure) {  // §1.2.2: same digits, σ outside training
      std::vector<torch::Tensor> rows;
      std::vector<std::pair<std::string, std::string>> mses;
      torch::manual_seed(cfg.seed + 2);
      const auto eps = torch::randn_like(test_x);
      for (double s : sigmas) {
        const auto z = test_x + s * eps;
        const auto out = net->forward(z.to(cfg.device)).cpu();
        rows.push_back(torch::cat({z, out}));
        mses.emplace_back("MSE at σ = " + fmt(s, 2), fmt((out - test_x).pow(2).mean().item<double>()));
      }
      scoreflow::save_grid_png(report.path("b122_ood.png"), torch::cat(rows).clamp(0, 1), detail::digit_grid(8));
      report.add({"B 1.2.2", "Denoising at σ it was not trained for", "b122_ood.png",
                  "pairs of rows per σ ∈ {0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0}: z, then D(z); same eight test digits", mses});
    } else {  // §1.2.3 question, answered by measurement
      const auto out = net->forward(torch::randn({256, 1, 28, 28}).to(cfg.device)).cpu();
      const auto mean_image = ctx.train.images.mean(0, true);
      const double to_mean = (out - mean_image).pow(2).mean().item<double>();
      const double spread = (out - out.mean(0, true)).pow(2).mean().item<double>();
      const double digit_to_mean = (ctx.test.images.slice(0, 0, 256) - mean_image).pow(2).mean().item<double>();
      scoreflow::save_grid_png(report.path("b123_mean_image.png"), torch::cat({mean_image, out.slice(0, 0, 7)}), detail::digit_grid(8));
      report.add({"B 1.2.3", "The training-set mean image beside outputs from pure noise", "b123_mean_image.png",
                  "first image: the mean of all training digits; then D(ε) for seven ε",
                  {{"MSE(output, mean image)", fmt(to_mean)},
                   {"variance across outputs", fmt(spread)},
                   {"MSE(real digit, mean image)", fmt(digit_to_mean)}}});
      report.note({"B 1.2.3", "What denoising pure noise produces, and why",
                   "With z = ε independent of x, the L2-optimal D(z) is E[x | z] = E[x]: the average training digit, "
                   "whatever the noise. Measured: the outputs are " + fmt(to_mean / digit_to_mean * 100, 3) +
                       "% as far (MSE) from the mean image as real digits are, and vary across inputs by only " +
                       fmt(spread) + " per pixel. They are a blurry superposition of all digits, not a digit: one-step "
                       "denoising of pure noise cannot generate, which is why Part B §2 denoises iteratively."});
    }
  }
}

/// Seed Part B §2: time- and class-conditioned flow matching, sampled through scoreflow::Sampler.
inline void part_b_flow(const PartBConfig& cfg, PartBContext& ctx, Report& report) {
  report.section_title("B 2.2", "Training the time-conditioned UNet");
  report.section_title("B 2.3", "Sampling from the time-conditioned UNet");
  report.section_title("B 2.5", "Training the class-conditioned UNet");
  report.section_title("B 2.6", "Sampling with classifier-free guidance");
  report.section_title("B 2.7", "Solvers and policies on the class-conditioned flow model");
  const auto data = tr::tensor_source(ctx.train.images, ctx.train.labels);
  const std::string sampling_text = std::to_string(cfg.sampling.steps) + " " + name(cfg.sampling.solver) + " steps";
  auto is_snapshot = [&](std::int64_t e, std::int64_t epochs) {
    const auto s = cfg.snapshots(epochs);
    return std::find(s.begin(), s.end(), e) != s.end();
  };
  auto train_text = [&](std::int64_t epochs, std::int64_t batch) {
    return "batch " + std::to_string(batch) + ", Adam " + fmt(cfg.flow_lr) + ", " + std::to_string(epochs) + " epochs on " +
           std::to_string(ctx.train.size()) + " images, seed " + std::to_string(cfg.seed);
  };

  // ---- §2.2–2.3 time-conditioned ----
  {
    torch::manual_seed(cfg.seed);
    sm::TimeConditionalUNet net(sm::UNetOptions{.hidden = cfg.variant_hidden});
    const auto epochs = cfg.time_flow_epochs;
    tr::TrainOptions o{.epochs = epochs, .batch_size = cfg.flow_batch, .lr = cfg.flow_lr,
                       .lr_decay = tr::seed_lr_decay(epochs), .seed = cfg.seed, .device = cfg.device,
                       .log_every = 10};
    o.checkpoint_dir = run_dir(ctx.cache, "b22_time_flow", o, "time D" + std::to_string(cfg.variant_hidden) + " n" + std::to_string(ctx.train.size()));
    tr::Trainer trainer(net, tr::FlowMatching<>{}, o);
    auto run = train_cached("b22_time_flow", "time-conditioned flow", trainer, data, report, [&](const tr::EpochSummary& s) {
      if (!is_snapshot(s.epoch, epochs)) return;
      scoreflow::Generator gen(cfg.seed);
      const auto x = sample_time_flow(net, 40, cfg.sampling, gen, cfg.device);
      scoreflow::save_grid_png(report.path("b23_time_epoch" + std::to_string(s.epoch) + ".png"), x.clamp(0, 1), detail::digit_grid(10));
    });
    report.add({"B 2.2", "Training loss, time-conditioned UNet", "b22_time_flow_loss.png",
                "TimeConditionalUNet, D = " + std::to_string(cfg.variant_hidden) + ", " + train_text(epochs, cfg.flow_batch) + ", exponential LR decay γ = 0.1^(1/epochs)",
                {{"final epoch mean loss", fmt(run.final_epoch_loss)}, {"training time", fmt(run.seconds, 3) + " s"}}});
    for (auto e : cfg.snapshots(epochs))
      report.add({"B 2.3", "Samples " + detail::epochs_label(e), "b23_time_epoch" + std::to_string(e) + ".png",
                  "40 samples, " + sampling_text + " from t = 0 (noise) to 1, generator seed " + std::to_string(cfg.seed)});
    sm::fold_batchnorm(net);  // trained: sampling only from here on (inference.hpp)
    scoreflow::Generator gen(cfg.seed + 10);
    Progress p("sampling the time-conditioned model for evaluation");
    const auto x = sample_time_flow(net, 10 * cfg.eval_per_class, cfg.sampling, gen, cfg.device);
    report.timing("sample flow_time (" + std::to_string(x.size(0)) + " images)", p.finish());
    detail::export_idx(report, "flow_time", x, torch::full({x.size(0)}, 255, torch::kLong));
    const auto q = detail::quality(ctx, x, {});
    report.add({"B 2.3", "Evaluation of the final time-conditioned model", "b23_time_epoch" + std::to_string(epochs) + ".png",
                std::to_string(x.size(0)) + " samples exported as samples/flow_time-*-idx*-ubyte", {{"Fréchet distance (classifier features)", fmt(q.fd)}}});
  }

  // ---- §2.4–2.6 class-conditioned, with and without the scheduler ----
  struct Variant {
    std::string name, title;
    bool scheduled;
    double lr;
    std::int64_t hidden, epochs, batch;
  };
  // The main model first; then the §2.6 comparison at variant_hidden × comparison_epochs (the
  // main model serves as the scheduled baseline when size and length agree).
  const auto class_batch = cfg.class_flow_batch > 0 ? cfg.class_flow_batch : cfg.flow_batch;
  std::vector<Variant> variants = {
      {"b25_class_flow", "class-conditioned flow", true, cfg.flow_lr, cfg.flow_hidden, cfg.flow_epochs, class_batch}};
  const bool main_is_baseline =
      cfg.variant_hidden == cfg.flow_hidden && cfg.comparison_epochs == cfg.flow_epochs && class_batch == cfg.flow_batch;
  if (!main_is_baseline)
    variants.push_back({"b26_scheduled", "class flow D=" + std::to_string(cfg.variant_hidden) + ", with scheduler", true, cfg.flow_lr,
                        cfg.variant_hidden, cfg.comparison_epochs, cfg.flow_batch});
  if (cfg.naive_no_scheduler)
    variants.push_back({"b26_no_scheduler_naive", "class flow, no scheduler, same lr", false, cfg.flow_lr, cfg.variant_hidden,
                        cfg.comparison_epochs, cfg.flow_batch});
  variants.push_back({"b26_no_scheduler", "class flow, no scheduler, compensated lr", false, cfg.no_scheduler_lr,
                      cfg.variant_hidden, cfg.comparison_epochs, cfg.flow_batch});
  std::vector<std::pair<std::string, std::string>> comparison;
  sm::ClassConditionalUNet main_net(nullptr);
  for (const auto& v : variants) {
    const bool is_main = &v == &variants.front();
    torch::manual_seed(cfg.seed);
    sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = v.hidden});
    const std::optional<double> decay = v.scheduled ? std::optional<double>(tr::seed_lr_decay(v.epochs)) : std::nullopt;
    tr::TrainOptions o{.epochs = v.epochs, .batch_size = v.batch, .lr = v.lr, .lr_decay = decay,
                       .seed = cfg.seed, .device = cfg.device, .log_every = 10};
    o.checkpoint_dir = run_dir(ctx.cache, v.name, o, "class D" + std::to_string(v.hidden) + " n" + std::to_string(ctx.train.size()));
    tr::Trainer trainer(net, tr::FlowMatching<tr::ClassDropout>{tr::ClassDropout{0.1}}, o);
    const auto grid_labels = digit_labels(4);
    auto run = train_cached(v.name, v.title, trainer, data, report, [&](const tr::EpochSummary& s) {
      if (!is_snapshot(s.epoch, v.epochs)) return;
      scoreflow::Generator gen(cfg.seed);
      const auto x = sample_class_flow(net, grid_labels, cfg.sampling, gen, cfg.device);
      // 4 of each digit: one column per digit
      const auto by_column = x.view({10, 4, 1, 28, 28}).transpose(0, 1).reshape({40, 1, 28, 28});
      scoreflow::save_grid_png(report.path(v.name + "_epoch" + std::to_string(s.epoch) + ".png"), by_column.clamp(0, 1), detail::digit_grid(10));
    });
    const std::string lr_text = v.scheduled ? "exponential LR decay γ = 0.1^(1/epochs)" : "constant lr " + fmt(v.lr);
    const std::string section = is_main ? "B 2.5" : "B 2.6";
    report.add({section, "Training loss, " + v.title, v.name + "_loss.png",
                "ClassConditionalUNet D = " + std::to_string(v.hidden) + ", p_uncond = 0.1, " + train_text(v.epochs, v.batch) + ", " + lr_text,
                {{"final epoch mean loss", fmt(run.final_epoch_loss)}, {"training time", fmt(run.seconds, 3) + " s"}}});
    for (auto e : cfg.snapshots(v.epochs))
      report.add({"B 2.6", v.title + ": 4 samples of each digit " + detail::epochs_label(e), v.name + "_epoch" + std::to_string(e) + ".png",
                  "columns 0 … 9, CFG γ = " + fmt(cfg.sampling.gamma) + ", " + sampling_text + ", generator seed " + std::to_string(cfg.seed)});
    sm::fold_batchnorm(net);  // trained: sampling only from here on (inference.hpp)
    scoreflow::Generator gen(cfg.seed + 10);
    const auto labels = digit_labels(is_main ? cfg.eval_per_class : cfg.comparison_per_class);
    Progress p("sampling " + v.title + " for evaluation");
    const auto x = sample_class_flow(net, labels, cfg.sampling, gen, cfg.device);
    report.timing("sample " + v.name + " (" + std::to_string(x.size(0)) + " images)", p.finish());
    const auto q = detail::quality(ctx, x, labels);
    if (!is_main || main_is_baseline)
      comparison.emplace_back(v.title, "loss " + fmt(run.final_epoch_loss) + ", CAS " + fmt(100 * q.cas, 3) + "%, FD " + fmt(q.fd) +
                                          " (" + std::to_string(x.size(0)) + " samples)");
    if (is_main) {
      detail::export_idx(report, "flow_class_cfg", x, labels);
      report.add({"B 2.6", "Evaluation of the final class-conditioned model (CFG γ = " + fmt(cfg.sampling.gamma) + ")",
                  v.name + "_epoch" + std::to_string(v.epochs) + ".png",
                  std::to_string(x.size(0)) + " samples (" + std::to_string(cfg.eval_per_class) +
                      " per digit) exported as samples/flow_class_cfg-*-idx*-ubyte",
                  {{"CAS", fmt(100 * q.cas, 3) + "%"}, {"Fréchet distance", fmt(q.fd)}}});
      main_net = net;
    }
  }
  report.note({"B 2.6", "Can we get rid of the learning-rate scheduler?",
               "The scheduler lowers the learning rate tenfold over the run, so late updates are small enough to settle "
               "into a minimum. Without it, we compensate by training at a constant learning rate of " + fmt(cfg.no_scheduler_lr) +
                   " (between the scheduler's start and end values) for the same number of epochs. Measured, same seed, data, D = " +
                   std::to_string(cfg.variant_hidden) + " and " + std::to_string(cfg.comparison_epochs) + " epochs: " + [&] {
                     std::string t;
                     for (const auto& [title, result] : comparison) t += title + ": " + result + "; ";
                     return t;
                   }()});

  // ---- solvers: quality against model calls on the same model ----
  const auto labels = digit_labels(cfg.sweep_per_class > 0 ? cfg.sweep_per_class : cfg.eval_per_class);
  for (const auto& [solver, steps] : cfg.solver_sweep) {
    FlowSampling s = cfg.sampling;
    s.solver = solver, s.steps = steps;
    scoreflow::Generator gen(cfg.seed + 10);
    Progress p(std::string("sampling with ") + name(solver) + " " + std::to_string(steps) + " steps");
    const auto x = sample_class_flow(main_net, labels, s, gen, cfg.device);
    const double secs = p.finish();
    const auto q = detail::quality(ctx, x, labels);
    const std::string file = std::string("b27_") + name(solver) + "_" + std::to_string(steps) + ".png";
    scoreflow::save_grid_png(report.path(file), x.view({10, -1, 1, 28, 28}).slice(1, 0, 4).transpose(0, 1).reshape({-1, 1, 28, 28}).clamp(0, 1),
                             detail::digit_grid(10));
    report.add({"B 2.7", std::string(name(solver)) + ", " + std::to_string(steps) + " steps", file,
                std::to_string(steps * calls_per_step(solver)) + " model calls per sample (a batched CFG call counts once), γ = " +
                    fmt(cfg.sampling.gamma),
                {{"CAS", fmt(100 * q.cas, 3) + "%"}, {"Fréchet distance", fmt(q.fd)}, {"time", fmt(secs, 3) + " s"}}});
  }

  // ---- the core's policies on this model: anagram, hybrid, inpainting ----
  {
    auto model = sm::flow_velocity(main_net);
    const auto onehot = [&](std::int64_t d, std::int64_t n) { return sm::one_hot(torch::full({n}, d, torch::kLong), sm::num_classes(main_net)).to(cfg.device); };
    const std::int64_t n = 8;
    const auto null = torch::zeros({n, 10}, cfg.device);
    const auto proto = torch::zeros({n, 1, 28, 28}, cfg.device);
    std::vector<torch::Tensor> rows;
    with_solver(cfg.sampling.solver, cfg.sampling.steps, [&](auto schedule) {
      using C = torch::Tensor;
      scoreflow::ClassifierFree<C> cfg_guidance{cfg.sampling.gamma, null};
      scoreflow::Generator g1(cfg.seed), g2(cfg.seed), g3(cfg.seed);
      // 6 upright is 9 rotated by 180°
      const auto anagram = scoreflow::Sampler{schedule, cfg_guidance,
                                              scoreflow::Anagram<C>({{onehot(6, n), scoreflow::View::identity()},
                                                                     {onehot(9, n), scoreflow::View::rotate180()}})}
                               .sample(model, scoreflow::PureNoise<C>{proto}, g1).cpu();
      rows.push_back(anagram);
      rows.push_back(torch::rot90(anagram, 2, {2, 3}));
      const auto hybrid = scoreflow::Sampler{schedule, cfg_guidance,
                                             scoreflow::Factorized<C>::hybrid(onehot(0, n), onehot(1, n), scoreflow::GaussianBlur(7, 2.0))}
                              .sample(model, scoreflow::PureNoise<C>{proto}, g2).cpu();
      rows.push_back(hybrid);
      // keep the left half of test digits, generate the right half as the same class
      const auto orig = ctx.test.images.slice(0, 0, n).to(cfg.device);
      auto mask = torch::zeros_like(orig);
      mask.slice(3, 14, 28).fill_(1.0);
      const auto inpainted = scoreflow::Sampler{schedule, cfg_guidance, scoreflow::SinglePrompt<C>{sm::one_hot(ctx.test.labels.slice(0, 0, n), sm::num_classes(main_net)).to(cfg.device)},
                                                scoreflow::Inpaint<C>{orig, mask}}
                                 .sample(model, scoreflow::PureNoise<C>{proto}, g3).cpu();
      rows.push_back(orig.cpu() * (1 - mask.cpu()));
      rows.push_back(inpainted);
      return 0;
    });
    scoreflow::save_grid_png(report.path("b27_policies.png"), torch::cat(rows).clamp(0, 1), detail::digit_grid(n));
    report.add({"B 2.7", "Anagram, hybrid and inpainting with the class-conditioned flow model", "b27_policies.png",
                "rows: anagram '6' upright / '9' rotated 180° (Anagram, View::rotate180), the same rotated; hybrid low-pass '0' + "
                "high-pass '1' (Factorized, blur 7, σ 2); kept left halves of test digits; inpainted right halves (Inpaint, "
                "class of the digit). CFG γ = " + fmt(cfg.sampling.gamma) + ", " + sampling_text + ". The same policies as Part A, "
                "on a velocity model: they are model-agnostic."});
  }
}

}  // namespace examples
