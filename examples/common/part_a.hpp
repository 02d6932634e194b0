#pragma once
// Every deliverable of the seed's Part A (§0 – §1.9) on a real denoiser we train ourselves — the
// class-conditioned DDPM of part_a_model.hpp standing in for DeepFloyd IF — and its evaluation
// (A 2, not in the seed). One function per seed section, each sampling through scoreflow::Sampler
// into a Report; the page's text is in part_a_captions.hpp. Shared by part_a.cpp and the gallery.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/captions.hpp"
#include "common/composition.hpp"
#include "common/context.hpp"
#include "common/drawn_inputs.hpp"
#include "common/flow_sampling.hpp"  // digit_labels
#include "common/part_a_captions.hpp"
#include "common/part_a_model.hpp"
#include "common/solver_sweep.hpp"
#include "common/report.hpp"
#include "common/training_run.hpp"
#include "scoreflow/core.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/data/dataset.hpp"
#include "scoreflow/torch/eval/evaluator.hpp"
#include "scoreflow/torch/io/image_io.hpp"

namespace examples {

namespace text_a = part_a_text;

namespace detail {
/// First test image with this label (model units, on the device), and its index.
inline std::pair<T, std::int64_t> test_digit(Context& ctx, std::int64_t label, torch::Device device, std::int64_t skip = 0) {
  const auto idx = (ctx.test.labels == label).nonzero().view(-1);
  const auto i = idx[skip].item<std::int64_t>();
  return {to_model(ctx.test.images.slice(0, i, i + 1)).to(device), i};
}

inline std::string ints(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s;
}
/// The first five labels as "3 1 4 1 5".
inline std::string five_digits(const T& labels) {
  std::string s;
  for (std::int64_t i = 0; i < 5; ++i) s += (i ? " " : "") + std::to_string(labels[i].item<std::int64_t>());
  return s;
}
/// `n` of digit a, then `n` of digit b.
inline T two_digits(std::int64_t a, std::int64_t b, std::int64_t n) {
  return torch::cat({torch::full({n}, a, torch::kLong), torch::full({n}, b, torch::kLong)});
}
/// How often the evaluator reads `images01` as `labels`, as "87.5%".
inline std::string agreement(Context& ctx, const T& images01, const T& labels) {
  return fmt(100 * scoreflow::classification_accuracy(ctx.classifier, images01, labels), 3) + "%";
}

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

/// A Part A figure: ${model}, ${seed} and ${gamma} come from the DDPM, the other blanks from `blanks`.
inline Figure figure_of(const DDPM& m, const FigureText& t, Blanks blanks = {}, Numbers numbers = {}) {
  blanks.insert(blanks.end(), {{"model", m.name}, {"seed", std::to_string(m.seed)}, {"gamma", fmt(m.gamma)}});
  return figure(t, blanks, std::move(numbers));
}
}  // namespace detail

// ---- §0: the model, and sampling it ----

/// Seed §0 setup: train (or reuse) the DDPM that replaces DeepFloyd IF.
inline detail::DDPM part_a_model(const PartAConfig& cfg, Context& ctx, Report& report) {
  torch::manual_seed(cfg.seed);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = cfg.hidden, .norm = cfg.norm});
  // One cache entry per configuration, so quick, full and overridden runs never resume each other.
  const std::string run_id = "a0_ddpm_D" + std::to_string(cfg.hidden) + "_e" + std::to_string(cfg.epochs) + "_b" +
                             std::to_string(cfg.batch) + "_n" + std::to_string(ctx.train.size()) + "_lr" + fmt(cfg.lr) + "_s" +
                             std::to_string(cfg.seed) + "_" + scoreflow::to_string(cfg.prediction) +
                             (cfg.norm.is_group() ? "_gn" + std::to_string(cfg.norm.groups) : "");
  tr::TrainOptions o{.epochs = cfg.epochs, .batch_size = cfg.batch, .lr = cfg.lr, .lr_decay = tr::seed_lr_decay(cfg.epochs),
                     .seed = cfg.seed, .device = cfg.device, .log_every = 10};
  cfg.recipe.apply(o, o.lr_decay);
  // Seed-recipe runs keep their readable cache names; others add the hash of the recipe.
  o.checkpoint_dir = cfg.recipe.is_seed() ? ctx.cache / run_id : run_dir(ctx.cache, run_id, o, run_id, cfg.recipe);
  tr::Trainer trainer(net, tr::DiffusionObjective<tr::ClassDropout>{scoreflow::NoiseSchedule::cosine(), tr::ClassDropout{cfg.p_uncond}, cfg.prediction}, o);
  const auto data = tr::tensor_source(detail::to_model(ctx.train.images), ctx.train.labels);
  auto run = train_cached("a0_ddpm", "class-conditioned DDPM", trainer, data, report, [](const tr::EpochSummary&) {});
  if (trainer.has_ema()) trainer.copy_ema_to(*net);  // sample the average from here on
  const std::string name = "ClassConditionalUNet D = " + std::to_string(cfg.hidden) +
                           (cfg.norm.is_group() ? " with GroupNorm(" + std::to_string(cfg.norm.groups) + ")" : "") + " DDPM";
  const auto recipe = cfg.recipe.text();
  report.add(figure(text_a::model_loss,
                    {{"model", name}, {"prediction", prediction_text(cfg.prediction)}, {"p_uncond", fmt(cfg.p_uncond)},
                     {"batch", std::to_string(cfg.batch)}, {"lr", fmt(cfg.lr)}, {"epochs", std::to_string(cfg.epochs)},
                     {"images", std::to_string(ctx.train.size())}, {"seed", std::to_string(cfg.seed)},
                     {"schedule", cfg.recipe.cosine ? "cosine decay per step" : "decay 0.1^(1/epochs)"},
                     {"recipe", recipe.empty() ? "" : "; " + recipe}},
                    loss_numbers(run)));
  report.note(note(text_a::stand_in));
  sm::fold_batchnorm(net);  // sampling only from here on (inference.hpp)
  return detail::DDPM{net, cfg.device, cfg.seed, cfg.gamma, name, scoreflow::NoiseSchedule::cosine(), cfg.prediction};
}

