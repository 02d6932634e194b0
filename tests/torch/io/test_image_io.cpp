// Image files: PNG round trips (8 and 16 bit), channel conversion, resampling, grids, and an
// io_error naming the file for every kind of bad input.
#include <torch/types.h>

#include <filesystem>
#include <string>

#include "scoreflow/torch/io/image_io.hpp"
#include "torch/data_helpers.hpp"

namespace test_image_io {

using namespace scoreflow;
using sftest::Bytes;
using sftest::check_io_error;
using sftest::make_png;

namespace {
/// Values k/255 for k = 0, 1, ... in [C,H,W] (exact through 8-bit PNG).
torch::Tensor ramp(std::int64_t c, std::int64_t h, std::int64_t w) {
  return (torch::arange(c * h * w, torch::kFloat32).remainder(256) / 255.0f).view({c, h, w});
}
double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }
}  // namespace

TEST_CASE("image_io: PNG round trip is exact for 8-bit values, 1 to 4 channels") {
  sftest::TempDir dir;
  for (std::int64_t c = 1; c <= 4; ++c) {
    CAPTURE(c);
    const auto image = ramp(c, 5, 7);
    save_png(dir / "x.png", image);
    const auto back = load_image(dir / "x.png");
    CHECK(back.sizes().vec() == std::vector<std::int64_t>{1, c, 5, 7});
    CHECK(sftest::dtype_name(back) == "Float");
    CHECK(torch::equal(back[0], image));
  }
  CHECK_FALSE(std::filesystem::exists(dir / "x.png.tmp"));
  const auto bytes = sftest::read_bytes(dir / "x.png");
  CHECK(Bytes(bytes.begin(), bytes.begin() + 4) == Bytes{0x89, 'P', 'N', 'G'});
  // [1,C,H,W] is accepted too.
  save_png(dir / "b.png", ramp(3, 2, 2).unsqueeze(0));
  CHECK(load_image(dir / "b.png").size(1) == 3);
}

TEST_CASE("image_io: save_png maps [lo, hi] to 0..255 and clips outside") {
  sftest::TempDir dir;
  save_png(dir / "r.png", torch::tensor({-1.0f, 0.0f, 1.0f, -3.0f, 7.0f, 0.5f}).view({1, 2, 3}), -1.0, 1.0);
  const auto back = (load_image(dir / "r.png") * 255.0f).round().flatten();
  // 0 → 127.5 → 128 (round half to even), 0.5 → 191.25 → 191.
  CHECK(torch::equal(back, torch::tensor({0.0f, 128.0f, 255.0f, 0.0f, 255.0f, 191.0f})));
}

TEST_CASE("image_io: 16-bit PNGs load at full precision") {
  sftest::TempDir dir;
  // Gray, 16 bit, 3×1: 0, 65535, 0x8001 (big-endian samples).
  sftest::write_bytes(dir / "g16.png", make_png(3, 1, 16, 0, {0, 0, 0xff, 0xff, 0x80, 0x01}, 6));
  const auto image = load_image(dir / "g16.png");
  CHECK(image.sizes().vec() == std::vector<std::int64_t>{1, 1, 1, 3});
  CHECK(image.flatten()[0].item<float>() == 0.0f);
  CHECK(image.flatten()[1].item<float>() == 1.0f);
  CHECK(image.flatten()[2].item<float>() == doctest::Approx(32769.0 / 65535.0).epsilon(1e-7));
  // 0x8001/65535 is not representable in 8 bits: the 16-bit path was really taken.
  CHECK(image.flatten()[2].item<float>() * 255.0f != doctest::Approx(std::round(image.flatten()[2].item<float>() * 255.0f)));
  // RGBA, 16 bit: converted to RGB over white.
  sftest::write_bytes(dir / "rgba16.png", make_png(1, 1, 16, 6, {0, 0, 0xff, 0xff, 0, 0, 0, 0}, 8));
  const auto rgb = load_image(dir / "rgba16.png", {.channels = 3});
  CHECK(torch::equal(rgb.flatten(), torch::tensor({1.0f, 1.0f, 1.0f})));  // fully transparent → white
}

