#pragma once
// The Communicator (communicator.hpp) over PyTorch's c10d: a TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT, then ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA, where the
// LibTorch at hand was built with it). LibTorch's C++ frontend has no DistributedDataParallel;
// the gradient all-reduce on top of these collectives is gradient_buckets.hpp.
//
//   auto comm = scoreflow::distributed::connect(scoreflow::distributed::launch_environment());
//   // comm->rank(), comm->size(); TrainOptions{.communicator = comm} trains data-parallel
//
// Compile-time detection: CMake defines SCOREFLOW_HAS_C10D (and c10d's own USE_C10D_GLOO) when
// LibTorch's c10d headers and Gloo's headers (Debian: libgloo-dev) are found, and USE_C10D_NCCL
// when LibTorch was built with CUDA and nccl.h is found. Without c10d, connect() still serves a
// single process and refuses WORLD_SIZE > 1 with a clear error.
//
// Joining, before Gloo's own rendezvous (whose failures are a bare timeout): every rank
// registers under "scoreflow/rank/<r>" its WORLD_SIZE, host name and process id, and reads every
// other rank's record. So a WORLD_SIZE that differs between processes, two processes with one
// RANK, or a rank that never comes, is an error that says so, within the timeout. The records
// also let a survivor name the rank it lost: when a collective fails, the ranks on this host
// whose process is gone (or a zombie) are named in the distributed_error.
//
// Timeouts: the store's operations, Gloo's connection and every collective use
// GroupOptions::timeout; a collective's wait() is bounded by it too.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/distributed/communicator.hpp"
#include "scoreflow/torch/distributed/launch_environment.hpp"
#include "scoreflow/torch/torch_message.hpp"