/// Seed §0: three prompts at two step counts, as the seed tries two num_inference_steps.
inline void part_a_prompts(Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  Progress p("A 0: three prompts at 20 and 100 steps");
  const std::vector<std::int64_t> digits = {3, 7, 8};
  const std::int64_t per = 4;
  const auto labels = torch::tensor(digits).repeat_interleave(per);
  std::vector<T> rows;
  for (int steps : {20, 100}) rows.push_back(m.cond(m.spaced(steps), m.prompt(labels), scoreflow::PureNoise<T>{m.noise_shape(labels.size(0))}));
  const auto all = to_unit(torch::cat(rows).cpu());
  const auto cas20 = scoreflow::classification_accuracy(ctx.classifier, all.slice(0, 0, 12), labels);
  const auto cas100 = scoreflow::classification_accuracy(ctx.classifier, all.slice(0, 12, 24), labels);
  add_grid(report,
           figure_of(m, text_a::prompts, {},
                     {{"evaluator agrees with the prompt, 20 steps", fmt(100 * cas20, 3) + "%"},
                      {"evaluator agrees with the prompt, 100 steps", fmt(100 * cas100, 3) + "%"}}),
           all, digit_grid(12));
  report.timing("A 0 prompts (2 × 12 images, 20 + 100 steps)", p.finish());
}

// ---- §1.1 – §1.4: one test digit, the seed's Campanile ----

/// The digit of §1.1 – §1.4, noised at the seed's levels t = 250, 500, 750 with one ε.
struct NoisedDigit {
  detail::T x0;
  std::string text;  ///< "test digit #0 (a 7)"
  std::vector<int> levels = {250, 500, 750};
  detail::T eps;
  std::vector<detail::T> noisy;
};

/// Seed §1.1: the forward process x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε.
inline NoisedDigit part_a_forward(Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  const auto [x0, index] = test_digit(ctx, 7, m.device);
  NoisedDigit d{x0, fill(text_a::digit, {{"index", std::to_string(index)}})};
  torch::manual_seed(m.seed);
  d.eps = torch::randn_like(d.x0);
  for (int t : d.levels) d.noisy.push_back(scoreflow::diffusion::forward(d.x0, m.table.alpha_bar(t), d.eps));
  std::vector<T> row{d.x0};
  row.insert(row.end(), d.noisy.begin(), d.noisy.end());
  const std::string alpha_bars =
      fmt(m.table.alpha_bar(250), 3) + ", " + fmt(m.table.alpha_bar(500), 3) + ", " + fmt(m.table.alpha_bar(750), 3);
  add_grid(report, figure_of(m, text_a::forward, {{"digit", d.text}, {"alpha_bars", alpha_bars}}), to_unit(torch::cat(row).cpu()),
           digit_grid(4));
  return d;
}

struct BlurChoice {
  int kernel = 0;
  double sigma = 0, mse = 1e9;
};
/// The Gaussian blur of kernel ∈ {3, 5, 7, 9} × σ ∈ {0.5, 1, 2, 3} closest (MSE) to the original.
inline BlurChoice best_blur(const detail::T& noisy, const detail::T& x0) {
  BlurChoice best;
  for (int k : {3, 5, 7, 9})
    for (double s : {0.5, 1.0, 2.0, 3.0}) {
      const double e = detail::mse01(scoreflow::GaussianBlur(k, s)(noisy), x0);
      if (e < best.mse) best = {k, s, e};
    }
  return best;
}

