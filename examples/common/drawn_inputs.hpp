#pragma once
// The "hand-drawn and web images" of the seed's Part A §1.7.1, drawn by code so the run needs no
// files from outside: three brush-stroke digits (PNG) and a "web-like" JPEG, written to disk and
// loaded back as MNIST-like digits the way a user's own pictures would be.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <utility>
#include <vector>

#include "scoreflow/torch.hpp"
#include "scoreflow/torch/io/image_io.hpp"

namespace examples::detail {

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
  [[nodiscard]] torch::Tensor tensor() const {  // 1×3×h×w
    return torch::from_blob(const_cast<float*>(rgb.data()), {h, w, 3}, torch::kFloat32).permute({2, 0, 1}).unsqueeze(0).clone();
  }
  [[nodiscard]] std::vector<unsigned char> bytes() const {
    std::vector<unsigned char> out(rgb.size());
    for (std::size_t i = 0; i < rgb.size(); ++i) out[i] = static_cast<unsigned char>(std::lround(std::clamp(rgb[i], 0.0f, 1.0f) * 255));
    return out;
  }
};

/// A "web-like" 240×180 picture: a coloured gradient background and a thick dark-red "3".
inline Canvas web_three() {
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
  return web;
}

/// Draws a "7", a "0" and a wobbly "4" (160×160 PNGs, dark on white) and the web-like "3" (JPEG,
/// quality 80) into `dir`; returns the four files in that order.
inline std::vector<std::filesystem::path> write_drawn_inputs(const std::filesystem::path& dir) {
  Canvas seven(160, 160, 1, 1, 1), zero(160, 160, 1, 1, 1), four(160, 160, 1, 1, 1);
  seven.stroke({{42, 38}, {118, 36}, {96, 80}, {72, 128}}, 7, 0.05f, 0.05f, 0.1f, 2.5);
  zero.ellipse(80, 80, 30, 46, 7, 0.1f, 0.1f, 0.1f, 3.0);
  four.stroke({{92, 28}, {44, 96}, {122, 96}}, 7, 0.1f, 0.1f, 0.3f, 3.5);
  four.stroke({{96, 58}, {98, 134}}, 7, 0.1f, 0.1f, 0.3f, 3.5);
  const auto web = web_three();
  std::vector<std::filesystem::path> files = {dir / "hand_7.png", dir / "hand_0.png", dir / "hand_4.png", dir / "web_3.jpg"};
  scoreflow::save_png(files[0], seven.tensor());
  scoreflow::save_png(files[1], zero.tensor());
  scoreflow::save_png(files[2], four.tensor());
  const auto jpg = web.bytes();
  if (!stbi_write_jpg(files[3].c_str(), web.w, web.h, 3, jpg.data(), 80))
    throw std::runtime_error("stbi_write_jpg failed for " + files[3].string());
  return files;
}

}  // namespace examples::detail
