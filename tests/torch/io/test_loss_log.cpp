// CSV loss log: exact format, append across reopenings, crash recovery, strict reading.
#include <clocale>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "scoreflow/torch/io/loss_log.hpp"
#include "torch/data_helpers.hpp"

namespace test_loss_log {

using namespace scoreflow;
using sftest::check_io_error;

namespace {
std::string text(const std::filesystem::path& p) {
  const auto b = sftest::read_bytes(p);
  return std::string(b.begin(), b.end());
}
}  // namespace

TEST_CASE("loss_log: exact CSV, flushed per record, appended on reopen") {
  sftest::TempDir dir;
  const auto path = dir / "run" / "loss.csv";  // parent directory created on demand
  {
    LossLog log(path);
    log.write(0, 0, 0.5, 1e-3);
    // Flushed: visible before the log is closed.
    CHECK(text(path) == "step,epoch,loss,lr\n0,0,0.5,0.001\n");
    log.write({10, 1, 0.123456789012, 2.5e-4});
  }
  {
    LossLog again(path);  // Mode::append: no second header
    again.write(20, 2, 1.0 / 3.0, 0.0);
  }
  CHECK(text(path) == "step,epoch,loss,lr\n0,0,0.5,0.001\n10,1,0.123456789,0.00025\n20,2,0.333333333,0\n");
  const auto records = read_loss_log(path);
  REQUIRE(records.size() == 3);
  CHECK(records[1] == LossRecord{10, 1, 0.123456789, 0.00025});
  CHECK(records[2].loss == doctest::Approx(1.0 / 3.0).epsilon(1e-9));

  LossLog fresh(path, LossLog::Mode::truncate);
  fresh.write(5, 0, 2.0, 0.1);
  CHECK(text(path) == "step,epoch,loss,lr\n5,0,2,0.1\n");
}

TEST_CASE("loss_log: non-finite losses are recorded and read back") {
  sftest::TempDir dir;
  {
    LossLog log(dir / "l.csv");
    log.write(1, 0, std::nan(""), 0.1);
    log.write(2, 0, INFINITY, 0.1);
  }
  const auto r = read_loss_log(dir / "l.csv");
  REQUIRE(r.size() == 2);
  CHECK(std::isnan(r[0].loss));
  CHECK(std::isinf(r[1].loss));
}

TEST_CASE("loss_log: numbers ignore the C locale") {
  sftest::TempDir dir;
  // de_DE writes "0,5" with printf; <charconv> must not. Skip if no such locale is installed.
  const char* old = std::setlocale(LC_ALL, nullptr);
  const std::string saved = old ? old : "C";
  if (std::setlocale(LC_NUMERIC, "de_DE.UTF-8") == nullptr && std::setlocale(LC_NUMERIC, "de_DE") == nullptr) {
    MESSAGE("no German locale installed; the locale check is skipped");
    return;
  }
  {
    LossLog log(dir / "l.csv");
    log.write(1, 0, 0.5, 0.25);
  }
  std::setlocale(LC_ALL, saved.c_str());
  CHECK(text(dir / "l.csv") == "step,epoch,loss,lr\n1,0,0.5,0.25\n");
}

TEST_CASE("loss_log: an incomplete last line (crash) is skipped on read and cut on reopen") {
  sftest::TempDir dir;
  const auto path = dir / "l.csv";
  sftest::write_bytes(path, {});
  {
    std::ofstream out(path, std::ios::binary);
    out << "step,epoch,loss,lr\n1,0,0.5,0.1\n2,0,0.4";  // record 2 cut mid-write
  }
  CHECK(read_loss_log(path).size() == 1);
  {
    LossLog log(path);
    log.write(2, 0, 0.45, 0.1);
  }
  CHECK(text(path) == "step,epoch,loss,lr\n1,0,0.5,0.1\n2,0,0.45,0.1\n");
  // Even the header may be cut: the file is restarted.
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "step,ep";
  }
  CHECK(read_loss_log(path).empty());
  { LossLog log(path); }
  CHECK(text(path) == "step,epoch,loss,lr\n");
}

TEST_CASE("loss_log: files that are not loss logs are refused") {
  sftest::TempDir dir;
  {
    std::ofstream out(dir / "other.csv", std::ios::binary);
    out << "a,b\n1,2\n";
  }
  check_io_error([&] { LossLog log(dir / "other.csv"); }, dir / "other.csv", "not a loss log");
  check_io_error([&] { read_loss_log(dir / "other.csv"); }, dir / "other.csv", "first line is 'a,b'");
  {
    std::ofstream out(dir / "bad.csv", std::ios::binary);
    out << "step,epoch,loss,lr\n1,0,0.5,0.1\n2,0,x,0.1\n";
  }
  check_io_error([&] { read_loss_log(dir / "bad.csv"); }, dir / "bad.csv", "line 3");
  {
    std::ofstream out(dir / "extra.csv", std::ios::binary);
    out << "step,epoch,loss,lr\n1,0,0.5,0.1,9\n";
  }
  check_io_error([&] { read_loss_log(dir / "extra.csv"); }, dir / "extra.csv", "line 2");
  sftest::write_bytes(dir / "empty.csv", {});
  check_io_error([&] { read_loss_log(dir / "empty.csv"); }, dir / "empty.csv", "empty file");
  check_io_error([&] { read_loss_log(dir / "none.csv"); }, dir / "none.csv", "no such file");
  std::filesystem::create_directories(dir / "adir");
  check_io_error([&] { LossLog log(dir / "adir"); }, dir / "adir", "not a regular file");
}

TEST_CASE("loss_log: resume_loss_log cuts the records after the checkpoint's step, in place") {
  sftest::TempDir dir;
  const auto path = dir / "loss.csv";
  {
    LossLog log(path);
    for (int step = 1; step <= 5; ++step) log.write(step, 0, 1.0 / step, 0.1);
  }
  {
    auto log = resume_loss_log(path, 3);  // steps 4 and 5 came after the checkpoint
    CHECK(text(path) == "step,epoch,loss,lr\n1,0,1,0.1\n2,0,0.5,0.1\n3,0,0.333333333,0.1\n");
    log.write(4, 0, 0.25, 0.1);
  }
  CHECK(read_loss_log(path).size() == 4);
  CHECK(read_loss_log(path).back() == LossRecord{4, 0, 0.25, 0.1});
  {  // a record cut by the crash is dropped as well
    std::ofstream(path, std::ios::app) << "5,0,0.2";
    auto log = resume_loss_log(path, 4);
  }
  CHECK(text(path).ends_with("4,0,0.25,0.1\n"));
  // A log that stops before the checkpoint has lost records: refused, and left as it was.
  const auto before = text(path);
  check_io_error([&] { resume_loss_log(path, 9); }, path, "the log ends at step 4 but the run resumes from a checkpoint at step 9");
  CHECK(text(path) == before);
  // Step 0 (a fresh run) starts a new log.
  resume_loss_log(path, 0);
  CHECK(text(path) == "step,epoch,loss,lr\n");
}
}  // namespace test_loss_log