/// Seed §1.2: classical denoising by Gaussian blur — the seed's (5, σ = 2) and the best of a search.
inline void part_a_blur(const NoisedDigit& d, detail::DDPM& m, Report& report) {
  using namespace detail;
  std::vector<T> seed_blur, best_blurs;
  Numbers numbers;
  for (std::size_t i = 0; i < d.levels.size(); ++i) {
    seed_blur.push_back(scoreflow::GaussianBlur(5, 2.0)(d.noisy[i]));
    const auto best = best_blur(d.noisy[i], d.x0);
    best_blurs.push_back(scoreflow::GaussianBlur(best.kernel, best.sigma)(d.noisy[i]));
    const std::string at = "t = " + std::to_string(d.levels[i]);
    numbers.emplace_back(at + ": MSE noisy / blur(5, 2)", fmt(mse01(d.noisy[i], d.x0)) + " / " + fmt(mse01(seed_blur[i], d.x0)));
    numbers.emplace_back(at + ": best (k, σ), MSE", "(" + std::to_string(best.kernel) + ", " + fmt(best.sigma, 2) + "), " + fmt(best.mse));
  }
  std::vector<T> grid = d.noisy;
  grid.insert(grid.end(), seed_blur.begin(), seed_blur.end());
  grid.insert(grid.end(), best_blurs.begin(), best_blurs.end());
  add_grid(report, figure_of(m, text_a::blur, {{"digit", d.text}}, numbers), to_unit(torch::cat(grid).cpu()), digit_grid(3));
}

/// Seed §1.3: one-step denoising x̂₀ = (x_t − √(1 − ᾱ) ε̂) / √ᾱ with the unconditional ε̂.
inline void part_a_one_step(const NoisedDigit& d, detail::DDPM& m, Report& report) {
  using namespace detail;
  std::vector<T> grid;
  Numbers numbers;
  for (std::size_t i = 0; i < d.levels.size(); ++i) {
    const double ab = m.table.alpha_bar(d.levels[i]);
    const auto eps_hat = m.noise(d.noisy[i], d.levels[i]);
    const auto estimate = scoreflow::diffusion::sample_from_noise(d.noisy[i], eps_hat, ab);
    grid.insert(grid.end(), {d.x0, d.noisy[i], estimate});
    numbers.emplace_back("t = " + std::to_string(d.levels[i]) + ": MSE of the estimate", fmt(mse01(estimate, d.x0)));
  }
  add_grid(report, figure_of(m, text_a::one_step, {{"digit", d.text}}, numbers), to_unit(torch::cat(grid).cpu()), digit_grid(3));
}

/// Seed §1.4: iterative denoising from i_start = 10 of the strided grid (990, 960, …, 0), beside
/// one-step denoising and the blur at the same t.
inline void part_a_iterative(const NoisedDigit& d, detail::DDPM& m, Report& report) {
  using namespace detail;
  const auto sched = m.strided();
  const std::size_t i_start = 10;
  const int t = sched.time(i_start).value;
  const double ab = sched.alpha_bar(i_start);
  const auto xt = scoreflow::diffusion::forward(d.x0, ab, d.eps);
  std::vector<T> frames;
  scoreflow::Generator gen(m.seed);
  const auto iterative = scoreflow::Sampler{sched}.sample(m.model, scoreflow::FromState<T>{xt, i_start}, gen,
                                                          scoreflow::RecordEvery<T>{5, &frames});
  const auto single = scoreflow::diffusion::sample_from_noise(xt, m.noise(xt, t), ab);
  const auto blurred = scoreflow::GaussianBlur(5, 2.0)(xt);
  add_grid(report, figure_of(m, text_a::iterative_frames, {{"t", std::to_string(t)}, {"i_start", std::to_string(i_start)}}),
           to_unit(torch::cat(frames).cpu()), digit_grid(static_cast<std::int64_t>(frames.size())));
  add_grid(report,
           figure_of(m, text_a::iterative_compare, {{"t", std::to_string(t)}, {"steps", std::to_string(sched.size() - 1 - i_start)}},
                     {{"MSE iterative", fmt(mse01(iterative, d.x0))}, {"MSE one-step", fmt(mse01(single, d.x0))},
                      {"MSE blur", fmt(mse01(blurred, d.x0))}}),
           to_unit(torch::cat({d.x0, iterative, single, blurred}).cpu()), digit_grid(4));
}

// ---- §1.5 – §1.6: sampling from pure noise ----

