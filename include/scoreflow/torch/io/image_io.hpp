#pragma once
// PNG and JPEG images to and from float tensors, resampling, and sample grids.
//
// Decoding and encoding use the stb single-file libraries, compiled into each translation unit
// as `static` functions (STB_*_STATIC) so that this header stays header-only and cannot clash
// with another copy of stb linked into the program.
//
// Loading checks the image's size from its header (stbi_info) before decoding, so a file that
// claims a gigapixel image is refused without allocating it. Every failure is an io_error that
// names the file. Only PNG and JPEG reach stb: its other decoders (BMP, GIF, PSD, TGA, HDR, PIC,
// PNM) are refused by signature first — fuzzing found a signed overflow in its PNM header parser,
// and a format we do not promise is attack surface we do not need.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/io/atomic_file.hpp"
#include "scoreflow/torch/io/io_error.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#endif
#ifndef STB_IMAGE_STATIC
#define STB_IMAGE_STATIC
#endif
#ifndef STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_STATIC
#endif
#ifndef STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_STATIC
#endif
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#if __has_include(<stb/stb_image.h>)  // Debian/Ubuntu (libstb-dev) install under stb/
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>
#else
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>
#endif
#undef STB_IMAGE_IMPLEMENTATION
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#undef STB_IMAGE_RESIZE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace scoreflow {

/// Resampling filters (stb_image_resize). `automatic`: Catmull-Rom when enlarging, Mitchell when
/// shrinking. `box` averages the covered source area (exact block means for integer factors).
enum class ResizeFilter { automatic, box, triangle, cubic_bspline, catmull_rom, mitchell };

/// What to do with transparency when the requested channel count has no alpha channel.
enum class AlphaMode {
  composite_white,  ///< blend onto a white background: c·a + (1 − a)
  drop,             ///< discard alpha, keeping the stored colour of transparent pixels
};

struct ImageLoadOptions {
  int channels = 0;          ///< 0: as stored; 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  std::int64_t height = 0;   ///< 0 (with width 0): as stored; else resample to height × width
  std::int64_t width = 0;
  AlphaMode alpha = AlphaMode::composite_white;
  ResizeFilter filter = ResizeFilter::automatic;
  std::int64_t max_pixels = std::int64_t{1} << 26;      ///< larger images are refused (8192² fits)
  std::uint64_t max_file_bytes = std::uint64_t{1} << 28;  ///< 256 MiB
};

