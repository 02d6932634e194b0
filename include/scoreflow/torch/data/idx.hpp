#pragma once
// IDX files (the MNIST format), raw or gzip-compressed, to and from torch tensors.
//
// Layout: bytes 0x00 0x00 <type> <ndims>, then ndims big-endian int32 sizes, then the elements
// row-major and big-endian. Types: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
// 0x0E float64.
//
// Reading trusts nothing in the header before checking it: the sizes must be positive, their
// product must not overflow and must stay under a byte limit, and the data that follows must be
// exactly as long as the header says (shorter: truncated; longer: trailing garbage). Compressed
// files are inflated in chunks into a buffer that grows with the data actually present, never
// allocated up front from the header's claim, so a hostile header cannot cause a huge allocation
// and a gzip bomb is cut off one byte past what the header describes.
#include <zlib.h>

#include <array>
#include <bit>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/io/atomic_file.hpp"
#include "scoreflow/torch/io/io_error.hpp"

namespace scoreflow {

/// The largest payload read_idx accepts by default (4 GiB; the MNIST training images are 47 MB).
inline constexpr std::uint64_t kIdxDefaultMaxBytes = std::uint64_t{1} << 32;
/// IDX allows up to 255 axes; every real data set uses 1 (labels) to 4, and more is a bad header.
inline constexpr int kIdxMaxDims = 4;

namespace detail {

struct IdxType {
  unsigned char code;
  torch::ScalarType dtype;
  std::int64_t bytes;
};
inline constexpr std::array<IdxType, 6> kIdxTypes{{{0x08, torch::kByte, 1},
                                                   {0x09, torch::kChar, 1},
                                                   {0x0B, torch::kShort, 2},
                                                   {0x0C, torch::kInt, 4},
                                                   {0x0D, torch::kFloat, 4},
                                                   {0x0E, torch::kDouble, 8}}};

inline const IdxType* idx_type_from_code(unsigned char code) {
  for (const auto& t : kIdxTypes)
    if (t.code == code) return &t;
  return nullptr;
}
inline const IdxType* idx_type_from_dtype(torch::ScalarType dtype) {
  for (const auto& t : kIdxTypes)
    if (t.dtype == dtype) return &t;
  return nullptr;
}

inline std::string hex_byte(unsigned char b) {
  static constexpr char digits[] = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

/// IDX stores elements big-endian; swap in place on little-endian hosts.
inline void big_endian_in_place(unsigned char* data, std::int64_t count, std::int64_t width) {
  if (width == 1 || std::endian::native == std::endian::big) return;
  for (std::int64_t i = 0; i < count; ++i) {
    unsigned char* e = data + i * width;
    for (std::int64_t a = 0, b = width - 1; a < b; ++a, --b) std::swap(e[a], e[b]);
  }
}

/// Sequential bytes from a raw or a gzip file (chosen by the gzip magic 1f 8b).
class IdxByteSource {
 public:
  explicit IdxByteSource(const std::filesystem::path& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw_io(path, "no such file");
    raw_size_ = std::filesystem::file_size(path, ec);
    if (ec) throw_io(path, "cannot get the size: ", ec.message());
    raw_.open(path, std::ios::binary);
    if (!raw_) throw_io(path, "cannot open for reading");
    unsigned char magic[2] = {0, 0};
    raw_.read(reinterpret_cast<char*>(magic), 2);
    if (raw_.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
      raw_.close();
      gz_ = gzopen(path.c_str(), "rb");
      if (gz_ == nullptr) throw_io(path, "cannot open as gzip");
      gzbuffer(gz_, 1 << 17);
    } else {
      raw_.clear();
      raw_.seekg(0);
    }
  }
  ~IdxByteSource() {
    if (gz_ != nullptr) gzclose(gz_);
  }
  IdxByteSource(const IdxByteSource&) = delete;
  IdxByteSource& operator=(const IdxByteSource&) = delete;

  bool compressed() const { return gz_ != nullptr; }
  std::uint64_t raw_size() const { return raw_size_; }

  /// Up to n bytes; fewer only at the end of the data. Corrupt or cut-off gzip data throws.
  std::uint64_t read(unsigned char* out, std::uint64_t n) {
    std::uint64_t done = 0;
    while (done < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::uint64_t>(n - done, 1u << 20));
      std::uint64_t got = 0;
      if (gz_ != nullptr) {
        const int r = gzread(gz_, out + done, chunk);
        if (r < 0) gzip_failure();
        got = static_cast<std::uint64_t>(r);
      } else {
        raw_.read(reinterpret_cast<char*>(out + done), static_cast<std::streamsize>(chunk));
        got = static_cast<std::uint64_t>(raw_.gcount());
      }
      done += got;
      if (got < chunk) break;
    }
    // zlib reports a stream that ends early (cut-off file) only through gzerror, not gzread.
    if (done < n && gz_ != nullptr) {
      int err = Z_OK;
      gzerror(gz_, &err);
      if (err != Z_OK) gzip_failure();
    }
    return done;
  }

 private:
  [[noreturn]] void gzip_failure() {
    int err = Z_OK;
    const char* message = gzerror(gz_, &err);
    if (err == Z_BUF_ERROR) throw_io(path_, "truncated gzip stream (", message, ")");
    throw_io(path_, "corrupt gzip data (", message, ")");
  }

  std::filesystem::path path_;
  std::ifstream raw_;
  gzFile gz_ = nullptr;
  std::uint64_t raw_size_ = 0;
};

}  // namespace detail

/// Reads an IDX file (raw or .gz, detected by content) into a CPU tensor of the header's shape
/// and type (uint8 for MNIST). Throws io_error naming the file for any malformed input.
inline torch::Tensor read_idx(const std::filesystem::path& path, std::uint64_t max_payload_bytes = kIdxDefaultMaxBytes) {
  detail::IdxByteSource source(path);
  unsigned char magic[4];
  if (source.read(magic, 4) < 4) detail::throw_io(path, "too short for an IDX header (4 bytes)");
  if (magic[0] != 0 || magic[1] != 0)
    detail::throw_io(path, "not an IDX file: magic starts with ", detail::hex_byte(magic[0]), " ",
                     detail::hex_byte(magic[1]), " instead of 0x00 0x00");
  const auto* type = detail::idx_type_from_code(magic[2]);
  if (type == nullptr)
    detail::throw_io(path, "unsupported IDX element type ", detail::hex_byte(magic[2]),
                     " (supported: 0x08 0x09 0x0b 0x0c 0x0d 0x0e)");
  const int ndims = magic[3];
  if (ndims < 1 || ndims > kIdxMaxDims)
    detail::throw_io(path, "IDX header has ", ndims, " dimensions; 1 to ", kIdxMaxDims, " are supported");

  std::vector<std::int64_t> dims(static_cast<std::size_t>(ndims));
  std::uint64_t count = 1;
  for (int d = 0; d < ndims; ++d) {
    unsigned char b[4];
    if (source.read(b, 4) < 4) detail::throw_io(path, "truncated IDX header: size of dimension ", d, " missing");
    const auto size = static_cast<std::int32_t>((std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                                                (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]});
    if (size <= 0) detail::throw_io(path, "IDX dimension ", d, " has size ", size, "; sizes must be positive");
    dims[static_cast<std::size_t>(d)] = size;
    // Sizes are < 2^31, so count * size overflows only past 2^64 / 2^31; check before multiplying.
    if (count > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(size))
      detail::throw_io(path, "IDX dimension sizes overflow when multiplied");
    count *= static_cast<std::uint64_t>(size);
  }
  const auto width = static_cast<std::uint64_t>(type->bytes);
  if (count > max_payload_bytes / width)
    detail::throw_io(path, "IDX header describes ", count, " elements of ", width, " bytes, more than the limit of ",
                     max_payload_bytes, " bytes");
  const std::uint64_t payload = count * width;
  const std::uint64_t header = 4 + 4 * static_cast<std::uint64_t>(ndims);

  if (!source.compressed()) {
    // The file size is known: reject a short or long file before allocating anything.
    const std::uint64_t have = source.raw_size() - header;
    if (have < payload)
      detail::throw_io(path, "truncated: the IDX header describes ", payload, " data bytes but the file has ", have);
    if (have > payload)
      detail::throw_io(path, "trailing garbage: ", have - payload, " bytes after the ", payload,
                       " data bytes the IDX header describes");
  }

  // The tensor is allocated only once the data is known to exist: for a raw file, the size check
  // above; for gzip, after inflating (a 31-byte gzip file may claim 4 GB; found by fuzz_idx).
  const auto options = torch::TensorOptions().dtype(type->dtype);
  torch::Tensor out;
  if (!source.compressed()) {
    out = torch::empty(dims, options);
    if (source.read(static_cast<unsigned char*>(out.data_ptr()), payload) != payload)
      detail::throw_io(path, "file shrank while being read");
  } else {
    // Inflate into a buffer that grows with the data actually present (not the header's claim),
    // asking for one byte more than described to detect trailing data.
    std::vector<unsigned char> buffer;
    std::uint64_t got = 0;
    const std::uint64_t want = payload + 1;
    while (got < want) {
      const std::uint64_t step = std::min<std::uint64_t>(want - got, std::max<std::uint64_t>(got, 1u << 20));
      buffer.resize(static_cast<std::size_t>(got + step));
      const auto n = source.read(buffer.data() + got, step);
      got += n;
      if (n < step) break;
    }
    if (got < payload)
      detail::throw_io(path, "truncated: the IDX header describes ", payload,
                       " data bytes but the decompressed file has ", got);
    if (got > payload)
      detail::throw_io(path, "trailing garbage: the decompressed file has more than the ", payload,
                       " data bytes the IDX header describes");
    out = torch::empty(dims, options);
    std::memcpy(out.data_ptr(), buffer.data(), static_cast<std::size_t>(payload));
  }
  detail::big_endian_in_place(static_cast<unsigned char*>(out.data_ptr()), static_cast<std::int64_t>(count), type->bytes);
  return out;
}

/// Writes `tensor` (1 to 4 axes, each of size ≥ 1; uint8, int8, int16, int32, float32 or
/// float64; any device) as an IDX file, gzip-compressed if the path ends in ".gz". Atomic: the
/// data goes to `<path>.tmp`, renamed when complete.
inline void write_idx(const std::filesystem::path& path, const torch::Tensor& tensor) {
  if (!tensor.defined()) throw shape_error(detail::concat("write_idx '", path.string(), "': undefined tensor"));
  if (tensor.dim() < 1 || tensor.dim() > kIdxMaxDims)
    throw shape_error(detail::concat("write_idx '", path.string(), "': tensor has ", tensor.dim(),
                                     " dimensions; IDX files here hold 1 to ", kIdxMaxDims));
  for (auto size : tensor.sizes())
    if (size < 1 || size > std::numeric_limits<std::int32_t>::max())
      throw shape_error(detail::concat("write_idx '", path.string(), "': dimension size ", size,
                                       " is outside 1 .. 2^31-1"));
  const auto* type = detail::idx_type_from_dtype(tensor.scalar_type());
  if (type == nullptr)
    throw invalid_option(detail::concat("write_idx '", path.string(), "': dtype ", tensor.scalar_type(),
                                        " has no IDX type (uint8, int8, int16, int32, float32, float64)"));

  std::vector<unsigned char> bytes{0, 0, type->code, static_cast<unsigned char>(tensor.dim())};
  for (auto size : tensor.sizes())
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<unsigned char>((size >> shift) & 0xff));
  const auto header = bytes.size();
  auto cpu = tensor.detach().to(torch::kCPU).contiguous();
  const auto payload = static_cast<std::size_t>(cpu.numel() * type->bytes);
  bytes.resize(header + payload);
  std::memcpy(bytes.data() + header, cpu.data_ptr(), payload);
  detail::big_endian_in_place(bytes.data() + header, cpu.numel(), type->bytes);