/// Seed §1.5: five samples of the unconditional prompt ("a high quality photo").
inline void part_a_unconditional(Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  const auto uncond = m.uncond(m.strided(), scoreflow::PureNoise<T>{m.noise_shape(5)});
  const auto predicted = [&] {
    torch::NoGradGuard g;
    ctx.classifier->eval();
    return ctx.classifier->forward(to_unit(uncond.cpu()).to(ctx.classifier->parameters().front().device())).argmax(1).cpu();
  }();
  add_grid(report, figure_of(m, text_a::unconditional, {}, {{"evaluator reads them as", five_digits(predicted)}}),
           to_unit(uncond.cpu()), digit_grid(5));
}

/// Seed §1.6: five samples with CFG γ; the conditional branch needs a class of its own (caption).
inline void part_a_guided(Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  // CFG needs a conditional branch different from the unconditional one: one random class per sample.
  torch::manual_seed(m.seed);
  const auto labels = torch::randint(10, {5}, torch::kLong);
  const auto guided = to_unit(m.cond(m.strided(), m.prompt(labels), scoreflow::PureNoise<T>{m.noise_shape(5)}).cpu());
  const auto asked = five_digits(labels);
  add_grid(report,
           figure_of(m, text_a::guided, {{"classes", asked}},
                     {{"classes asked", asked}, {"evaluator agrees", agreement(ctx, guided, labels)}}),
           guided, digit_grid(5));
}

/// Seed §0 – §1.6 in order, timed in the stages the gallery reports.
inline void part_a_sampling(Context& ctx, detail::DDPM& m, Report& report) {
  part_a_prompts(ctx, m, report);
  Progress p("A 1.1 – 1.4: forward process and denoising");
  const auto digit = part_a_forward(ctx, m, report);
  part_a_blur(digit, m, report);
  part_a_one_step(digit, m, report);
  part_a_iterative(digit, m, report);
  report.timing("A 1.1 – 1.4 forward process and denoising", p.finish());
  Progress q("A 1.5 – 1.6: sampling from pure noise");
  part_a_unconditional(ctx, m, report);
  part_a_guided(ctx, m, report);
  report.timing("A 1.5 – 1.6 sampling (5 + 5 images, 33 steps)", q.finish());
}

// ---- §1.7 – §1.7.3: image-to-image translation ----

/// SDEdit (seed §1.7) from the start indices i_start = 1, 3, 5, 7, 10, 20 of the strided grid.
struct SDEditSweep {
  detail::DDPM& m;
  detail::Step sched = m.strided();
  std::vector<int> starts = {1, 3, 5, 7, 10, 20};

  /// `blanks` with the captions' ${starts} (the indices) and ${times} (their t).
  [[nodiscard]] Blanks with_starts(Blanks blanks) const {
    std::string times;
    for (int i : starts) times += (times.empty() ? "" : ", ") + std::to_string(sched.time(static_cast<std::size_t>(i)).value);
    blanks.insert(blanks.end(), {{"starts", detail::ints(starts)}, {"times", times}});
    return blanks;
  }
  /// Rows: each input, then its SDEdit from every i_start (with CFG toward `onehot` if given).
  [[nodiscard]] detail::T rows(const detail::T& inputs, const detail::T* onehot) const {
    std::vector<detail::T> cols{inputs};
    for (int i : starts) {
      const scoreflow::SDEdit<detail::T> start{inputs, static_cast<std::size_t>(i)};
      cols.push_back(onehot ? m.cond(sched, *onehot, start) : m.uncond(sched, start));
    }
    return torch::stack(cols, 1).reshape({-1, 1, 28, 28});  // input-major
  }
};

/// Seed §1.7: SDEdit of three test digits, unconditional.
inline void part_a_sdedit(Context& ctx, const SDEditSweep& sweep, Report& report) {
  using namespace detail;
  Progress p("A 1.7: SDEdit");
  const auto device = sweep.m.device;
  const auto a = test_digit(ctx, 7, device), b = test_digit(ctx, 2, device), c = test_digit(ctx, 4, device);
  const auto grid = sweep.rows(torch::cat({a.first, b.first, c.first}), nullptr);
  const auto blanks = sweep.with_starts({{"a", std::to_string(a.second)}, {"b", std::to_string(b.second)}, {"c", std::to_string(c.second)}});
  add_grid(report, figure_of(sweep.m, text_a::sdedit, blanks), to_unit(grid.cpu()), digit_grid(7));
  report.timing("A 1.7 SDEdit (3 digits × 6 starts)", p.finish());
}