TEST_CASE("image_io: channel conversion (gray↔RGB, alpha composited onto white or dropped)") {
  sftest::TempDir dir;
  // Gray+alpha pixels: (0, α=0), (0, α=1), (51/255, α=128/255).
  save_png(dir / "ga.png", torch::tensor({0.0f, 0.0f, 0.2f, 0.0f, 1.0f, 128.0f / 255.0f}).view({2, 1, 3}));
  const auto white = load_image(dir / "ga.png", {.channels = 1});
  const float a = 128.0f / 255.0f;
  CHECK(white.flatten()[0].item<float>() == 1.0f);
  CHECK(white.flatten()[1].item<float>() == 0.0f);
  CHECK(white.flatten()[2].item<float>() == doctest::Approx(0.2f * a + (1 - a)).epsilon(1e-6));
  const auto dropped = load_image(dir / "ga.png", {.channels = 1, .alpha = AlphaMode::drop});
  CHECK(dropped.flatten()[0].item<float>() == 0.0f);
  CHECK(dropped.flatten()[2].item<float>() == doctest::Approx(0.2));
  const auto rgb = load_image(dir / "ga.png", {.channels = 3});
  CHECK(rgb.sizes().vec() == std::vector<std::int64_t>{1, 3, 1, 3});
  CHECK(torch::equal(rgb[0][0], rgb[0][2]));
  CHECK(torch::equal(rgb[0][1], white[0][0]));

  // Pure red → BT.601 luma 0.299; gray → RGBA gets an opaque alpha.
  const auto red = torch::tensor({1.0f, 0.0f, 0.0f}).view({3, 1, 1});
  CHECK(convert_channels(red, 1).item<float>() == doctest::Approx(0.299).epsilon(1e-6));
  const auto rgba = convert_channels(torch::full({1, 1, 2, 2}, 0.25f), 4);
  CHECK(rgba.sizes().vec() == std::vector<std::int64_t>{1, 4, 2, 2});
  CHECK(torch::equal(rgba[0][3], torch::ones({2, 2})));
  CHECK(torch::equal(rgba[0][1], torch::full({2, 2}, 0.25f)));
  CHECK(convert_channels(red, 3).data_ptr() == red.data_ptr());  // no-op
  CHECK_THROWS_AS(convert_channels(red, 5), shape_error);
  CHECK_THROWS_AS(convert_channels(torch::zeros({5, 2, 2}), 1), shape_error);
}

TEST_CASE("image_io: resize_image resamples with a real filter") {
  // Box filter at an integer factor: exact 2×2 block means.
  const auto x = torch::arange(16, torch::kFloat32).view({1, 4, 4});
  const auto half = resize_image(x, 2, 2, ResizeFilter::box);
  CHECK(max_diff(half, torch::tensor({2.5f, 4.5f, 10.5f, 12.5f}).view({1, 2, 2})) < 1e-5);
  // Every filter keeps a constant image constant, up- or downsampling, and keeps rank/batch.
  for (auto f : {ResizeFilter::automatic, ResizeFilter::box, ResizeFilter::triangle, ResizeFilter::cubic_bspline,
                 ResizeFilter::catmull_rom, ResizeFilter::mitchell}) {
    const auto c = torch::full({2, 3, 6, 10}, 0.375f);
    CHECK(max_diff(resize_image(c, 15, 4, f), torch::full({2, 3, 15, 4}, 0.375f)) < 1e-6);
  }
  // Antialiased downsampling: a 1-pixel checkerboard averages to 0.5 instead of aliasing.
  const auto checker = (torch::arange(8).view({8, 1}) + torch::arange(8).view({1, 8})).remainder(2).to(torch::kFloat32);
  CHECK(max_diff(resize_image(checker.view({1, 8, 8}), 2, 2, ResizeFilter::box), torch::full({1, 2, 2}, 0.5f)) < 1e-5);
  // (Mitchell, the default for shrinking, has small negative lobes: close to 0.5, not exact.)
  CHECK(max_diff(resize_image(checker.view({1, 8, 8}), 2, 2), torch::full({1, 2, 2}, 0.5f)) < 0.05);
  // Bilinear (triangle) upsampling of a ramp stays monotone and within its range.
  const auto up = resize_image(torch::tensor({0.0f, 1.0f}).view({1, 1, 2}), 1, 8, ResizeFilter::triangle).flatten();
  CHECK(up[0].item<float>() == 0.0f);
  CHECK(up[7].item<float>() == 1.0f);
  CHECK((up.diff() >= 0).all().item<bool>());
  CHECK_THROWS_AS(resize_image(x, 0, 2), invalid_option);
}

