// The distributed layer's pieces that need no second process (the multi-process cases are
// tests/distributed/dist_test.cpp): torchrun's variables, shards, gathering, the sharded random
// stream, and the gradient buckets against a stand-in communicator.
#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "scoreflow/torch/distributed/communicator.hpp"
#include "scoreflow/torch/distributed/gradient_buckets.hpp"
#include "scoreflow/torch/distributed/launch_environment.hpp"
#include "scoreflow/torch/distributed/process_group.hpp"
#include "scoreflow/torch/training/training_rng.hpp"

namespace test_distributed {

namespace dist = scoreflow::distributed;

namespace {
dist::LaunchEnvironment env_of(const std::map<std::string, std::string>& vars) {
  return dist::launch_environment([&](const char* name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    env_of(vars);
  } catch (const scoreflow::invalid_option& e) {
    return e.what();
  }
  return "";
}

/// Rank 0 of two whose peer holds exactly what this rank holds: every sum doubles. Records the
/// collectives in the order issued, and whether each bucket's started before finish().
class MirrorPeer final : public dist::Communicator {
 public:
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 2; }
  void all_reduce_sum(std::vector<torch::Tensor>& tensors, std::string_view what) override {
    for (auto& t : tensors) t.mul_(2);
    issued.emplace_back(what);
  }
  std::unique_ptr<dist::PendingCollective> all_reduce_sum_async(torch::Tensor t, std::string_view what) override {
    issued.emplace_back(what);
    started_during_backward.push_back(in_backward);
    struct Pending final : dist::PendingCollective {
      torch::Tensor t;
      void wait() override { t.mul_(2); }
    };
    auto p = std::make_unique<Pending>();
    p->t = std::move(t);
    return p;
  }
  void broadcast(std::vector<torch::Tensor>&, int, std::string_view what) override { issued.emplace_back(what); }
  std::vector<torch::Tensor> all_gather(const torch::Tensor& t, std::string_view) override { return {t, t}; }
  void barrier(std::string_view) override {}

  std::vector<std::string> issued;
  std::vector<bool> started_during_backward;
  bool in_backward = false;
};

/// A small net with parameters of several sizes, and one unused in forward (registered first, so
/// in the last bucket: buckets start strictly in order, so an unused parameter holds back its
/// bucket and every later one until finish()).
struct SmallNet : torch::nn::Module {
  SmallNet() {
    unused = register_parameter("unused", torch::ones({4}));
    a = register_module("a", torch::nn::Linear(6, 16));
    b = register_module("b", torch::nn::Linear(16, 16));
    c = register_module("c", torch::nn::Linear(16, 3));
  }
  torch::Tensor forward(const torch::Tensor& x) { return c(torch::tanh(b(torch::tanh(a(x))))); }
  torch::nn::Linear a{nullptr}, b{nullptr}, c{nullptr};
  torch::Tensor unused;
};
}  // namespace

TEST_CASE("launch_environment reads torchrun's variables and names what is wrong") {
  const auto single = env_of({});
  CHECK(single.world_size == 1);
  CHECK_FALSE(single.is_distributed());

  const auto e = env_of({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.2"},
                         {"MASTER_PORT", "29501"}, {"GLOO_SOCKET_IFNAME", "eth1"}});
  CHECK(e.rank == 1);
  CHECK(e.world_size == 4);
  CHECK(e.local_rank == 1);
  CHECK(e.master_addr == "10.0.0.2");
  CHECK(e.master_port == 29501);
  CHECK(e.socket_ifname == "eth1");
  CHECK_FALSE(e.agent_store);

  const auto agent = env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"},
                             {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "3"}});
  CHECK(agent.agent_store);
  CHECK(agent.store_prefix == "/worker/attempt_3");
  CHECK(agent.local_rank == 0);  // LOCAL_RANK unset: RANK

  const std::map<std::string, std::string> ok{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}};
  auto with = [&](const std::string& k, const std::string& v) {
    auto m = ok;
    m[k] = v;
    return m;
  };
  auto without = [&](const std::string& k) {
    auto m = ok;
    m.erase(k);
    return m;
  };
  CHECK(error_of(without("WORLD_SIZE")).find("RANK is set but WORLD_SIZE is not") != std::string::npos);
  CHECK(error_of(without("RANK")).find("WORLD_SIZE is set but RANK is not") != std::string::npos);
  CHECK(error_of(with("RANK", "2")).find("RANK = 2: must lie in [0, 1]") != std::string::npos);
  CHECK(error_of(with("RANK", "-1")).find("RANK = -1") != std::string::npos);
  CHECK(error_of(with("RANK", "x1")).find("RANK = 'x1': not an integer") != std::string::npos);
  CHECK(error_of(with("WORLD_SIZE", "0")).find("WORLD_SIZE = 0") != std::string::npos);
  CHECK(error_of(with("MASTER_PORT", "70000")).find("MASTER_PORT = 70000") != std::string::npos);
  CHECK(error_of(without("MASTER_PORT")).find("MASTER_PORT is not set") != std::string::npos);
  CHECK(error_of(without("MASTER_ADDR")).find("MASTER_ADDR is not set") != std::string::npos);
  CHECK(error_of(with("LOCAL_RANK", "5")).find("LOCAL_RANK = 5") != std::string::npos);
  CHECK(error_of(ok).empty());
}

