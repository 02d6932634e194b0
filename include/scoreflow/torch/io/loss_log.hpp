#pragma once
// A training loss log as CSV: `step,epoch,loss,lr`, one record per line.
//
// Each record is flushed as it is written, so the file can be plotted while training runs and
// survives a crash up to the last completed line. Reopening appends (a resumed run continues
// the same curve); a last line left incomplete by a crash is cut off first, so the file stays
// well formed. Numbers are written and parsed with <charconv>, which ignores the C locale (a
// program that called setlocale could otherwise write "0,5" into a comma-separated file).
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "scoreflow/torch/io/io_error.hpp"

namespace scoreflow {

struct LossRecord {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  double loss = 0.0;
  double lr = 0.0;
  bool operator==(const LossRecord&) const = default;
};

inline constexpr std::string_view kLossLogHeader = "step,epoch,loss,lr";

namespace detail {
template <class Number>
void append_number(std::string& line, Number value) {
  char buffer[64];
  std::to_chars_result r;
  if constexpr (std::is_floating_point_v<Number>) r = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::general, 9);
  else r = std::to_chars(buffer, buffer + sizeof buffer, value);
  line.append(buffer, r.ptr);
}

/// The file's first line (without '\n') and the offset just past its last '\n' (0 if none).
inline std::pair<std::string, std::uintmax_t> first_line_and_last_newline(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_io(path, "cannot open for reading");
  std::string first;
  std::getline(in, first);
  in.clear();
  in.seekg(0, std::ios::end);
  std::uintmax_t end = static_cast<std::uintmax_t>(in.tellg());
  // Scan backwards in blocks for the last newline.
  char block[4096];
  while (end > 0) {
    const auto n = std::min<std::uintmax_t>(end, sizeof block);
    in.seekg(static_cast<std::streamoff>(end - n));
    in.read(block, static_cast<std::streamsize>(n));
    for (auto i = n; i > 0; --i)
      if (block[i - 1] == '\n') return {first, end - n + i};
    end -= n;
  }
  return {first, 0};
}
}  // namespace detail

class LossLog {
 public:
  enum class Mode { append, truncate };

  /// Opens (creating the parent directories and the header as needed) a loss log. With
  /// Mode::append an existing file must start with the header `step,epoch,loss,lr`.
  explicit LossLog(std::filesystem::path path, Mode mode = Mode::append) : path_(std::move(path)) {
    std::error_code ec;
    if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path(), ec);
    bool need_header = true;
    const bool exists = std::filesystem::exists(path_, ec);
    if (exists && !std::filesystem::is_regular_file(path_, ec)) detail::throw_io(path_, "exists but is not a regular file");
    const auto size = exists ? std::filesystem::file_size(path_, ec) : 0;
    if (ec) detail::throw_io(path_, "cannot get the size: ", ec.message());
    if (mode == Mode::append && size > 0) {
      auto [first, complete] = detail::first_line_and_last_newline(path_);
      if (complete < size) {
        // A record cut short by a crash: drop it rather than glue the next record onto it.
        std::filesystem::resize_file(path_, complete, ec);
        if (ec) detail::throw_io(path_, "cannot cut off the incomplete last line: ", ec.message());
      }
      if (complete > 0) {
        if (first != kLossLogHeader)
          detail::throw_io(path_, "exists but is not a loss log: first line is '", first, "', expected '",
                           kLossLogHeader, "'");
        need_header = false;
      }
    }
    out_.open(path_, mode == Mode::append ? std::ios::app | std::ios::binary : std::ios::trunc | std::ios::binary);
    if (!out_) detail::throw_io(path_, "cannot open for writing");
    if (need_header) {
      out_ << kLossLogHeader << '\n';
      flush();
    }
  }

  const std::filesystem::path& path() const { return path_; }

  /// Appends one record and flushes it to the file.
  void write(const LossRecord& r) {
    std::string line;
    detail::append_number(line, r.step);
    line += ',';
    detail::append_number(line, r.epoch);
    line += ',';
    detail::append_number(line, r.loss);
    line += ',';
    detail::append_number(line, r.lr);
    line += '\n';
    out_ << line;
    flush();
  }
  void write(std::int64_t step, std::int64_t epoch, double loss, double lr) { write(LossRecord{step, epoch, loss, lr}); }

 private:
  void flush() {
    out_.flush();
    if (!out_) detail::throw_io(path_, "writing failed (disk full?)");
  }

  std::filesystem::path path_;
  std::ofstream out_;
};