#if defined(SCOREFLOW_HAS_C10D)
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace scoreflow::distributed {

/// Which c10d backend carries the collectives.
enum class Backend {
  automatic,  ///< NCCL for a CUDA device where compiled in, else Gloo
  gloo,       ///< CPU tensors (and CUDA tensors where Gloo was built with CUDA)
  nccl,       ///< CUDA tensors; needs USE_C10D_NCCL
};

struct GroupOptions {
  /// Bounds joining, every store operation and every collective: a lost or stalled peer is a
  /// distributed_error after at most this long, never a hang.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  Backend backend = Backend::automatic;
  /// Where the collectives' tensors live (Backend::automatic picks NCCL for CUDA).
  torch::Device device = torch::kCPU;
};

/// Whether this build can join a multi-process group (c10d with Gloo), and whether NCCL is in it.
#if defined(SCOREFLOW_HAS_C10D)
inline constexpr bool has_c10d = true;
#else
inline constexpr bool has_c10d = false;
#endif
#if defined(SCOREFLOW_HAS_C10D) && defined(USE_C10D_NCCL)
inline constexpr bool has_nccl = true;
#else
inline constexpr bool has_nccl = false;
#endif

namespace detail {
inline std::string this_host() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

/// Whether process `pid` on this host has ended (gone, or a zombie not yet reaped). Never throws:
/// it runs while a collective's error is being reported, and the process may vanish meanwhile.
inline bool process_gone(long pid) noexcept {
  if (pid <= 0) return false;
  if (kill(static_cast<pid_t>(pid), 0) != 0) return errno == ESRCH;
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return errno == ENOENT || errno == ESRCH;
  char text[512];
  const ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return true;  // the process went away while we read
  text[n] = '\0';
  const char* close_paren = std::strrchr(text, ')');  // the name may hold spaces and parentheses
  return close_paren != nullptr && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

inline bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

inline std::string seconds_text(std::chrono::milliseconds t) {
  return scoreflow::detail::concat(static_cast<double>(t.count()) / 1000.0, " s");
}
}  // namespace detail

#if defined(SCOREFLOW_HAS_C10D)

/// A c10d process group of LaunchEnvironment::world_size processes. Made by connect().
class ProcessGroup final : public Communicator {
 public:
  ProcessGroup(const LaunchEnvironment& env, GroupOptions options)
      : env_(env), options_(options), host_(detail::this_host()) {
    if (env_.world_size < 2) throw invalid_option("ProcessGroup: WORLD_SIZE must be ≥ 2 (connect() serves one process)");
    open_store();
    join();
    open_backend();
  }

  [[nodiscard]] int rank() const override { return env_.rank; }
  [[nodiscard]] int size() const override { return env_.world_size; }
  [[nodiscard]] const GroupOptions& options() const { return options_; }
  [[nodiscard]] const char* backend_name() const { return nccl_ ? "nccl" : "gloo"; }

  void all_reduce_sum(std::vector<torch::Tensor>& tensors, std::string_view what) override {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    run(what, [&] {
      for (auto& t : tensors) {
        std::vector<at::Tensor> one{t};
        works.push_back(with_backend([&](auto& b) { return b.allreduce(one, sum()); }));
      }
      for (auto& w : works) finish(*w);
    });
  }

  std::unique_ptr<PendingCollective> all_reduce_sum_async(torch::Tensor tensor, std::string_view what) override {
    struct Pending final : PendingCollective {
      ProcessGroup* group;
      std::string what;
      std::vector<at::Tensor> tensors;
      c10::intrusive_ptr<c10d::Work> work;
      void wait() override {
        group->run(what, [&] { group->finish(*work); });
      }
    };
    auto p = std::make_unique<Pending>();
    p->group = this;
    p->what = std::string(what);
    p->tensors = {std::move(tensor)};
    run(what, [&] { p->work = with_backend([&](auto& b) { return b.allreduce(p->tensors, sum()); }); });
    return p;
  }

  void broadcast(std::vector<torch::Tensor>& tensors, int root, std::string_view what) override {
    if (root < 0 || root >= size())
      throw invalid_option(scoreflow::detail::concat(what, ": broadcast root = ", root, ": must lie in [0, ", size(), ")"));
    run(what, [&] {
      for (auto& t : tensors) {
        std::vector<at::Tensor> one{t};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        finish(*with_backend([&](auto& b) { return b.broadcast(one, o); }));
      }
    });
  }

  std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor, std::string_view what) override {
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < size(); ++r) outputs[0].push_back(torch::empty_like(tensor));
    std::vector<at::Tensor> input{tensor.contiguous()};
    run(what, [&] { finish(*with_backend([&](auto& b) { return b.allgather(outputs, input); })); });
    return outputs[0];
  }

  void barrier(std::string_view what) override {
    run(what, [&] { finish(*with_backend([&](auto& b) { return b.barrier(); })); });
  }

  /// The ranks on this host whose process has ended, as "rank 1 (pid 4242)" (empty: none found).
  [[nodiscard]] std::string lost_ranks() const {
    std::string out;
    for (int r = 0; r < size(); ++r) {
      const auto& p = peers_[static_cast<std::size_t>(r)];
      if (r != rank() && p.host == host_ && detail::process_gone(p.pid))
        out += (out.empty() ? "" : ", ") + scoreflow::detail::concat("rank ", r, " (pid ", p.pid, ")");
    }
    return out;
  }

 private:
  struct Peer {
    int world = 0;
    std::string host;
    long pid = 0;
  };

  static c10d::AllreduceOptions sum() {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    return o;
  }

  template <class Fn>
  c10::intrusive_ptr<c10d::Work> with_backend(Fn&& fn) {
#if defined(USE_C10D_NCCL)
    if (nccl_) return fn(*nccl_);
#endif
    return fn(*gloo_);
  }

  void finish(c10d::Work& work) const {
    if (!work.wait(options_.timeout))
      throw distributed_error(scoreflow::detail::concat("did not finish within ", detail::seconds_text(options_.timeout)));
  }

  /// Runs a collective; any failure becomes a distributed_error naming it and the lost ranks.
  template <class Fn>
  void run(std::string_view what, Fn&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      // A killed peer's sockets close before its process turns into a zombie: give it a moment.
      std::string lost = lost_ranks();
      for (int i = 0; i < 40 && lost.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
        lost = lost_ranks();
      }
      throw distributed_error(scoreflow::detail::concat(
          what, " failed on rank ", rank(), " of ", size(), ": ",
          lost.empty() ? "no peer process on this host has exited: a peer stalled past the timeout of " +
                             detail::seconds_text(options_.timeout) + ", or one on another host is gone"
                       : "lost " + lost + ": its process has exited",
          " [", backend_name(), ": ", scoreflow::detail::torch_message(e), "]"));
    }
  }

  void open_store() {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env_.master_port);
    so.isServer = env_.rank == 0 && !env_.agent_store;
    so.numWorkers = static_cast<std::size_t>(env_.world_size);
    so.waitWorkers = false;  // join() waits, with errors that name the missing rank
    so.timeout = options_.timeout;
    try {
      c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, so);
      store_ = tcp;
      if (!env_.store_prefix.empty()) store_ = c10::make_intrusive<c10d::PrefixStore>(env_.store_prefix, tcp);
    } catch (const std::exception& e) {
      throw distributed_error(scoreflow::detail::concat(
          "rank ", env_.rank, ": ",
          so.isServer ? "cannot serve the rendezvous store on port " : "cannot reach the rendezvous store at ",
          so.isServer ? std::to_string(env_.master_port) : env_.master_addr + ":" + std::to_string(env_.master_port),
          " within ", detail::seconds_text(options_.timeout),
          so.isServer ? " (MASTER_PORT in use by another run?)"
                      : " (MASTER_ADDR / MASTER_PORT: is rank 0 running and reachable?)",
          " [", scoreflow::detail::torch_message(e), "]"));
    }
  }

  void join() {
    const std::string key = "scoreflow/rank/" + std::to_string(env_.rank);
    const std::string record =
        scoreflow::detail::concat(env_.world_size, " ", host_, " ", static_cast<long>(getpid()));
    try {
      if (store_->add(key + "/claimed", 1) != 1)
        throw distributed_error(scoreflow::detail::concat("two processes were started with RANK = ", env_.rank,
                                                          ": each rank must be given to exactly one process"));
      store_->set(key, std::vector<std::uint8_t>(record.begin(), record.end()));
      peers_.resize(static_cast<std::size_t>(env_.world_size));
      for (int r = 0; r < env_.world_size; ++r) {
        const std::string other = "scoreflow/rank/" + std::to_string(r);
        try {
          store_->wait({other}, options_.timeout);
        } catch (const std::exception&) {
          throw distributed_error(scoreflow::detail::concat(
              "rank ", r, " did not join within ", detail::seconds_text(options_.timeout), " (this is rank ", env_.rank,
              " of WORLD_SIZE = ", env_.world_size, "): is it running, with the same WORLD_SIZE, MASTER_ADDR and "
              "MASTER_PORT?"));
        }
        const auto bytes = store_->get(other);
        std::istringstream in(std::string(bytes.begin(), bytes.end()));
        Peer p;
        in >> p.world >> p.host >> p.pid;
        if (p.world != env_.world_size)
          throw distributed_error(scoreflow::detail::concat("rank ", r, " was started with WORLD_SIZE = ", p.world,
                                                            ", this process (rank ", env_.rank, ") with WORLD_SIZE = ",
                                                            env_.world_size, ": every process needs the same"));
        peers_[static_cast<std::size_t>(r)] = p;
      }
    } catch (const distributed_error&) {
      throw;
    } catch (const std::exception& e) {
      throw distributed_error(scoreflow::detail::concat(
          "rank ", env_.rank, " lost the rendezvous store at ", env_.master_addr, ":", env_.master_port,
          " while joining (rank 0, which serves it, has exited?) [", scoreflow::detail::torch_message(e), "]"));
    }
  }

  void open_backend() {
    const bool want_nccl = options_.backend == Backend::nccl ||
                           (options_.backend == Backend::automatic && options_.device.is_cuda() && has_nccl);
    run("connecting the process group", [&] {
      if (want_nccl) {
#if defined(USE_C10D_NCCL)
        auto o = c10d::ProcessGroupNCCL::Options::create();
        o->timeout = options_.timeout;
        nccl_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store_),
                                                            env_.rank, env_.world_size, o);
        return;
#else
        throw invalid_option("Backend::nccl: this LibTorch build has no NCCL (USE_C10D_NCCL is not defined)");
#endif
      }
      auto o = c10d::ProcessGroupGloo::Options::create(options_.timeout);
      if (!env_.socket_ifname.empty())
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(env_.socket_ifname));
      else if (detail::is_loopback(env_.master_addr))
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      gloo_ = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store_),
                                                          env_.rank, env_.world_size, o);
    });
  }

  LaunchEnvironment env_;
  GroupOptions options_;
  std::string host_;
  std::vector<Peer> peers_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo_;
#if defined(USE_C10D_NCCL)
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl_;
#else
  std::nullptr_t nccl_ = nullptr;
#endif
};

#endif  // SCOREFLOW_HAS_C10D

/// The group of this launch: SingleProcess for WORLD_SIZE 1 (or unset), else a c10d
/// ProcessGroup, joined within options.timeout. distributed_error when joining fails.
inline std::shared_ptr<Communicator> connect(const LaunchEnvironment& env, GroupOptions options = {}) {
  if (options.timeout.count() <= 0)
    throw invalid_option(scoreflow::detail::concat("GroupOptions::timeout = ", options.timeout.count(),
                                                   " ms: must be positive"));
  if (!env.is_distributed()) return std::make_shared<SingleProcess>();
#if defined(SCOREFLOW_HAS_C10D)
  return std::make_shared<ProcessGroup>(env, options);
#else
  throw distributed_error(scoreflow::detail::concat(
      "WORLD_SIZE = ", env.world_size, ": this build of scoreflow has no c10d process groups (LibTorch's c10d or "
      "Gloo's headers were not found at configure time; on Debian install libgloo-dev and reconfigure)"));
#endif
}

}  // namespace scoreflow::distributed