namespace detail {
/// [C,H,W] or [N,C,H,W] → [N,C,H,W]; anything else is a shape_error naming `where`.
inline torch::Tensor as_image_batch(const torch::Tensor& t, const char* where) {
  if (!t.defined()) throw shape_error(concat(where, ": undefined tensor"));
  if (t.dim() == 3) return t.unsqueeze(0);
  if (t.dim() == 4) return t;
  throw shape_error(concat(where, ": need [C,H,W] or [N,C,H,W], got ", t.dim(), " dimensions"));
}
inline void require_channels(std::int64_t c, const char* where) {
  if (c < 1 || c > 4) throw shape_error(concat(where, ": ", c, " channels; 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) supported"));
}
/// Whether the bytes start with PNG's 8-byte signature.
inline bool png_signature(const std::vector<unsigned char>& b) {
  static constexpr unsigned char signature[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  return b.size() >= 8 && std::equal(std::begin(signature), std::end(signature), b.begin());
}

/// Width and height from a PNG's IHDR chunk, if `bytes` starts like a PNG.
inline std::optional<std::pair<std::uint32_t, std::uint32_t>> png_size(const std::vector<unsigned char>& bytes) {
  static constexpr unsigned char ihdr[] = {0, 0, 0, 13, 'I', 'H', 'D', 'R'};  // the first chunk's length and type
  if (bytes.size() < 24 || !png_signature(bytes) || !std::equal(std::begin(ihdr), std::end(ihdr), bytes.begin() + 8))
    return std::nullopt;
  const auto be32 = [&](std::size_t at) {
    return (std::uint32_t{bytes[at]} << 24) | (std::uint32_t{bytes[at + 1]} << 16) |
           (std::uint32_t{bytes[at + 2]} << 8) | std::uint32_t{bytes[at + 3]};
  };
  return std::pair{be32(16), be32(20)};
}

/// Where a JPEG's segments start: just past its start-of-image marker FF D8, which may follow any
/// number of fill bytes FF (stb accepts FF FF D8); nothing if the bytes are not a JPEG.
inline std::optional<std::size_t> jpeg_segments_start(const std::vector<unsigned char>& b) {
  std::size_t pos = 0;
  while (pos < b.size() && b[pos] == 0xFF) ++pos;
  if (pos == 0 || pos >= b.size() || b[pos] != 0xD8) return std::nullopt;
  return pos + 1;
}

/// What stb_image would mishandle in a JPEG's Huffman tables, checked before stb sees the file
/// (both found by fuzz_image):
///  - a table (DHT segment) holding more than 256 codes overflows stb's 257-entry size list
///    (stbi__build_huffman writes past it);
///  - a scan (SOS) that decodes with a table no DHT defined makes stb read the table from
///    uninitialised memory (an out-of-bounds read of its value list, or garbage pixels).
/// Scans every marker segment, including those between the scans of a progressive JPEG
/// (entropy-coded bytes are skipped up to the next marker; 0xFF00 stuffing and restart markers
/// are not segments).
inline std::optional<std::string> jpeg_huffman_problem(const std::vector<unsigned char>& b) {
  const auto start = jpeg_segments_start(b);
  if (!start) return std::nullopt;
  std::size_t pos = *start;
  bool defined[2][4] = {};  // [class: 0 DC, 1 AC][table id]
  const auto at = [&](std::size_t i) -> unsigned { return i < b.size() ? b[i] : 0u; };  // stb reads 0 past the end
  while (pos + 4 <= b.size()) {
    if (b[pos] != 0xFF) {  // entropy-coded data
      ++pos;
      continue;
    }
    const unsigned char marker = b[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      pos += 2;
      continue;
    }
    if (marker == 0xD9) break;  // end of image
    const std::size_t length = (std::size_t{b[pos + 2]} << 8) | b[pos + 3];
    if (length < 2) break;  // malformed: stb refuses it
    const std::size_t end = std::min(b.size(), pos + 2 + length);
    if (marker == 0xC4) {
      // As stb reads them: a table that starts inside the segment is read whole, even past the
      // segment's end, and bytes past the end of the file read as 0.
      for (std::size_t t = pos + 4; t < end;) {
        int codes = 0;
        for (std::size_t i = 1; i <= 16; ++i) codes += static_cast<int>(at(t + i));
        if (codes > 256) return concat("a Huffman table with ", codes, " codes (at most 256)");
        const unsigned cls = at(t) >> 4, id = at(t) & 15;
        if (cls <= 1 && id <= 3) defined[cls][id] = true;  // anything else stb refuses
        t += 17 + static_cast<std::size_t>(codes);
      }
    }
    if (marker == 0xDA) {
      // Ns, then (component, DC table << 4 | AC table) × Ns, then Ss, Se, Ah << 4 | Al. A scan
      // decodes DC symbols when Ss = 0 and Ah = 0 (first DC scan or baseline), AC symbols when
      // Se > 0; refinement of DC reads raw bits.
      const unsigned ns = at(pos + 4);
      const std::size_t spectral = pos + 5 + 2 * ns;
      const bool dc = at(spectral) == 0 && (at(spectral + 2) >> 4) == 0, ac = at(spectral + 1) > 0;
      for (unsigned k = 0; k < ns && k < 4; ++k) {
        const unsigned tables = at(pos + 6 + 2 * k), td = tables >> 4, ta = tables & 15;
        if (dc && td <= 3 && !defined[0][td]) return concat("a scan uses DC Huffman table ", td, ", never defined");
        if (ac && ta <= 3 && !defined[1][ta]) return concat("a scan uses AC Huffman table ", ta, ", never defined");
      }
    }
    pos += 2 + length;
  }
  return std::nullopt;
}

/// Whether the bytes start as a PNG or a JPEG.
inline bool png_or_jpeg_signature(const std::vector<unsigned char>& b) {
  return png_signature(b) || jpeg_segments_start(b).has_value();
}

inline std::string first_bytes_hex(const std::vector<unsigned char>& b) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < b.size() && i < 8; ++i) {
    if (i) out += ' ';
    out += digits[b[i] >> 4];
    out += digits[b[i] & 15];
  }
  return out;
}

inline stbir_filter stb_filter(ResizeFilter f) {
  switch (f) {
    case ResizeFilter::box: return STBIR_FILTER_BOX;
    case ResizeFilter::triangle: return STBIR_FILTER_TRIANGLE;
    case ResizeFilter::cubic_bspline: return STBIR_FILTER_CUBICBSPLINE;
    case ResizeFilter::catmull_rom: return STBIR_FILTER_CATMULLROM;
    case ResizeFilter::mitchell: return STBIR_FILTER_MITCHELL;
    case ResizeFilter::automatic: break;
  }
  return STBIR_FILTER_DEFAULT;
}
}  // namespace detail