namespace detail {
/// Parses `content` (the whole file) into records, each with the offset just past its line.
/// A last line without '\n' is a record still being written (or cut by a crash) and is skipped;
/// any other malformed line is an io_error with its number.
inline std::vector<std::pair<LossRecord, std::size_t>> parse_loss_log(const std::filesystem::path& path,
                                                                      const std::string& content) {
  std::vector<std::pair<LossRecord, std::size_t>> records;
  std::size_t start = 0;
  for (std::size_t number = 1;; ++number) {
    const auto end = content.find('\n', start);
    if (end == std::string::npos) break;
    std::string_view line(content.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    start = end + 1;
    if (number == 1) {
      if (line != kLossLogHeader)
        throw_io(path, "not a loss log: first line is '", line, "', expected '", kLossLogHeader, "'");
      continue;
    }
    LossRecord r;
    const char* p = line.data();
    const char* stop = line.data() + line.size();
    bool ok = true;
    const auto field = [&](auto& value, bool last) {
      if (!ok) return;
      const auto res = std::from_chars(p, stop, value);
      ok = res.ec == std::errc() && (last ? res.ptr == stop : (res.ptr != stop && *res.ptr == ','));
      p = res.ptr + (last ? 0 : 1);
    };
    field(r.step, false);
    field(r.epoch, false);
    field(r.loss, false);
    field(r.lr, true);
    if (!ok) throw_io(path, "line ", number, " is not 'step,epoch,loss,lr': '", line, "'");
    records.emplace_back(r, start);
  }
  if (start == 0) {  // not even the header line is complete
    if (content.empty()) throw_io(path, "empty file, not a loss log");
    if (!kLossLogHeader.starts_with(content))
      throw_io(path, "not a loss log: starts with '", content.substr(0, 40), "'");
  }
  return records;
}

inline std::string read_whole_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw_io(path, "no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_io(path, "cannot open for reading");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace detail

/// All complete records of a loss log. A last line without '\n' is a record still being written
/// (or cut by a crash) and is skipped; any other malformed line is an io_error with its number.
inline std::vector<LossRecord> read_loss_log(const std::filesystem::path& path) {
  std::vector<LossRecord> records;
  for (const auto& [record, end] : detail::parse_loss_log(path, detail::read_whole_file(path))) records.push_back(record);
  return records;
}

/// The loss log of a run that resumes from its checkpoint at `step` (0: a fresh run, which starts
/// a new log). Records after `step`, written by the interrupted process after its last checkpoint,
/// are cut off, so that the resumed run neither loses nor repeats a step. The cut is a single
/// truncation of the file, not a rewrite: a process killed during it leaves the log either as it
/// was or cut, and both resume correctly. A log that stops before `step` has lost records (it was
/// not written alongside this checkpoint): an io_error, rather than a curve with a silent gap.
inline LossLog resume_loss_log(const std::filesystem::path& path, std::int64_t step) {
  std::error_code ec;
  if (step == 0 || !std::filesystem::exists(path, ec)) return LossLog(path, LossLog::Mode::truncate);
  const auto records = detail::parse_loss_log(path, detail::read_whole_file(path));
  std::size_t keep = records.empty() ? kLossLogHeader.size() + 1 : 0;
  std::int64_t last = 0;
  for (const auto& [record, end] : records) {
    if (record.step > step) break;
    keep = end;
    last = record.step;
  }
  if (last != step)
    detail::throw_io(path, "the log ends at step ", last, " but the run resumes from a checkpoint at step ", step,
                     " (the log and the checkpoint come from different runs?)");
  std::filesystem::resize_file(path, keep, ec);
  if (ec) detail::throw_io(path, "cannot cut off the records after step ", step, ": ", ec.message());
  return LossLog(path, LossLog::Mode::append);
}

}  // namespace scoreflow
