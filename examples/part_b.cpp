// Seed Part B end to end: the one-step denoiser (§1), time- and class-conditioned flow matching
// (§2), every deliverable as PNG figures with a report page. Defaults are the seed's (--full);
// --quick trains small models for a CPU.
//
//   part_b --data data --out part_b_out [--quick] [--device cpu|cuda] [--seed 42]
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "common/part_b.hpp"
#include "common/program.hpp"

int main(int argc, char** argv) {
  CLI::App app{"scoreflow: the seed's Part B (UNet denoiser, flow matching) in C++"};
  examples::CommonOptions o{.out = "part_b_out"};
  bool quick = false;
  app.add_option("--data", o.data, "folder with mnist/ (examples/prepare_data.sh writes it)");
  app.add_option("--out", o.out, "output folder (figures, report.json, index.html)");
  app.add_flag("--quick", quick, "small models and short runs for a CPU");
  examples::add_device_and_seed(app, o);
  return examples::run_program("part_b", app, argc, argv, [&] {
    auto cfg = quick ? examples::PartBConfig::quick() : examples::PartBConfig::full();
    cfg.seed = o.seed;
    cfg.device = examples::device(o);
    examples::Report report(o.out);  // before the data, as this program always has
    const auto in = examples::load_inputs(scoreflow::mnist_paths(o.data));
    auto ctx = examples::make_context(in, cfg.train_limit, o.out);
    ctx.classifier = examples::cached_classifier(in.train, ctx.test, ctx.cache, cfg.device, &report);
    examples::part_b(cfg, ctx, report);
    examples::write_pages(report, "scoreflow — Part B", "The seed's Part B in C++ with scoreflow.");
    std::printf("Part B done: open %s\n", (std::filesystem::path(o.out) / "index.html").c_str());
    return 0;
  });
}
