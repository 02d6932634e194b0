#pragma once
// Text-prompt embeddings by name (DeepFloyd IF's T5 embeddings, [1, 77, 4096] per prompt), read
// from the file examples/deepfloyd_if/export_deepfloyd_if.py writes. The empty prompt "" is the
// unconditional embedding of classifier-free guidance.
//
//   auto prompts = scoreflow::PromptEmbeddings::load("prompts.sfemb");
//   torch::Tensor rocket = prompts.get("a rocket ship");   // [1, 77, D] float32, CPU
//   torch::Tensor null = prompts.unconditional();          // prompts.get("")
//
// File format (".sfemb", version 1; all integers little-endian). A plain binary layout rather than
// a pickle or a TorchScript archive, so that any LibTorch (1.13 or 2.x), or none, reads it, and
// Python writes it with `struct` alone:
//   char[8]  magic "SFPROMPT"
//   uint32   version (1)
//   uint32   entry count
//   per entry:
//     uint32   name length in bytes, then the UTF-8 name (may be empty: the unconditional prompt)
//     uint32   rank (2 or 3)
//     int64    dims[rank]: [77, D] or [1, 77, D]
//     float32  values[product of dims], row-major
// Every entry must have 77 tokens and the same width D. Any violation, a truncated file or
// trailing bytes are an io_error naming the file (and the prompt, once its name has been read).
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/io/atomic_file.hpp"
#include "scoreflow/torch/io/io_error.hpp"

namespace scoreflow {

class PromptEmbeddings {
 public:
  static constexpr std::int64_t tokens = 77;  ///< IF's T5 sequence length
  static constexpr char magic[8] = {'S', 'F', 'P', 'R', 'O', 'M', 'P', 'T'};
  static constexpr std::uint32_t version = 1;

  PromptEmbeddings() = default;

  /// Reads and validates a file (format above). Files over `max_bytes` are refused unread.
  static PromptEmbeddings load(const std::filesystem::path& file, std::uint64_t max_bytes = std::uint64_t{1} << 33) {
    const auto bytes = read_file_bytes(file, max_bytes);
    Reader in{file, bytes};
    if (bytes.size() < sizeof magic || std::memcmp(bytes.data(), magic, sizeof magic) != 0)
      detail::throw_io(file, "not a prompt-embeddings file (no \"SFPROMPT\" magic at the start; write it with "
                             "export_deepfloyd_if.py or PromptEmbeddings::save)");
    in.pos = sizeof magic;
    const auto file_version = in.u32("the version");
    if (file_version != version)
      detail::throw_io(file, "prompt-embeddings format version ", file_version, "; this reader knows version ", version);
    const auto count = in.u32("the entry count");
    PromptEmbeddings out;
    out.source_ = file;
    for (std::uint32_t e = 0; e < count; ++e) {
      const std::string where = detail::concat("entry ", e);
      const auto name_len = in.u32((where + ": name length").c_str());
      if (name_len > 4096) detail::throw_io(file, where, ": name length ", name_len, " exceeds 4096 bytes");
      const std::string name = in.text(name_len, (where + ": name").c_str());
      const std::string prompt = detail::concat(where, " (prompt ", quoted(name), ")");
      const auto rank = in.u32((prompt + ": rank").c_str());
      if (rank != 2 && rank != 3)
        detail::throw_io(file, prompt, ": rank ", rank, "; expected [77, D] or [1, 77, D]");
      std::vector<std::int64_t> dims(rank);
      for (auto& d : dims) d = in.i64((prompt + ": shape").c_str());
      if (rank == 3 && dims[0] != 1)
        detail::throw_io(file, prompt, ": shape ", shape_text(dims), "; expected [77, D] or [1, 77, D]");
      const auto tok = dims[rank - 2], width = dims[rank - 1];
      if (tok != tokens || width < 1 || width > (std::int64_t{1} << 20))
        detail::throw_io(file, prompt, ": shape ", shape_text(dims), "; expected [77, D] or [1, 77, D] with 1 ≤ D ≤ 2^20");
      const auto count_values = static_cast<std::uint64_t>(tok * width);
      if (count_values * 4 > in.remaining())
        detail::throw_io(file, prompt, ": truncated: ", count_values * 4, " bytes of float32 values expected, ",
                         in.remaining(), " left in the file");
      auto values = torch::empty({1, tok, width}, torch::TensorOptions().dtype(torch::kFloat32));
      in.floats(values.data_ptr<float>(), count_values);
      try {
        out.add(name, values);
      } catch (const std::exception& err) {
        detail::throw_io(file, where, ": ", err.what());
      }
    }
    if (in.remaining() != 0) detail::throw_io(file, in.remaining(), " unexpected bytes after the last of ", count, " entries");
    return out;
  }