/// Seed §1.7.1: drawings and a web-like JPEG, written to inputs/, loaded back as digits and
/// projected onto the digit manifold by SDEdit.
inline void part_a_drawings(const SDEditSweep& sweep, Report& report) {
  using namespace detail;
  Progress p("A 1.7.1: hand-drawn and web images");
  const auto files = write_drawn_inputs(report.path("inputs/x").parent_path());
  std::vector<T> loaded, shown;
  scoreflow::ImageLoadOptions rgb;
  rgb.channels = 3, rgb.height = 120, rgb.width = 120;
  for (const auto& f : files) {
    loaded.push_back(load_as_digit(f, sweep.m.device));
    shown.push_back(scoreflow::load_image(f, rgb));
  }
  add_grid(report, figure(text_a::drawn_inputs), torch::cat(shown), scoreflow::GridOptions{.nrow = 4});
  const auto grid = sweep.rows(torch::cat(loaded), nullptr);
  add_grid(report, figure_of(sweep.m, text_a::drawn_sdedit, sweep.with_starts({})), to_unit(grid.cpu()), digit_grid(7));
  report.timing("A 1.7.1 hand-drawn / web SDEdit (4 images × 6 starts)", p.finish());
}

/// Seed §1.7.2: inpainting (RePaint's x_t ← m x_t + (1 − m) forward(x_orig, t)), two digits × two masks.
inline void part_a_inpainting(Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  Progress p("A 1.7.2: inpainting");
  const auto a = test_digit(ctx, 9, m.device), b = test_digit(ctx, 5, m.device);
  auto square = torch::zeros({1, 1, 28, 28}, m.device);
  square.slice(2, 9, 19).slice(3, 9, 19).fill_(1.0);
  auto bottom = torch::zeros({1, 1, 28, 28}, m.device);
  bottom.slice(2, 15, 28).fill_(1.0);
  const auto orig = torch::cat({a.first, a.first, b.first, b.first});
  const auto mask = torch::cat({square, bottom, square, bottom});
  scoreflow::Generator gen(m.seed);
  const auto out = scoreflow::Sampler{m.strided(), scoreflow::NoGuidance{}, scoreflow::SinglePrompt<scoreflow::NoCondition>{},
                                      scoreflow::Inpaint<T>{orig, mask}}
                       .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(4)}, gen);
  const double kept_err = ((out - orig) * (1 - mask)).abs().max().item<double>() / 2;
  const auto hole = orig * (1 - mask) + mask * 0.0;  // 0 in model units: mid-gray marks the hole
  const auto grid = torch::cat({orig, to_model(mask), hole, out});
  add_grid(report,
           figure_of(m, text_a::inpainting, {{"a", std::to_string(a.second)}, {"b", std::to_string(b.second)}},
                     {{"max |result − original| outside the mask ([0, 1] units)", fmt(kept_err, 3)}}),
           to_unit(grid.cpu()), digit_grid(4));
  report.timing("A 1.7.2 inpainting (4 images)", p.finish());
}

/// Seed §1.7.3: SDEdit guided toward another class (the seed's text prompt) with CFG.
inline void part_a_text_sdedit(Context& ctx, const SDEditSweep& sweep, Report& report) {
  using namespace detail;
  Progress p("A 1.7.3: class-conditional SDEdit");
  const auto device = sweep.m.device;
  const auto one = test_digit(ctx, 1, device), zero = test_digit(ctx, 0, device), three = test_digit(ctx, 3, device);
  const auto onehot = sweep.m.prompt(torch::tensor({7, 6, 8}, torch::kLong));
  const auto grid = sweep.rows(torch::cat({one.first, zero.first, three.first}), &onehot);
  const auto blanks = sweep.with_starts(
      {{"one", std::to_string(one.second)}, {"zero", std::to_string(zero.second)}, {"three", std::to_string(three.second)}});
  add_grid(report, figure_of(sweep.m, text_a::text_sdedit, blanks), to_unit(grid.cpu()), digit_grid(7));
  report.timing("A 1.7.3 class-conditional SDEdit (3 digits × 6 starts)", p.finish());
}

/// Seed §1.7 – §1.7.3 in order.
inline void part_a_editing(Context& ctx, detail::DDPM& m, Report& report) {
  const SDEditSweep sweep{m};
  part_a_sdedit(ctx, sweep, report);
  part_a_drawings(sweep, report);
  part_a_inpainting(ctx, m, report);
  part_a_text_sdedit(ctx, sweep, report);
}

// ---- §1.8 – §1.9: optical illusions ----