TEST_CASE("image_io: load_image resizes and keeps values in [0, 1]") {
  sftest::TempDir dir;
  // A hard edge: Catmull-Rom overshoots it, load_image clips the overshoot.
  auto edge = torch::zeros({1, 8, 8});
  edge.narrow(2, 4, 4).fill_(1.0f);
  save_png(dir / "edge.png", edge);
  const auto raw = resize_image(edge, 16, 16, ResizeFilter::catmull_rom);
  CHECK((raw.min().item<float>() < 0.0f || raw.max().item<float>() > 1.0f));
  const auto loaded = load_image(dir / "edge.png", {.height = 16, .width = 16, .filter = ResizeFilter::catmull_rom});
  CHECK(loaded.sizes().vec() == std::vector<std::int64_t>{1, 1, 16, 16});
  CHECK(loaded.min().item<float>() == 0.0f);
  CHECK(loaded.max().item<float>() == 1.0f);
  CHECK(max_diff(loaded[0], raw.clamp(0, 1)) < 1e-6);
  CHECK_THROWS_AS(load_image(dir / "edge.png", {.height = 16}), invalid_option);
  CHECK_THROWS_AS(load_image(dir / "edge.png", {.channels = 5}), invalid_option);
}

TEST_CASE("image_io: upscale_nearest, make_grid (torchvision layout), save_grid_png") {
  const auto up = upscale_nearest(torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 1, 2, 2}), 2);
  CHECK(torch::equal(up[0][0], torch::tensor({1.0f, 1.0f, 2.0f, 2.0f, 1.0f, 1.0f, 2.0f, 2.0f, 3.0f, 3.0f, 4.0f, 4.0f, 3.0f, 3.0f, 4.0f, 4.0f}).view({4, 4})));
  CHECK_THROWS_AS(upscale_nearest(up, 0), invalid_option);

  // 5 constant 2×3 images (values 1..5), 3 per row, padding 1, pad value -1.
  const auto images = (torch::arange(1, 6, torch::kFloat32).view({5, 1, 1, 1}) * torch::ones({5, 1, 2, 3}));
  const auto grid = make_grid(images, 3, 1, -1.0);
  CHECK(grid.sizes().vec() == std::vector<std::int64_t>{1, 2 * 3 + 1, 3 * 4 + 1});
  const auto at = [&](int y, int x) { return grid[0][y][x].item<float>(); };
  CHECK(at(0, 0) == -1.0f);
  CHECK(at(1, 1) == 1.0f);
  CHECK(at(2, 3) == 1.0f);
  CHECK(at(1, 4) == -1.0f);  // gap between columns
  CHECK(at(1, 5) == 2.0f);
  CHECK(at(1, 9) == 3.0f);
  CHECK(at(3, 1) == -1.0f);  // gap between rows
  CHECK(at(4, 1) == 4.0f);
  CHECK(at(5, 7) == 5.0f);
  CHECK(at(4, 9) == -1.0f);  // the empty sixth slot
  CHECK(make_grid(images, 10, 0).sizes().vec() == std::vector<std::int64_t>{1, 2, 15});
  CHECK_THROWS_AS(make_grid(images[0], 2), shape_error);
  CHECK_THROWS_AS(make_grid(images, 0), invalid_option);

  sftest::TempDir dir;
  save_grid_png(dir / "g.png", torch::tensor({-1.0f, 1.0f}).view({2, 1, 1, 1}),
                {.nrow = 2, .padding = 1, .upscale = 3, .lo = -1.0, .hi = 1.0});
  const auto png = load_image(dir / "g.png");
  CHECK(png.sizes().vec() == std::vector<std::int64_t>{1, 1, 5, 9});
  CHECK(png[0][0].narrow(0, 1, 3).narrow(1, 5, 3).min().item<float>() == 1.0f);  // second image, white
  CHECK(png.sum().item<float>() == 9.0f);                                       // the rest black (lo)
}

