// The main job: every deliverable of the seed (Part A on our own diffusion model, Part B) as one
// HTML gallery, with the raw samples of each generative model as IDX files.
//
//   gallery [--quick | --full | --tiny] [--out gallery] [--data data] [--dataset mnist|fashion]
//
// --quick (default) fits a 2-core CPU; --full uses the seed's configurations (GPU or a long CPU
// run); --tiny is a smoke test for CI. Trained models are cached under <out>/cache; an
// interrupted run picks up where it stopped.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/captions.hpp"
#include "common/machine.hpp"
#include "common/part_a.hpp"
#include "common/part_b.hpp"
#include "common/program.hpp"

namespace {
constexpr std::string_view kTitle = "scoreflow gallery — the seed, reproduced (${mode})";
constexpr std::string_view kIntro =
    "Every deliverable of the seed's Part A (on a diffusion model trained here: MNIST digits play the prompts, the "
    "unconditional mode plays \"a high quality photo\") and Part B, produced by the scoreflow examples through one "
    "templated sampler. Seed ${seed}, dataset ${dataset}, device ${device}. Raw samples: samples/*-idx*-ubyte. "
    "This machine's bench_conv_peak, measured by this run (BM_ConvPeak/N:64/C:64/HW:28, ${threads} threads): "
    "${conv_peak} GFLOP/s; scale every timing on the page by it.";

struct GalleryOptions {
  examples::CommonOptions common{.out = "gallery"};
  std::string dataset = "mnist", sweep, sweep_solvers, sweep_calls;
  bool quick = false, full = false, tiny = false;
  std::int64_t sweep_per_class = 0;
};

void add_options(CLI::App& app, GalleryOptions& o) {
  app.add_flag("--quick", o.quick, "small models for a 2-core CPU, about 10 minutes (default)");
  app.add_flag("--full", o.full, "the seed's configurations");
  app.add_flag("--tiny", o.tiny, "a smoke test for CI (minutes, meaningless quality)");
  app.add_option("--out", o.common.out, "output folder");
  app.add_option("--data", o.common.data, "folder with mnist/ and fashion-mnist/ (examples/prepare_data.sh)");
  app.add_option("--dataset", o.dataset, "mnist or fashion")->check(CLI::IsMember({"mnist", "fashion"}));
  examples::add_device_and_seed(app, o.common);
  app.add_option("--solver-sweep", o.sweep,
                 "Part B §2.7 quality against model calls on the class flow model, e.g. euler:300,heun:10,midpoint:15 "
                 "(default: the mode's own list)");
  app.add_option("--sweep-solvers", o.sweep_solvers,
                 "solvers of the quality-against-calls sweep on both models, by name (sample --list), e.g. "
                 "dpmpp_2m,unipc_bh2; 'all': every solver of each model's family; 'none' to skip it (default: the mode's "
                 "own list)");
  app.add_option("--sweep-calls", o.sweep_calls, "model-call budgets of that sweep, e.g. 4,6,8,10");
  app.add_option("--sweep-per-class", o.sweep_per_class, "samples per digit for each sweep point (default: as the evaluation)")
      ->check(CLI::Range(1, 1000));
}

examples::PartBConfig tiny_part_b() {
  auto c = examples::PartBConfig::quick();
  c.train_limit = 512;
  c.denoiser_hidden = 8, c.denoiser_epochs = 1, c.denoiser_batch = 64;
  c.flow_hidden = 8, c.flow_epochs = 1, c.time_flow_epochs = 1, c.comparison_epochs = 1, c.class_flow_batch = 64;
  c.groupnorm_groups = 8;  // off in quick, but CI's smoke test keeps B 2.8's code path covered
  c.snapshot_epochs = {1};
  c.class_recipe.warmup_steps = c.groupnorm_recipe.warmup_steps = 2;  // the tiny run has 8 steps
  c.sampling.steps = 4;
  c.eval_per_class = 4, c.comparison_per_class = 4, c.sweep_per_class = 4;
  c.solver_sweep = {{{"euler"}, 4}, {{"heun"}, 2}};
  c.call_sweep = {{"dpmpp_2m", "unipc_bh2"}, {3}};
  c.sweep_reference_steps = 6;
  c.composition_pairs = 4, c.guidance_per_class = 2, c.guidance_gammas = {1.0, 3.0};
  return c;
}

/// --sweep-solvers / --sweep-calls over a mode's plan; the solvers must suit the model family.
examples::SweepPlan sweep_plan(const GalleryOptions& o, examples::SweepPlan plan, examples::Families family) {
  if (o.sweep_solvers == "none") return {};
  if (o.sweep_solvers == "all") {
    plan.solvers.clear();
    for (const auto& s : examples::solver_table())
      if ((s.families & family) && std::string(s.name) != "ddpm") plan.solvers.push_back(s.name);
    if (plan.budgets.empty()) plan.budgets = {4, 6, 8, 10};
  } else if (!o.sweep_solvers.empty()) {
    plan.solvers.clear();
    for (const auto& n : examples::parse_names(o.sweep_solvers))
      if (examples::solver_info(n).families & family) plan.solvers.push_back(n);
  }
  if (!o.sweep_calls.empty()) {
    plan.budgets.clear();
    for (const auto& c : examples::parse_integers(o.sweep_calls, "sweep-calls")) plan.budgets.push_back(c);
  }
  return plan;
}

examples::PartBConfig part_b_config(const GalleryOptions& o, torch::Device device) {
  auto b = o.full ? examples::PartBConfig::full() : o.tiny ? tiny_part_b() : examples::PartBConfig::quick();
  b.seed = o.common.seed, b.device = device;
  if (!o.sweep.empty()) b.solver_sweep = examples::parse_solver_list(o.sweep);
  if (o.sweep_per_class > 0) b.sweep_per_class = o.sweep_per_class;
  b.call_sweep = sweep_plan(o, b.call_sweep, examples::flow_family);
  return b;
}

int run(const GalleryOptions& o) {
  if (o.quick + o.full + o.tiny > 1) {
    std::fprintf(stderr, "gallery: choose one of --quick, --full, --tiny\n");
    return 2;
  }
  const std::string mode = o.full ? "full" : o.tiny ? "tiny" : "quick";
  const auto device = examples::device(o.common);
  const auto b = part_b_config(o, device);
  auto a = o.full ? examples::PartAConfig::full() : o.tiny ? examples::PartAConfig::tiny() : examples::PartAConfig::quick();
  a.seed = o.common.seed, a.device = device;
  if (o.tiny) a.call_sweep = {{"dpmpp_2m", "unipc_bh2"}, {3}}, a.sweep_reference_steps = 6;
  a.call_sweep = sweep_plan(o, a.call_sweep, examples::diffusion_family);
  if (o.sweep_per_class > 0) a.sweep_per_class = o.sweep_per_class;

  // Inputs first: bad data fails with one line, before anything is printed or written.
  const auto in = examples::load_inputs(o.dataset == "mnist" ? scoreflow::mnist_paths(o.common.data)
                                                             : scoreflow::fashion_mnist_paths(o.common.data));
  auto ctx = examples::make_context(in, b.train_limit, o.common.out);
  const double conv_peak = examples::conv_peak_gflops();
  std::fprintf(stderr, "[scoreflow] bench_conv_peak: %.0f GFLOP/s (%d threads)\n", conv_peak, torch::get_num_threads());
  examples::Progress total("gallery (" + mode + ")");
  examples::Report report(o.common.out);
  ctx.classifier =
      examples::cached_classifier(examples::limited(in.train, o.tiny ? 2000 : 0), ctx.test, ctx.cache, device, &report, o.dataset,
                                  o.tiny ? 3 : 0);

  examples::Progress pb("Part B");
  examples::part_b(b, ctx, report);
  report.timing("Part B total", pb.finish());

  examples::Progress pa("Part A");
  auto actx = examples::make_context(in, a.train_limit, o.common.out);
  actx.classifier = ctx.classifier;
  examples::part_a(a, actx, report);
  report.timing("Part A total", pa.finish());

  report.timing("gallery total (" + mode + ")", total.seconds());
  const examples::Blanks page = {{"mode", mode}, {"seed", std::to_string(o.common.seed)}, {"dataset", o.dataset}, {"device", device.str()},
                                {"conv_peak", examples::fmt(conv_peak, 3)}, {"threads", std::to_string(torch::get_num_threads())}};
  examples::write_pages(report, examples::fill(kTitle, page), examples::fill(kIntro, page));
  total.finish();
  std::printf("gallery written: open %s\n", std::filesystem::absolute(std::filesystem::path(o.common.out) / "index.html").c_str());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  return examples::options_program<GalleryOptions>(
      "gallery", "scoreflow gallery: the whole seed (Part A and Part B) as one HTML page", argc, argv, run);
}