/// Seed §1.8 with its vertical flip: two pairs at once, batched (conditions are per sample).
inline void part_a_flip_anagrams(Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  const std::int64_t n = 4;
  const auto first = two_digits(6, 2, n), second = two_digits(9, 5, n);
  const auto c1 = m.prompt(first), c2 = m.prompt(second);
  scoreflow::Generator gen(m.seed);
  const auto flip = scoreflow::Sampler{m.strided(), m.cfg(c1),
                                       scoreflow::Anagram<T>({{c1, scoreflow::View::identity()}, {c2, scoreflow::View::flip_vertical()}})}
                        .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(2 * n)}, gen);
  const auto upright = to_unit(flip.cpu()), flipped = to_unit(scoreflow::View::flip_vertical().apply(flip).cpu());
  add_grid(report,
           figure_of(m, text_a::flip_anagram, {},
                     {{"evaluator reads row 1 as p₁", agreement(ctx, upright, first)},
                      {"evaluator reads row 2 as p₂", agreement(ctx, flipped, second)}}),
           torch::cat({upright, flipped}), digit_grid(2 * n));
}

/// Seed §1.8 with another view: "1" upright, "7" rotated by 90°.
inline void part_a_rotation_anagram(Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  const std::int64_t n = 4;
  const auto r1 = m.prompt(torch::full({n}, 1, torch::kLong)), r2 = m.prompt(torch::full({n}, 7, torch::kLong));
  scoreflow::Generator gen(m.seed);
  const auto rot = scoreflow::Sampler{m.strided(), m.cfg(r1),
                                      scoreflow::Anagram<T>({{r1, scoreflow::View::identity()}, {r2, scoreflow::View::rotate90()}})}
                       .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(n)}, gen);
  const auto upright = to_unit(rot.cpu()), rotated = to_unit(scoreflow::View::rotate90().apply(rot).cpu());
  add_grid(report,
           figure_of(m, text_a::rotation_anagram, {},
                     {{"evaluator reads row 1 as \"1\"", agreement(ctx, upright, torch::full({n}, 1, torch::kLong))},
                      {"evaluator reads row 2 as \"7\"", agreement(ctx, rotated, torch::full({n}, 7, torch::kLong))}}),
           torch::cat({upright, rotated}), digit_grid(n));
}

/// Seed §1.9: hybrid images, low frequencies of one prompt and high of another.
inline void part_a_hybrids(Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  Progress p("A 1.9: hybrid images");
  const std::int64_t n = 4;
  const auto low = two_digits(0, 8, n), high = two_digits(1, 3, n);
  const auto cl = m.prompt(low), ch = m.prompt(high);
  const scoreflow::GaussianBlur blur(9, 2.0);  // not the seed's 33 taps: see the caption
  scoreflow::Generator gen(m.seed);
  const auto x = scoreflow::Sampler{m.strided(), m.cfg(cl), scoreflow::Factorized<T>::hybrid(cl, ch, blur)}
                     .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(2 * n)}, gen);
  const auto lowpass = blur(x), highpass = x - lowpass;
  const auto u = to_unit(x.cpu());
  const auto seen_small = scoreflow::upscale_nearest(torch::adaptive_avg_pool2d(u, {7, 7}), 4);
  add_grid(report,
           figure_of(m, text_a::hybrid, {},
                     {{"evaluator reads the image as p_high", agreement(ctx, u, high)},
                      {"evaluator reads the low-pass as p_low", agreement(ctx, to_unit(lowpass.cpu()), low)}}),
           torch::cat({u, to_unit(lowpass.cpu()), to_unit((highpass * 2).cpu()), seen_small}), digit_grid(2 * n));
  report.timing("A 1.9 hybrids (8 images)", p.finish());
}

/// Seed §1.8 – §1.9 in order.
inline void part_a_illusions(Context& ctx, detail::DDPM& m, Report& report) {
  Progress p("A 1.8: visual anagrams");
  part_a_flip_anagrams(ctx, m, report);
  part_a_rotation_anagram(ctx, m, report);
  report.timing("A 1.8 anagrams (12 images)", p.finish());
  part_a_hybrids(ctx, m, report);
}

// ---- A 2 (not in the seed): the quality of our DDPM ----

/// The evaluator of part_a.cpp (the gallery uses Part B's): trained once on the first
/// classifier_limit training images, then cached.
inline void part_a_evaluator(const PartAConfig& cfg, Context& ctx, const scoreflow::ImageDataset& train, Report& report) {
  Progress p("evaluator classifier (train once, then cached)");
  ctx.classifier = cached_classifier(limited(train, cfg.classifier_limit), ctx.test, ctx.cache, cfg.device, nullptr);
  const double acc = scoreflow::classification_accuracy(ctx.classifier, ctx.test.images, ctx.test.labels);
  report.timing("evaluator classifier (train or load)", p.finish());
  const std::string training = cfg.classifier_limit > 0 ? "the first " + std::to_string(cfg.classifier_limit) + " MNIST training images"
                                                        : std::string("the full MNIST training split");
  report.note(note(text_a::evaluator, {{"training", training}, {"accuracy", fmt(100 * acc, 4)},
                                               {"members", std::to_string(ctx.classifier->member_count())},
                                               {"feature_dims", std::to_string(ctx.classifier->feature_count())}}));
}

