// Loss-curve plotting through gnuplot: the PNG is produced (when gnuplot is installed), and
// missing programs, missing logs and gnuplot failures are reported without touching the output.
#include <cmath>
#include <filesystem>

#include "scoreflow/torch/io/image_io.hpp"
#include "scoreflow/torch/io/plot.hpp"
#include "torch/data_helpers.hpp"

namespace test_plot {

using namespace scoreflow;
using sftest::check_io_error;

namespace {
void write_log(const std::filesystem::path& path, int n, double sign = 1.0) {
  LossLog log(path, LossLog::Mode::truncate);
  for (int i = 0; i < n; ++i)
    log.write(i * 10, i / 50, sign * (1.0 / (1.0 + 0.05 * i) + 0.05 * std::sin(i * 1.7)), 1e-3);
}
}  // namespace

TEST_CASE("plot: helpers quote for gnuplot and find programs on PATH") {
  CHECK(scoreflow::detail::gnuplot_quote("it's a_b\nc") == "'it''s a_b c'");
  CHECK_FALSE(find_executable("sh").empty());
  CHECK(find_executable("sh").is_absolute());
  CHECK(find_executable("scoreflow-no-such-program").empty());
  CHECK(find_executable("/no/such/dir/gnuplot").empty());
  CHECK(find_executable("").empty());
}

TEST_CASE("plot: missing gnuplot or missing/empty logs are clear io_errors") {
  sftest::TempDir dir;
  write_log(dir / "loss.csv", 10);
  check_io_error([&] { plot_loss_curve(dir / "loss.csv", dir / "a.png", {.gnuplot = "scoreflow-no-such-gnuplot"}); },
                 dir / "a.png", "gnuplot executable 'scoreflow-no-such-gnuplot' not found");
  CHECK_FALSE(std::filesystem::exists(dir / "a.png"));
  if (!gnuplot_available()) {
    MESSAGE("gnuplot not installed; the remaining plot checks are skipped");
    return;
  }
  check_io_error([&] { plot_loss_curve(dir / "none.csv", dir / "a.png"); }, dir / "none.csv", "no such file");
  write_log(dir / "empty.csv", 0);
  check_io_error([&] { plot_loss_curve(dir / "empty.csv", dir / "a.png"); }, dir / "empty.csv", "no loss records");
  CHECK_THROWS_AS(plot_loss_curve(dir / "loss.csv", dir / "a.png", {.width = 0}), invalid_option);
  CHECK_THROWS_AS(plot_loss_curve(dir / "loss.csv", dir / "a.png", {.ema = 1.0}), invalid_option);
}

TEST_CASE("plot: a loss log becomes a PNG of the requested size") {
  if (!gnuplot_available()) {
    MESSAGE("gnuplot not installed; skipped");
    return;
  }
  sftest::TempDir dir;
  write_log(dir / "run's log.csv", 300);  // a quote in the path must survive the script
  const auto png = dir / "curve.png";
  plot_loss_curve(dir / "run's log.csv", png, {.title = "loss of 'run_1'", .width = 640, .height = 400});
  REQUIRE(std::filesystem::exists(png));
  CHECK_FALSE(std::filesystem::exists(dir / "curve.png.tmp"));
  const auto image = load_image(png, {.channels = 3});
  CHECK(image.sizes().vec() == std::vector<std::int64_t>{1, 3, 400, 640});
  CHECK(image.std().item<float>() > 0.05f);  // something was drawn
  // Without the smoothed curve and in linear scale too.
  plot_loss_curve(dir / "run's log.csv", dir / "lin.png", {.log_y = false, .ema = 0.0});
  CHECK(load_image(dir / "lin.png").size(3) == 900);

  // gnuplot fails (negative losses on a log scale): io_error with gnuplot's message, and the
  // earlier PNG at that path is left as it was.
  write_log(dir / "neg.csv", 20, -1.0);
  const auto before = sftest::read_bytes(png);
  check_io_error([&] { plot_loss_curve(dir / "neg.csv", png); }, png, "gnuplot (");
  CHECK(sftest::read_bytes(png) == before);
  CHECK_FALSE(std::filesystem::exists(dir / "curve.png.tmp"));
}
}  // namespace test_plot