/// Converts [C,H,W] or [N,C,H,W] images between 1 (gray), 2 (gray+alpha), 3 (RGB) and 4 (RGBA)
/// channels, keeping the input's rank. RGB → gray uses ITU-R BT.601 luma (0.299, 0.587, 0.114),
/// as PIL's "L" mode; gray → RGB repeats the plane; a missing alpha channel is filled with 1.
inline torch::Tensor convert_channels(const torch::Tensor& image, int channels,
                                      AlphaMode alpha_mode = AlphaMode::composite_white) {
  auto x = detail::as_image_batch(image, "convert_channels");
  const auto c = x.size(1);
  detail::require_channels(c, "convert_channels input");
  detail::require_channels(channels, "convert_channels target");
  if (c == channels) return image;
  const bool has_alpha = c == 2 || c == 4, want_alpha = channels == 2 || channels == 4;
  auto color = x.narrow(1, 0, has_alpha ? c - 1 : c);
  auto alpha = has_alpha ? x.narrow(1, c - 1, 1) : torch::ones_like(x.narrow(1, 0, 1));
  if (has_alpha && !want_alpha && alpha_mode == AlphaMode::composite_white) color = color * alpha + (1 - alpha);
  const std::int64_t want_color = want_alpha ? channels - 1 : channels;
  if (color.size(1) == 1 && want_color == 3) {
    color = color.expand({-1, 3, -1, -1});
  } else if (color.size(1) == 3 && want_color == 1) {
    auto weights = torch::tensor({0.299, 0.587, 0.114}, x.options()).view({1, 3, 1, 1});
    color = (color * weights).sum(1, /*keepdim=*/true);
  }
  auto out = want_alpha ? torch::cat({color, alpha}, 1) : color.contiguous();
  return image.dim() == 3 ? out.squeeze(0) : out;
}

/// Resamples [C,H,W] or [N,C,H,W] float images to height × width with a real filter (CPU, via
/// stb_image_resize, edges clamped). With 2 or 4 channels the last is alpha, and colour is
/// filtered alpha-weighted so transparent pixels do not bleed their colour.
inline torch::Tensor resize_image(const torch::Tensor& image, std::int64_t height, std::int64_t width,
                                  ResizeFilter filter = ResizeFilter::automatic) {
  auto x = detail::as_image_batch(image, "resize_image");
  detail::require(height >= 1 && height <= INT_MAX, "resize_image height", height, "must be in [1, 2^31)");
  detail::require(width >= 1 && width <= INT_MAX, "resize_image width", width, "must be in [1, 2^31)");
  const auto n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (h < 1 || w < 1 || c < 1 || c > 64)
    throw shape_error(detail::concat("resize_image: cannot resample a ", c, "×", h, "×", w, " image"));
  // stb works on interleaved float rows: N×H×W×C.
  auto src = x.detach().to(torch::kCPU, torch::kFloat32).permute({0, 2, 3, 1}).contiguous();
  auto dst = torch::empty({n, height, width, c}, torch::kFloat32);
  const int alpha_channel = (c == 2 || c == 4) ? static_cast<int>(c - 1) : STBIR_ALPHA_CHANNEL_NONE;
  for (std::int64_t i = 0; i < n; ++i) {
    const int ok = stbir_resize_float_generic(
        src[i].data_ptr<float>(), static_cast<int>(w), static_cast<int>(h), 0, dst[i].data_ptr<float>(),
        static_cast<int>(width), static_cast<int>(height), 0, static_cast<int>(c), alpha_channel, 0, STBIR_EDGE_CLAMP,
        detail::stb_filter(filter), STBIR_COLORSPACE_LINEAR, nullptr);
    if (!ok) throw std::runtime_error("resize_image: stb_image_resize failed (out of memory?)");
  }
  auto out = dst.permute({0, 3, 1, 2}).contiguous().to(x.options());
  return image.dim() == 3 ? out.squeeze(0) : out;
}

/// Enlarges [C,H,W] or [N,C,H,W] images by an integer factor, each pixel becoming a factor ×
/// factor block: keeps 28×28 digits crisp when viewed.
inline torch::Tensor upscale_nearest(const torch::Tensor& image, std::int64_t factor) {
  detail::as_image_batch(image, "upscale_nearest");
  detail::require(factor >= 1, "upscale_nearest factor", factor, "must be ≥ 1");
  if (factor == 1) return image;
  return image.repeat_interleave(factor, -2).repeat_interleave(factor, -1);
}