  if (path.extension() != ".gz") {
    write_file_atomically(path, bytes);
    return;
  }
  write_atomically(path, [&](const std::filesystem::path& tmp) {
    gzFile gz = gzopen(tmp.c_str(), "wb");
    if (gz == nullptr) detail::throw_io(tmp, "cannot open for writing");
    std::size_t done = 0;
    bool ok = true;
    while (ok && done < bytes.size()) {
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(bytes.size() - done, 1u << 20));
      ok = gzwrite(gz, bytes.data() + done, chunk) == static_cast<int>(chunk);
      done += chunk;
    }
    // gzclose flushes the last block and the trailer; its failure (full disk) counts too.
    if (gzclose(gz) != Z_OK || !ok) detail::throw_io(tmp, "writing the gzip data failed");
  });
}

/// uint8 in 0..255 → float32 in [0, 1] (exact for 0 and 255).
inline torch::Tensor to_unit_float(const torch::Tensor& bytes) {
  if (bytes.scalar_type() != torch::kByte)
    throw invalid_option(detail::concat("to_unit_float: dtype = ", bytes.scalar_type(), ": expected uint8"));
  return bytes.to(torch::kFloat32).div_(255.0f);
}

/// Images from an IDX file: [N,H,W] (MNIST) or [N,C,H,W], as float32 [N,C,H,W] in [0, 1].
/// uint8 is scaled by 1/255; float files must already lie in [0, 1].
inline torch::Tensor read_idx_images(const std::filesystem::path& path,
                                     std::uint64_t max_payload_bytes = kIdxDefaultMaxBytes) {
  auto raw = read_idx(path, max_payload_bytes);
  if (raw.dim() != 3 && raw.dim() != 4)
    detail::throw_io(path, "an image file needs 3 (N,H,W) or 4 (N,C,H,W) dimensions, this one has ", raw.dim());
  if (raw.dim() == 3) raw = raw.unsqueeze(1);
  if (raw.scalar_type() == torch::kByte) return to_unit_float(raw);
  if (raw.scalar_type() == torch::kFloat || raw.scalar_type() == torch::kDouble) {
    auto images = raw.to(torch::kFloat32);
    if (!images.isfinite().all().item<bool>() || images.min().item<float>() < 0.0f ||
        images.max().item<float>() > 1.0f)
      detail::throw_io(path, "float image values must be finite and in [0, 1]");
    return images;
  }
  detail::throw_io(path, "image files must hold uint8 or float data, this one holds ", raw.scalar_type());
}

/// Class labels from a 1-D integer IDX file, as int64 [N]; negative labels are refused.
inline torch::Tensor read_idx_labels(const std::filesystem::path& path) {
  auto raw = read_idx(path);
  if (raw.dim() != 1) detail::throw_io(path, "a label file needs 1 dimension, this one has ", raw.dim());
  if (raw.is_floating_point())
    detail::throw_io(path, "label files must hold integers, this one holds ", raw.scalar_type());
  auto labels = raw.to(torch::kLong);
  const auto lowest = labels.min().item<std::int64_t>();
  if (lowest < 0) detail::throw_io(path, "negative label ", lowest);
  return labels;
}

}  // namespace scoreflow