/// A 2's samples, in [0, 1] on the CPU: eval_per_class of each digit with CFG, in chunks of 200
/// (chunk k from generator seed + 10 + 200 k), then eval_uncond unconditional ones (seed + 20).
struct EvaluationSamples {
  detail::T labels, guided, unconditional;
  double guided_seconds = 0;
};
inline EvaluationSamples evaluation_samples(const PartAConfig& cfg, detail::DDPM& m, const detail::Step& sched, Report& report) {
  using namespace detail;
  EvaluationSamples s{digit_labels(cfg.eval_per_class)};
  Progress p("A 2: evaluation samples");
  std::vector<T> parts;
  for (std::int64_t done = 0; done < s.labels.size(0); done += 200) {
    const auto l = s.labels.slice(0, done, std::min<std::int64_t>(done + 200, s.labels.size(0)));
    scoreflow::Generator gen(m.seed + 10 + static_cast<std::uint64_t>(done));
    const auto onehot = m.prompt(l);
    parts.push_back(scoreflow::Sampler{sched, m.cfg(onehot), scoreflow::SinglePrompt<T>{onehot}}
                        .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(l.size(0))}, gen).cpu());
  }
  s.guided = to_unit(torch::cat(parts));
  s.guided_seconds = p.seconds();
  scoreflow::Generator gen_u(m.seed + 20);
  s.unconditional = to_unit(scoreflow::Sampler{sched}.sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(cfg.eval_uncond)}, gen_u).cpu());
  report.timing("A 2 evaluation samples (" + std::to_string(s.guided.size(0)) + " CFG + " + std::to_string(s.unconditional.size(0)) +
                    " unconditional)",
                p.finish());
  return s;
}

/// A 2: ≥ 40 samples per class with CFG and unconditional ones, exported as IDX and scored by CAS
/// and Fréchet distance, beside real training digits as a reference.
inline void part_a_evaluation(const PartAConfig& cfg, Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  const auto sched = cfg.eval_steps > 0 ? m.spaced(cfg.eval_steps) : m.strided();
  const std::string grid = cfg.eval_steps > 0 ? "spaced(" + std::to_string(cfg.eval_steps) + ")" : "strided(990, 30)";
  const auto s = evaluation_samples(cfg, m, sched, report);
  const auto& x = s.guided;
  const auto& xu = s.unconditional;
  export_idx(report, "ddpm_cfg", x, s.labels);
  export_idx(report, "ddpm_uncond", xu, torch::full({xu.size(0)}, 255, torch::kLong));
  const auto q = quality(ctx, x, s.labels);
  const auto qu = quality(ctx, xu, {});
  const auto real = scoreflow::class_balanced_indices(ctx.train.labels, x.size(0), m.seed);  // as many of each digit
  const auto qr = quality(ctx, ctx.train.images.index_select(0, real), ctx.train.labels.index_select(0, real));
  auto guided_numbers = quality_numbers(q);
  guided_numbers.emplace_back("sampling time", fmt(s.guided_seconds, 3) + " s");
  guided_numbers.emplace_back("reference: real training digits, CAS", fmt(100 * qr.cas, 3) + "%");
  add_grid(report,
           figure_of(m, text_a::evaluation_guided,
                     {{"samples", std::to_string(x.size(0))}, {"per_class", std::to_string(cfg.eval_per_class)}, {"grid", grid},
                      {"generator_seed", std::to_string(m.seed + 10)}},
                     guided_numbers),
           four_per_digit(x), digit_grid(10));
  add_grid(report,
           figure_of(m, text_a::evaluation_unconditional,
                     {{"samples", std::to_string(xu.size(0))}, {"grid", grid}, {"generator_seed", std::to_string(m.seed + 20)}},
                     quality_numbers(qu)),
           xu.slice(0, 0, 40), digit_grid(10));
  std::fprintf(stderr, "[scoreflow] A 2: CFG CAS %.2f%% FD %.3f (real %.3f); unconditional FD %.3f (real %.3f)\n", 100 * q.cas, q.fd,
               q.fd_real, qu.fd, qu.fd_real);
}

/// CFG samples of `labels` on any schedule, in [0, 1] on the CPU: chunks of 200 from generator
/// seed + 10 + 200 k, as A 2's evaluation; `calls` receives the model calls per sample.
template <class Schedule>
detail::T guided_samples(detail::DDPM& m, const Schedule& sched, const detail::T& labels, std::size_t* calls = nullptr) {
  using namespace detail;
  std::vector<T> parts;
  for (std::int64_t done = 0; done < labels.size(0); done += 200) {
    const auto l = labels.slice(0, done, std::min<std::int64_t>(done + 200, labels.size(0)));
    scoreflow::Generator gen(m.seed + 10 + static_cast<std::uint64_t>(done));
    const auto onehot = m.prompt(l);
    parts.push_back(scoreflow::Sampler{sched, m.cfg(onehot), scoreflow::SinglePrompt<T>{onehot}}
                        .sample(m.model, scoreflow::PureNoise<T>{m.noise_shape(l.size(0))}, gen,
                                [&](const scoreflow::StepInfo<T>& info) {
                                  if (calls) *calls = info.model_calls;
                                })
                        .cpu());
  }
  return to_unit(torch::cat(parts));
}