/// Loads an image file as float32 [1,C,H,W] in [0, 1] (8-bit ÷ 255, 16-bit ÷ 65535), then
/// converts channels and resamples as `options` ask.
inline torch::Tensor load_image(const std::filesystem::path& path, const ImageLoadOptions& options = {}) {
  detail::require(options.channels >= 0 && options.channels <= 4, "ImageLoadOptions channels", options.channels,
                  "must be 0 (as stored) or 1..4");
  detail::require((options.height == 0) == (options.width == 0) && options.height >= 0 && options.width >= 0,
                  "ImageLoadOptions height×width", detail::concat(options.height, "×", options.width),
                  "give both (positive) or neither");
  const auto bytes = read_file_bytes(path, options.max_file_bytes);
  if (bytes.empty()) detail::throw_io(path, "empty file, not an image");
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) detail::throw_io(path, "file too large for stb_image");
  const auto* data = bytes.data();
  const int size = static_cast<int>(bytes.size());

  if (!detail::png_or_jpeg_signature(bytes))
    detail::throw_io(path, "not a readable image: neither PNG nor JPEG (the file starts ",
                     detail::first_bytes_hex(bytes), ")");
  if (const auto problem = detail::jpeg_huffman_problem(bytes)) detail::throw_io(path, "corrupt JPEG: ", *problem);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, size, &w, &h, &comp)) {
    // stbi_info tries every format and reports only "unknown image type"; for a PNG, say what
    // is wrong with its size, which is the usual reason a well-formed header is refused.
    if (const auto png = detail::png_size(bytes)) {
      if (png->first == 0 || png->second == 0)
        detail::throw_io(path, "PNG header says ", png->first, "×", png->second, " (0-pixel image)");
      detail::throw_io(path, "PNG header says ", png->first, "×", png->second,
                       ": image too large or corrupt header (stb_image refuses it)");
    }
    detail::throw_io(path, "not a readable image (stb_image: ", stbi_failure_reason(), ")");
  }
  if (w <= 0 || h <= 0) detail::throw_io(path, "image is ", w, "×", h, " (0-pixel image)");
  if (static_cast<std::int64_t>(w) * h > options.max_pixels)
    detail::throw_io(path, "image too large: ", w, "×", h, " = ", static_cast<std::int64_t>(w) * h,
                     " pixels, more than the limit of ", options.max_pixels);

  // stb's failure reason is per thread and sticky, and some decoders fail without setting one
  // (a cut-off JPEG): prime it with a known reason so that a stale one is never reported.
  const unsigned char nothing = 0;
  stbi_info_from_memory(&nothing, 1, nullptr, nullptr, nullptr);
  const std::string primed = stbi_failure_reason();
  const bool sixteen = stbi_is_16_bit_from_memory(data, size) != 0;
  void* pixels = sixteen ? static_cast<void*>(stbi_load_16_from_memory(data, size, &w, &h, &comp, 0))
                         : static_cast<void*>(stbi_load_from_memory(data, size, &w, &h, &comp, 0));
  if (pixels == nullptr) {
    const std::string reason = stbi_failure_reason();
    if (reason == primed) detail::throw_io(path, "corrupt or truncated image data");
    detail::throw_io(path, "corrupt or truncated image data (stb_image: ", reason, ")");
  }
  std::unique_ptr<void, void (*)(void*)> owner(pixels, [](void* p) { stbi_image_free(p); });
  torch::Tensor hwc;
  if (sixteen) {
    // LibTorch 1.13 has no uint16: widen through int32 (values 0..65535).
    const auto* p16 = static_cast<const std::uint16_t*>(pixels);
    auto wide = torch::empty({h, w, comp}, torch::kInt32);
    auto* out = wide.data_ptr<std::int32_t>();
    for (std::int64_t i = 0, n = static_cast<std::int64_t>(h) * w * comp; i < n; ++i) out[i] = p16[i];
    hwc = wide.to(torch::kFloat32).div_(65535.0f);
  } else {
    hwc = torch::from_blob(pixels, {h, w, comp}, torch::kUInt8).to(torch::kFloat32).div_(255.0f);
  }
  auto image = hwc.permute({2, 0, 1}).unsqueeze(0).contiguous();
  if (options.channels != 0 && options.channels != comp) image = convert_channels(image, options.channels, options.alpha);
  if (options.height != 0 && (options.height != h || options.width != w)) {
    // Cubic filters overshoot at edges; the result must stay in [0, 1].
    image = resize_image(image, options.height, options.width, options.filter).clamp_(0.0f, 1.0f);
  }
  return image;
}

