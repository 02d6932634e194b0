#pragma once
// Integrity check of a LibTorch archive (the zip file torch::serialize::OutputArchive writes)
// before LibTorch parses it.
//
// Why: LibTorch 1.13 reads archives with CRC-32 checks disabled and then hands the entries to its
// TorchScript importer and unpickler, which are not hardened against malformed input — fuzzing
// our checkpoint loader found a bit-flipped type declaration in code/*.py that crashes it
// (SEGV in torch::jit::ScriptTypeParser::parseClassConstant). So every entry's checksum is
// verified here, by our own bounded reader, and the class declarations LibTorch will parse must
// be of the one shape a module archive holds. A corrupt, truncated or spliced file then fails
// with a message that names the entry, instead of reaching LibTorch.
//
// What this does not do: make LibTorch's deserialiser safe for a deliberately crafted archive
// whose checksums are right (as with torch.load, treat checkpoints as trusted input).
//
// Format: PKWARE APPNOTE 6.3 — end of central directory (and its zip64 form), central directory
// headers, local headers; entries stored (method 0) or deflated (method 8), as miniz writes.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace scoreflow::detail {

class ZipReader {
 public:
  explicit ZipReader(const std::filesystem::path& file) : in_(file, std::ios::binary) {
    std::error_code ec;
    size_ = std::filesystem::file_size(file, ec);
    readable_ = in_ && !ec;
  }

  /// The first problem found, or nothing: the archive is structurally sound and every entry's
  /// data matches its CRC-32.
  std::optional<std::string> problem() {
    try {
      check();
      return std::nullopt;
    } catch (const Problem& p) {
      return p.what;
    }
  }

 private:
  struct Problem {
    std::string what;
  };
  struct Entry {
    std::string name;
    std::uint16_t method = 0;
    std::uint32_t crc = 0;
    std::uint64_t compressed = 0, size = 0, local_offset = 0;
  };
  static constexpr std::uint64_t kMaxCodeBytes = 1 << 20;  // one class declaration file

  [[noreturn]] static void fail(std::string what) { throw Problem{std::move(what)}; }