TEST_CASE("image_io: bad files are refused with an io_error naming the file") {
  sftest::TempDir dir;
  save_png(dir / "ok.png", ramp(3, 16, 16));
  const auto good = sftest::read_bytes(dir / "ok.png");

  check_io_error([&] { load_image(dir / "missing.png"); }, dir / "missing.png", "no such file");
  sftest::write_bytes(dir / "empty.png", {});
  check_io_error([&] { load_image(dir / "empty.png"); }, dir / "empty.png", "empty file");
  sftest::write_bytes(dir / "text.png", Bytes{'h', 'e', 'l', 'l', 'o', '\n'});
  check_io_error([&] { load_image(dir / "text.png"); }, dir / "text.png", "not a readable image");
  sftest::write_bytes(dir / "cut.png", Bytes(good.begin(), good.begin() + static_cast<long>(good.size() / 2)));
  check_io_error([&] { load_image(dir / "cut.png"); }, dir / "cut.png", "corrupt or truncated");
  sftest::write_bytes(dir / "zero.png", make_png(0, 0, 8, 0, {}, 0));
  check_io_error([&] { load_image(dir / "zero.png"); }, dir / "zero.png", "0-pixel");
  // A header claiming 100000×100000 is refused from the header alone.
  sftest::write_bytes(dir / "huge.png", make_png(100000, 100000, 8, 0, {0}, 1));
  check_io_error([&] { load_image(dir / "huge.png"); }, dir / "huge.png", "100000×100000: image too large");
  check_io_error([&] { load_image(dir / "ok.png", {.max_pixels = 255}); }, dir / "ok.png",
                 "16×16 = 256 pixels, more than the limit of 255");
  check_io_error([&] { load_image(dir / "ok.png", {.max_file_bytes = 10}); }, dir / "ok.png",
                 "more than the limit of 10");

  // JPEG: a complete one loads (lossy, so only approximately); a cut one is refused.
  Bytes jpg;
  const auto hwc = (ramp(3, 16, 16) * 255).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
  REQUIRE(stbi_write_jpg_to_func([](void* ctx, void* data, int size) {
            auto* out = static_cast<Bytes*>(ctx);
            out->insert(out->end(), static_cast<unsigned char*>(data), static_cast<unsigned char*>(data) + size);
          }, &jpg, 16, 16, 3, hwc.data_ptr<std::uint8_t>(), 95));
  sftest::write_bytes(dir / "ok.jpg", jpg);
  CHECK(max_diff(load_image(dir / "ok.jpg")[0], ramp(3, 16, 16)) < 0.1);
  sftest::write_bytes(dir / "cut.jpg", Bytes(jpg.begin(), jpg.begin() + static_cast<long>(jpg.size() / 2)));
  check_io_error([&] { load_image(dir / "cut.jpg"); }, dir / "cut.jpg", "corrupt or truncated image data");
}

TEST_CASE("image_io: save_png refuses bad tensors and never leaves a partial file") {
  sftest::TempDir dir;
  CHECK_THROWS_AS(save_png(dir / "n.png", torch::full({1, 2, 2}, NAN)), non_finite_error);
  CHECK_THROWS_AS(save_png(dir / "n.png", torch::zeros({1, 2, 2}), 1.0, 1.0), invalid_option);
  CHECK_THROWS_AS(save_png(dir / "n.png", torch::zeros({5, 2, 2})), shape_error);
  CHECK_THROWS_AS(save_png(dir / "n.png", torch::zeros({2, 1, 2, 2})), shape_error);
  CHECK_THROWS_AS(save_png(dir / "n.png", torch::zeros({2, 2})), shape_error);
  CHECK_FALSE(std::filesystem::exists(dir / "n.png"));
  std::filesystem::create_directories(dir / "busy.png" / "sub");
  check_io_error([&] { save_png(dir / "busy.png", torch::zeros({1, 2, 2})); }, dir / "busy.png", "cannot rename");
  CHECK_FALSE(std::filesystem::exists(dir / "busy.png.tmp"));
}
}  // namespace test_image_io