/// Quality against model calls on the DDPM (issue 14): every solver of the plan at its budgets,
/// against the converged ODE (DDIM with `sweep_reference_steps` steps) and, beside it, the seed's
/// stochastic strided loop (990, 960, …, 0: 33 DDPM steps).
inline void part_a_solver_sweep(const PartAConfig& cfg, Context& ctx, detail::DDPM& m, Report& report) {
  using namespace detail;
  if (cfg.call_sweep.solvers.empty()) return;
  const auto labels = digit_labels(cfg.sweep_per_class > 0 ? cfg.sweep_per_class : cfg.eval_per_class);
  Progress p("sweep reference: DDIM " + std::to_string(cfg.sweep_reference_steps) + " steps");
  const auto xr = guided_samples(m, scoreflow::DiffusionSchedule<scoreflow::DDIMStep>{
                                        m.table, scoreflow::DiffusionGrid::spaced(cfg.sweep_reference_steps)},
                                 labels);
  p.finish();
  const auto qr = quality(ctx, xr, labels);
  std::size_t seed_calls = 0;
  const auto xs = guided_samples(m, m.strided(), labels, &seed_calls);
  const auto qs = quality(ctx, xs, labels);
  const SampleBy sample = [&](const SolverChoice& solver, int steps) {
    SampledRun run;
    run.images = with_diffusion_schedule(solver, m.table, diffusion_grid(cfg.sweep_grid, steps, m.table),
                                         [&](auto schedule) { return guided_samples(m, schedule, labels, &run.calls); });
    return run;
  };
  auto points = run_sweep("ddpm", cfg.call_sweep, sample, ctx, labels, xr, report);
  points.push_back(SweepPoint{"ddpm", 33, seed_calls, qs, 0});
  plot_sweep("class-conditioned DDPM", points, "DDIM " + std::to_string(cfg.sweep_reference_steps) + " steps (converged ODE)",
             qr, std::string(text_a::sweep_fd.image), std::string(text_a::sweep_cas.image),
             std::string(text_a::sweep_rmse.image), report);
  const Blanks blanks{{"reference", "DDIM " + std::to_string(cfg.sweep_reference_steps) + " steps"},
                      {"samples", std::to_string(labels.size(0))},
                      {"grid", cfg.sweep_grid == "linspace" ? "diffusers' 'linspace'" : "'" + cfg.sweep_grid + "'"}};
  report.add(figure_of(m, text_a::sweep_fd, blanks,
                       sweep_numbers(points, qr,
                                     {{"the seed's loop (strided DDPM, " + std::to_string(seed_calls) + " calls) FD / CAS",
                                       fmt(qs.fd) + " / " + fmt(100 * qs.cas, 3) + "%"}})));
  report.add(figure_of(m, text_a::sweep_cas, blanks));
  report.add(figure_of(m, text_a::sweep_rmse, blanks));
}

/// Every Part A deliverable in seed order (part_a.cpp's and the gallery's entry point): one
/// model, trained first, then every section on it.
/// Section C 1 (issue 16) on the DDPM: every view and decomposition on the seed's strided grid.
inline void part_a_composition(const PartAConfig& cfg, Context& ctx, detail::DDPM& m, Report& report) {
  if (cfg.composition_pairs <= 0) return;
  section_titles(report, composition_text::sections);
  ComposedModel<detail::Step, decltype(m.model)> c{"class-conditioned DDPM (A 2)", "ddpm", m.strided(), m.model, m.gamma,
                                                  "DDPM, the seed's 34 strided steps", m.seed, m.device,
                                                  detail::to_unit, detail::to_model};
  composition_views(c, ctx, cfg.composition_pairs, report);
}

inline void part_a(const PartAConfig& cfg, Context& ctx, Report& report) {
  section_titles(report, text_a::sections);
  auto model = part_a_model(cfg, ctx, report);
  part_a_sampling(ctx, model, report);
  part_a_editing(ctx, model, report);
  part_a_illusions(ctx, model, report);
  part_a_composition(cfg, ctx, model, report);
  part_a_evaluation(cfg, ctx, model, report);
  part_a_solver_sweep(cfg, ctx, model, report);
}

}  // namespace examples