  std::vector<unsigned char> read_at(std::uint64_t offset, std::uint64_t n) {
    if (offset > size_ || n > size_ - offset) fail("is truncated (a record runs past the end of the file)");
    std::vector<unsigned char> out(n);
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n));
    if (!in_) fail("cannot be read");
    return out;
  }
  static std::uint64_t le(const unsigned char* p, int bytes) {
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }

  void check() {
    if (!readable_) fail("cannot be read");
    if (size_ < 22) fail("is too short to be a zip archive");
    // The end-of-central-directory record: the last 22 bytes plus a comment of up to 64 KiB.
    const std::uint64_t tail_len = std::min<std::uint64_t>(size_, 22 + 0xFFFF);
    const auto tail = read_at(size_ - tail_len, tail_len);
    std::optional<std::uint64_t> eocd;
    for (std::uint64_t i = tail_len - 22 + 1; i-- > 0;)
      if (le(&tail[i], 4) == 0x06054b50 && i + 22 + le(&tail[i + 20], 2) == tail_len) {
        eocd = i;
        break;
      }
    if (!eocd) fail("is not a zip archive (no end-of-central-directory record)");
    const unsigned char* e = &tail[*eocd];
    const std::uint64_t eocd_pos = size_ - tail_len + *eocd;
    std::uint64_t count = le(e + 10, 2), cd_size = le(e + 12, 4), cd_offset = le(e + 16, 4);
    if (le(e + 4, 2) != 0 || le(e + 6, 2) != 0) fail("is a multi-disk zip archive");
    std::uint64_t cd_end = eocd_pos;
    // zip64 (miniz writes it whenever asked to, LibTorch always): a locator just before the
    // record points at the zip64 end record, whose 64-bit fields are the ones that count, and
    // which sits between the central directory and the classic record.
    const bool has_locator = eocd_pos >= 20 && le(read_at(eocd_pos - 20, 4).data(), 4) == 0x07064b50;
    if (has_locator) {
      const auto loc = read_at(eocd_pos - 20, 20);
      const std::uint64_t z = le(&loc[8], 8);
      if (z > eocd_pos - 20) fail("has a broken zip64 end record");
      const auto rec = read_at(z, 56);
      if (le(&rec[0], 4) != 0x06064b50) fail("has a broken zip64 end record");
      // Readers differ on which copy they trust when the two records disagree: refuse that.
      const auto agree = [](std::uint64_t classic, std::uint64_t saturated, std::uint64_t wide) {
        return classic == saturated || classic == wide;
      };
      if (!agree(count, 0xFFFF, le(&rec[32], 8)) || !agree(cd_size, 0xFFFFFFFF, le(&rec[40], 8)) ||
          !agree(cd_offset, 0xFFFFFFFF, le(&rec[48], 8)) || le(&rec[24], 8) != le(&rec[32], 8))
        fail("has two end records that disagree");
      count = le(&rec[32], 8);
      cd_size = le(&rec[40], 8);
      cd_offset = le(&rec[48], 8);
      cd_end = z;
    } else if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
      fail("has no zip64 end-record locator");
    }
    if (cd_offset > cd_end || cd_size != cd_end - cd_offset)
      fail("has a central directory that does not end where the end record says");
    if (count > cd_size / 46) fail("claims more entries than its central directory holds");
    const auto cd = read_at(cd_offset, cd_size);

    std::uint64_t pos = 0;
    std::vector<Entry> entries;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (cd_size - pos < 46 || le(&cd[pos], 4) != 0x02014b50) fail("has a broken central directory");
      const unsigned char* h = &cd[pos];
      Entry entry;
      const auto flags = le(h + 8, 2);
      entry.method = static_cast<std::uint16_t>(le(h + 10, 2));
      entry.crc = static_cast<std::uint32_t>(le(h + 16, 4));
      entry.compressed = le(h + 20, 4);
      entry.size = le(h + 24, 4);
      const auto name_len = le(h + 28, 2), extra_len = le(h + 30, 2), comment_len = le(h + 32, 2);
      entry.local_offset = le(h + 42, 4);
      if (cd_size - pos - 46 < name_len + extra_len + comment_len) fail("has a broken central directory");
      entry.name.assign(reinterpret_cast<const char*>(h + 46), name_len);
      zip64_sizes(h + 46 + name_len, extra_len, entry);
      pos += 46 + name_len + extra_len + comment_len;
      if (flags & 1) fail("has an encrypted entry '" + printable(entry.name) + "'");
      if (entry.method != 0 && entry.method != 8)
        fail("has entry '" + printable(entry.name) + "' in an unsupported compression method " +
             std::to_string(entry.method));
      entries.push_back(std::move(entry));
    }
    // One archive, one folder: LibTorch names every record "<archive>/…" and looks them up by
    // name, so a duplicate or a record from another archive means a spliced file.
    if (entries.empty()) fail("is an empty zip archive");
    std::set<std::string_view> names;
    for (const auto& entry : entries) {
      const auto top = [](std::string_view n) { return n.substr(0, n.find('/')); };
      if (entry.name.find('/') == std::string::npos || top(entry.name) != top(entries.front().name))
        fail("has entries of two archives ('" + printable(entries.front().name) + "', '" + printable(entry.name) +
             "')");
      if (!names.insert(entry.name).second) fail("has two entries named '" + printable(entry.name) + "'");
    }
    const auto archive = entries.front().name.substr(0, entries.front().name.find('/'));
    for (const char* record : {"/version", "/data.pkl"})
      if (!names.count(archive + record))
        fail("lacks the record '" + printable(archive + record) + "' of a torch archive");
    for (const auto& entry : entries) check_entry(entry, cd_offset);
  }

  /// The zip64 extended-information extra field replaces the 32-bit fields that read 0xFFFFFFFF.
  void zip64_sizes(const unsigned char* extra, std::uint64_t len, Entry& entry) {
    std::uint64_t p = 0;
    while (len - p >= 4) {
      const auto id = le(extra + p, 2), n = le(extra + p + 2, 2);
      if (len - p - 4 < n) fail("has a broken extra field in entry '" + printable(entry.name) + "'");
      if (id == 0x0001) {
        std::uint64_t q = p + 4;
        const auto take = [&](std::uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (q + 8 > p + 4 + n) fail("has a short zip64 field in entry '" + printable(entry.name) + "'");
          field = le(extra + q, 8);
          q += 8;
        };
        take(entry.size);
        take(entry.compressed);
        take(entry.local_offset);
      }
      p += 4 + n;
    }
  }

  void check_entry(const Entry& entry, std::uint64_t cd_offset) {
    const auto name = printable(entry.name);
    const auto local = read_at(entry.local_offset, 30);
    if (le(&local[0], 4) != 0x04034b50) fail("has a broken local header for entry '" + name + "'");
    const auto local_name = read_at(entry.local_offset + 30, le(&local[26], 2));
    if (!std::equal(local_name.begin(), local_name.end(), entry.name.begin(), entry.name.end()))
      fail("has entry '" + name + "' whose local header names another file");
    const std::uint64_t data = entry.local_offset + 30 + le(&local[26], 2) + le(&local[28], 2);
    if (data > cd_offset || entry.compressed > cd_offset - data)
      fail("has entry '" + name + "' whose data overlaps the central directory (truncated or spliced file?)");
    if (entry.method == 0 && entry.compressed != entry.size)
      fail("has stored entry '" + name + "' with two different sizes");
    const bool code = is_code(entry.name);
    if (code && entry.size > kMaxCodeBytes) fail("has an oversized class declaration '" + name + "'");
    std::string text;
    std::uint32_t crc = 0;
    std::uint64_t produced = 0;
    const auto consume = [&](const unsigned char* p, std::size_t n) {
      produced += n;
      if (produced > entry.size) fail("has entry '" + name + "' longer than its declared size");
      crc = static_cast<std::uint32_t>(::crc32(crc, p, static_cast<uInt>(n)));
      if (code) text.append(reinterpret_cast<const char*>(p), n);
    };
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(data));
    if (entry.method == 0)
      copy_stored(entry.compressed, consume);
    else
      inflate_raw(entry.compressed, name, consume);
    if (produced != entry.size) fail("has entry '" + name + "' shorter than its declared size");
    if (crc != entry.crc)
      fail("is corrupt: entry '" + name + "' fails its CRC-32 check (stored " + hex(entry.crc) + ", computed " +
           hex(crc) + ")");
    if (code) check_declarations(text, name);
  }

  template <class Consume>
  void copy_stored(std::uint64_t n, Consume& consume) {
    std::array<unsigned char, 1 << 16> buf;
    while (n > 0) {
      const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf.size()));
      in_.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(k));
      if (!in_) fail("cannot be read");
      consume(buf.data(), k);
      n -= k;
    }
  }

  template <class Consume>
  void inflate_raw(std::uint64_t n, const std::string& name, Consume& consume) {
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail("cannot be inflated (zlib)");
    struct End {
      z_stream* z;
      ~End() { inflateEnd(z); }
    } end{&z};
    std::array<unsigned char, 1 << 16> in_buf, out_buf;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      if (z.avail_in == 0) {
        if (n == 0) fail("has a deflated entry '" + name + "' that ends early");
        const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(n, in_buf.size()));
        in_.read(reinterpret_cast<char*>(in_buf.data()), static_cast<std::streamsize>(k));
        if (!in_) fail("cannot be read");
        z.next_in = in_buf.data();
        z.avail_in = static_cast<uInt>(k);
        n -= k;
      }
      z.next_out = out_buf.data();
      z.avail_out = static_cast<uInt>(out_buf.size());
      rc = inflate(&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END) fail("has a corrupt deflated entry '" + name + "'");
      consume(out_buf.data(), out_buf.size() - z.avail_out);
    }
  }

  static bool is_code(const std::string& name) {
    return name.find("/code/") != std::string::npos && name.size() > 3 && name.compare(name.size() - 3, 3, ".py") == 0;
  }

  /// The class declarations of a module archive, the only code LibTorch parses when it reads one:
  ///   class Module(Module):
  ///     __parameters__ = ["name", ... ]        (also __buffers__; __annotations__ = [])
  ///     name : Type                            (Tensor, int, str, Tuple[float, float], __torch__.X.Module, …)
  ///     __annotations__["key"] = Type
  /// Any other line — such as one bit-flipped into something LibTorch's parser mishandles — is refused.
  static void check_declarations(std::string_view text, const std::string& name) {
    std::size_t line_no = 0;
    while (!text.empty()) {
      const auto nl = text.find('\n');
      const auto line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
      ++line_no;
      if (!declaration(line))
        fail("has an unexpected line " + std::to_string(line_no) + " in its class declarations '" + name + "'");
    }
  }

  static bool declaration(std::string_view line) {
    if (line.empty() || line == "class Module(Module):" || line == "  __annotations__ = []") return true;
    const auto rest = [&](std::string_view prefix) -> std::optional<std::string_view> {
      if (line.substr(0, prefix.size()) != prefix) return std::nullopt;
      return line.substr(prefix.size());
    };
    if (auto list = rest("  __parameters__ = ["); list) return key_list(*list);
    if (auto list = rest("  __buffers__ = ["); list) return key_list(*list);
    if (auto entry = rest("  __annotations__[\""); entry) {
      const auto close = entry->find("\"] = ");
      return close != std::string_view::npos && key(entry->substr(0, close)) && type(entry->substr(close + 5));
    }
    if (line.substr(0, 2) != "  ") return false;
    const auto colon = line.find(" : ");
    return colon != std::string_view::npos && identifier(line.substr(2, colon - 2)) && type(line.substr(colon + 3));
  }
  // "k1", "k2", ]   or   ]
  static bool key_list(std::string_view s) {
    while (s != "]") {
      if (s.size() < 4 || s[0] != '"') return false;
      const auto close = s.find("\", ", 1);
      if (close == std::string_view::npos || !key(s.substr(1, close - 1))) return false;
      s = s.substr(close + 3);
    }
    return true;
  }
  static bool key(std::string_view s) {  // archive keys: names, "a/b", "0x…", "params/3"
    return !s.empty() && s.size() <= 256 && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '/' || c == '.' || c == '-';
    });
  }
  static bool identifier(std::string_view s) {
    return !s.empty() && s.size() <= 256 && !std::isdigit(static_cast<unsigned char>(s[0])) &&
           std::all_of(s.begin(), s.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
  }
  // Type := Name | Name "[" Type (", " Type)* "]", Name a dotted identifier; nesting ≤ 4.
  static bool type(std::string_view s, int depth = 0) {
    if (depth > 4) return false;
    const auto open = s.find('[');
    const auto head = s.substr(0, open);
    if (!dotted(head)) return false;
    if (open == std::string_view::npos) return true;
    if (s.back() != ']') return false;
    auto args = s.substr(open + 1, s.size() - open - 2);
    int level = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= args.size(); ++i) {
      if (i < args.size() && args[i] == '[') ++level;
      if (i < args.size() && args[i] == ']') --level;
      if (level < 0) return false;
      if (i == args.size() || (level == 0 && args.substr(i, 2) == ", ")) {
        if (!type(args.substr(start, i - start), depth + 1)) return false;
        start = i + 2;
        ++i;
      }
    }
    return level == 0;
  }
  static bool dotted(std::string_view s) {
    while (true) {
      const auto dot = s.find('.');
      if (!identifier(s.substr(0, dot))) return false;
      if (dot == std::string_view::npos) return true;
      s = s.substr(dot + 1);
    }
  }

  static std::string printable(const std::string& s) {
    std::string out;
    for (const char c : s.substr(0, 200)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
    return out;
  }
  static std::string hex(std::uint32_t v) {
    static const char* digits = "0123456789abcdef";
    std::string out = "0x";
    for (int shift = 28; shift >= 0; shift -= 4) out += digits[(v >> shift) & 0xF];
    return out;
  }

  std::ifstream in_;
  std::uint64_t size_ = 0;
  bool readable_ = false;
};

/// The first integrity problem of the zip archive `file` ("is corrupt: entry … fails its CRC-32
/// check", "is truncated …"), or nothing when it is sound. Reads the whole file once.
inline std::optional<std::string> zip_archive_problem(const std::filesystem::path& file) {
  return ZipReader(file).problem();
}

}  // namespace scoreflow::detail