/// Writes a [C,H,W] or [1,C,H,W] image (C = 1..4) as an 8-bit PNG, mapping [lo, hi] to 0..255
/// (values outside are clipped). Atomic: written to `<path>.tmp`, then renamed.
inline void save_png(const std::filesystem::path& path, const torch::Tensor& image, double lo = 0.0, double hi = 1.0) {
  auto x = detail::as_image_batch(image, "save_png");
  if (x.size(0) != 1)
    throw shape_error(detail::concat("save_png '", path.string(), "': batch of ", x.size(0),
                                     " images; use save_grid_png for several"));
  const auto c = x.size(1), h = x.size(2), w = x.size(3);
  detail::require_channels(c, "save_png");
  if (h < 1 || w < 1 || h > INT_MAX / 4 || w > INT_MAX / 4)
    throw shape_error(detail::concat("save_png '", path.string(), "': cannot write a ", h, "×", w, " image"));
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi))
    throw invalid_option(detail::concat("save_png '", path.string(), "' value range = [", lo, ", ", hi,
                                        "]: need finite lo < hi"));
  auto values = x.detach().to(torch::kCPU, torch::kFloat64);
  if (!values.isfinite().all().item<bool>())
    throw non_finite_error(detail::concat("save_png '", path.string(), "': the image contains NaN or infinity"));
  auto bytes = ((values - lo) / (hi - lo)).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch::kUInt8);
  auto hwc = bytes[0].permute({1, 2, 0}).contiguous();

  std::vector<unsigned char> png;
  const auto append = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<unsigned char>*>(context);
    const auto* p = static_cast<const unsigned char*>(data);
    out->insert(out->end(), p, p + size);
  };
  if (!stbi_write_png_to_func(append, &png, static_cast<int>(w), static_cast<int>(h), static_cast<int>(c),
                              hwc.data_ptr<std::uint8_t>(), static_cast<int>(w * c)))
    detail::throw_io(path, "PNG encoding failed");
  write_file_atomically(path, png);
}

/// Tiles [N,C,H,W] images into one [C,H',W'] image, `nrow` images per row, with `padding`
/// pixels of `pad_value` around and between them: the layout of torchvision's make_grid
/// (except that a single image is padded too).
inline torch::Tensor make_grid(const torch::Tensor& images, std::int64_t nrow = 8, std::int64_t padding = 2,
                               double pad_value = 0.0) {
  if (!images.defined() || images.dim() != 4)
    throw shape_error(detail::concat("make_grid: need [N,C,H,W] images, got ",
                                     images.defined() ? images.dim() : 0, " dimensions"));
  detail::require(images.size(0) >= 1, "make_grid image count", images.size(0), "must be ≥ 1");
  detail::require(nrow >= 1, "make_grid nrow", nrow, "must be ≥ 1");
  detail::require(padding >= 0, "make_grid padding", padding, "must be ≥ 0");
  const auto n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const auto columns = std::min(nrow, n), rows = (n + columns - 1) / columns;
  auto grid = torch::full({c, rows * (h + padding) + padding, columns * (w + padding) + padding}, pad_value,
                          images.options());
  for (std::int64_t k = 0; k < n; ++k) {
    const auto y = k / columns, x = k % columns;
    grid.narrow(1, y * (h + padding) + padding, h).narrow(2, x * (w + padding) + padding, w).copy_(images[k]);
  }
  return grid;
}

struct GridOptions {
  std::int64_t nrow = 8;     ///< images per row
  std::int64_t padding = 2;  ///< pixels between and around images (after upscaling)
  std::int64_t upscale = 1;  ///< nearest-neighbour factor per image (e.g. 4 for 28×28 digits)
  double lo = 0.0;           ///< value shown as black; padding has this value
  double hi = 1.0;           ///< value shown as white
};

/// make_grid + save_png: one PNG showing a batch of [N,C,H,W] samples.
inline void save_grid_png(const std::filesystem::path& path, const torch::Tensor& images, const GridOptions& options = {}) {
  auto cpu = images.detach().to(torch::kCPU);
  save_png(path, make_grid(upscale_nearest(cpu, options.upscale), options.nrow, options.padding, options.lo),
           options.lo, options.hi);
}

}  // namespace scoreflow