  /// Writes all entries in insertion order (atomically: `<file>.tmp`, then renamed).
  void save(const std::filesystem::path& file) const {
    std::vector<unsigned char> bytes(magic, magic + sizeof magic);
    put_u32(bytes, version);
    put_u32(bytes, static_cast<std::uint32_t>(entries_.size()));
    for (const auto& [name, value] : entries_) {
      put_u32(bytes, static_cast<std::uint32_t>(name.size()));
      bytes.insert(bytes.end(), name.begin(), name.end());
      put_u32(bytes, 3);
      for (auto d : value.sizes()) put_i64(bytes, d);
      const auto c = value.contiguous();
      const float* p = c.data_ptr<float>();
      for (std::int64_t i = 0; i < c.numel(); ++i) put_u32(bytes, std::bit_cast<std::uint32_t>(p[i]));
    }
    write_file_atomically(file, bytes);
  }

  /// Adds (or replaces) a prompt's embedding: [77, D] or [1, 77, D], finite, with the width D of
  /// the entries already held. Stored as float32 [1, 77, D] on the CPU.
  void add(const std::string& name, const torch::Tensor& embedding) {
    if (!embedding.defined()) throw shape_error(detail::concat("prompt ", quoted(name), ": undefined tensor"));
    const auto s = embedding.sizes();
    const bool ok = (s.size() == 2 && s[0] == tokens) || (s.size() == 3 && s[0] == 1 && s[1] == tokens);
    if (!ok || s.back() < 1)
      throw shape_error(detail::concat("prompt ", quoted(name), ": embedding shape ", s,
                                       "; expected [77, D] or [1, 77, D] (T5 tokens × width)"));
    if (!entries_.empty() && s.back() != dim() && !(entries_.size() == 1 && entries_[0].first == name))
      throw shape_error(detail::concat("prompt ", quoted(name), ": embedding width ", s.back(),
                                       " differs from the width ", dim(), " of the other prompts"));
    auto value = embedding.detach().to(torch::kCPU, torch::kFloat32).reshape({1, tokens, s.back()}).contiguous();
    if (!value.isfinite().all().item<bool>())
      throw non_finite_error(detail::concat("prompt ", quoted(name), ": embedding contains NaN or infinity"));
    for (auto& entry : entries_)
      if (entry.first == name) {
        entry.second = value.clone();
        return;
      }
    entries_.emplace_back(name, value.clone());
  }

  /// The embedding of `name` as float32 [1, 77, D] on the CPU. An unknown name is an
  /// invalid_option listing the names that exist.
  [[nodiscard]] torch::Tensor get(const std::string& name) const {
    for (const auto& [n, v] : entries_)
      if (n == name) return v;
    std::string available;
    for (const auto& [n, v] : entries_) available += (available.empty() ? "" : ", ") + quoted(n);
    throw invalid_option(detail::concat("prompt = ", quoted(name), ": not in ",
                                        source_.empty() ? std::string("these prompt embeddings") : "'" + source_.string() + "'",
                                        "; available: ", available.empty() ? std::string("none") : available));
  }
  /// The unconditional (empty-prompt) embedding, for classifier-free guidance.
  [[nodiscard]] torch::Tensor unconditional() const { return get(""); }

  [[nodiscard]] bool contains(const std::string& name) const {
    return std::any_of(entries_.begin(), entries_.end(), [&](const auto& e) { return e.first == name; });
  }
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.first);
    return out;
  }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  /// The embedding width D (4096 for IF's T5-XXL); 0 when empty.
  [[nodiscard]] std::int64_t dim() const { return entries_.empty() ? 0 : entries_.front().second.size(2); }
  /// The file these were loaded from (empty if built in memory).
  [[nodiscard]] const std::filesystem::path& source() const { return source_; }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> entries_;
  std::filesystem::path source_;

  static std::string quoted(const std::string& name) { return name.empty() ? "'' (the empty prompt)" : "'" + name + "'"; }
  static std::string shape_text(const std::vector<std::int64_t>& dims) {
    std::string s = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
  }
  static void put_u32(std::vector<unsigned char>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
  static void put_i64(std::vector<unsigned char>& out, std::int64_t v) {
    const auto u = static_cast<std::uint64_t>(v);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(u >> (8 * i)));
  }

  /// Bounds-checked little-endian reads; every failure names the file and the field.
  struct Reader {
    const std::filesystem::path& file;
    const std::vector<unsigned char>& bytes;
    std::size_t pos = 0;

    [[nodiscard]] std::uint64_t remaining() const { return bytes.size() - pos; }
    void need(std::uint64_t n, const char* what) const {
      if (n > remaining()) detail::throw_io(file, "truncated while reading ", what, " (", n, " bytes needed, ", remaining(), " left)");
    }
    std::uint32_t u32(const char* what) {
      need(4, what);
      std::uint32_t v = 0;
      for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(bytes[pos + i]) << (8 * i);
      pos += 4;
      return v;
    }
    std::int64_t i64(const char* what) {
      need(8, what);
      std::uint64_t v = 0;
      for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(bytes[pos + i]) << (8 * i);
      pos += 8;
      return static_cast<std::int64_t>(v);
    }
    std::string text(std::uint32_t n, const char* what) {
      need(n, what);
      std::string s(reinterpret_cast<const char*>(bytes.data() + pos), n);
      pos += n;
      return s;
    }
    void floats(float* out, std::uint64_t n) {
      if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(out, bytes.data() + pos, n * 4);
        pos += n * 4;
      } else {
        for (std::uint64_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(u32("values"));
      }
    }
  };
};

}  // namespace scoreflow