TEST_CASE("connect: one process needs no c10d; a timeout must be positive") {
  auto comm = dist::connect(dist::LaunchEnvironment{});
  CHECK(comm->size() == 1);
  CHECK(comm->is_main());
  dist::GroupOptions bad;
  bad.timeout = std::chrono::milliseconds(0);
  CHECK_THROWS_AS(dist::connect(dist::LaunchEnvironment{}, bad), scoreflow::invalid_option);
}

TEST_CASE("shard_of splits rows contiguously in rank order, sizes within one") {
  for (std::int64_t count = 0; count <= 23; ++count)
    for (int world = 1; world <= 5; ++world) {
      std::int64_t next = 0, smallest = count, largest = 0;
      for (int r = 0; r < world; ++r) {
        const auto s = dist::shard_of(count, r, world);
        CHECK(s.begin == next);
        next = s.end;
        smallest = std::min(smallest, s.size());
        largest = std::max(largest, s.size());
      }
      CHECK(next == count);
      CHECK(largest - smallest <= 1);
    }
  CHECK_THROWS(dist::shard_of(4, 2, 2));
  CHECK_THROWS(dist::shard_of(4, 0, 0));
  CHECK_THROWS(dist::shard_of(-1, 0, 1));
}

TEST_CASE("gather_shards: one process returns its rows; a wrong row count is named") {
  dist::SingleProcess one;
  const auto x = torch::arange(12).view({3, 4});
  CHECK(torch::equal(dist::gather_shards(one, x, 3, "test"), x));
  CHECK_THROWS_WITH_AS(dist::gather_shards(one, x, 5, "gathering"), doctest::Contains("holds 3 rows, its shard of 5 is 5"),
                       std::invalid_argument);
}

TEST_CASE("TrainingRng::set_shard draws the global batch's numbers and keeps the shard's rows") {
  scoreflow::training::TrainingRng whole(7), part(7);
  const auto x_global = torch::zeros({10, 1, 3, 3}), x_local = torch::zeros({4, 1, 3, 3});
  const auto cpu = torch::TensorOptions().dtype(torch::kFloat32);
  const auto g_normal = whole.normal_like(x_global);
  const auto g_uniform = whole.uniform(10, cpu);
  const auto g_gauss = whole.normal(10, cpu);
  const auto g_int = whole.integers(10, 1000);
  part.set_shard(3, 4, 10);
  CHECK(torch::equal(part.normal_like(x_local), g_normal.narrow(0, 3, 4)));
  CHECK(torch::equal(part.uniform(4, cpu), g_uniform.narrow(0, 3, 4)));
  CHECK(torch::equal(part.normal(4, cpu), g_gauss.narrow(0, 3, 4)));
  CHECK(torch::equal(part.integers(4, 1000), g_int.narrow(0, 3, 4)));
  // A draw of another leading size is not per row: drawn as asked, on both alike.
  CHECK(torch::equal(part.uniform(2, cpu), whole.uniform(2, cpu)));
  part.clear_shard();
  CHECK(torch::equal(part.normal(10, cpu), whole.normal(10, cpu)));  // the streams stayed in step
  CHECK_THROWS(part.set_shard(8, 4, 10));
  CHECK_THROWS(part.set_shard(0, 0, 10));
}

TEST_CASE("GradientBuckets: every gradient summed over ranks, buckets in order, overlapped with backward") {
  for (bool overlap : {true, false}) {
    CAPTURE(overlap);
    torch::manual_seed(0);
    auto net = std::make_shared<SmallNet>();
    const auto x = torch::randn({5, 6});
    // The single-process gradients, for reference.
    net->zero_grad();
    net->forward(x).square().sum().backward();
    std::vector<torch::Tensor> reference;
    for (auto& p : net->parameters()) reference.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor{});

    auto comm = std::make_shared<MirrorPeer>();
    // 256-byte buckets: several, so that order and overlap show.
    dist::GradientBuckets buckets(net->parameters(), comm,
                                  {.bucket_bytes = 256, .first_bucket_bytes = 128, .overlap_with_backward = overlap});
    CHECK(buckets.bucket_count() >= 4);
    CHECK(buckets.elements() == 6 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3 + 4);
    for (auto& p : net->parameters())
      if (p.grad().defined()) p.mutable_grad().zero_();
    buckets.begin(1);
    comm->in_backward = true;
    net->forward(x).square().sum().backward();
    comm->in_backward = false;
    buckets.finish();
    std::size_t i = 0;
    for (auto& p : net->parameters()) {
      if (reference[i].defined())
        CHECK(torch::allclose(p.grad(), 2 * reference[i]));
      else
        CHECK_FALSE(p.grad().defined());  // the unused parameter keeps no gradient
      ++i;
    }
    REQUIRE(comm->issued.size() == buckets.bucket_count());
    for (std::size_t k = 0; k < comm->issued.size(); ++k)
      CHECK(comm->issued[k].find("gradient bucket " + std::to_string(k + 1) + " of ") == 0);
    std::size_t during = 0;
    for (bool b : comm->started_during_backward) during += b ? 1 : 0;
    if (overlap)
      CHECK(during == buckets.bucket_count() - 1);  // all but the bucket holding the unused parameter
    else
      CHECK(during == 0);
  }
}
}  // namespace test_distributed
