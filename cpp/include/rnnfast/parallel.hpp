// Thread-count control and the static split of hidden units across threads used by the recurrent kernels.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <thread>
#include <type_traits>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace rnnfast {

// rnnfast's own process-wide setting, passed explicitly to every parallel region (and to Eigen's GEMM): the
// OpenMP runtime's setting is per calling thread and shared with other libraries (torch.set_num_threads would
// change ours, and ours theirs). It starts from the runtime's default: OMP_NUM_THREADS, else the usable cores.
inline std::atomic<int>& thread_setting() {
#ifdef _OPENMP
  static std::atomic<int> threads{omp_get_max_threads()};
#else
  static std::atomic<int> threads{1};
#endif
  return threads;
}

inline int max_threads() { return thread_setting().load(); }

inline void set_num_threads(int n) {
  n = std::max(1, n);
  thread_setting().store(n);
  Eigen::setNbThreads(n);
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

inline bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// The barrier between the time steps of a recurrent kernel (hundreds per call). A thread that arrives early spins
// for a few microseconds, which covers the usual imbalance of a step when each thread has its own core, and then
// sleeps in the kernel. An OpenMP barrier instead spins for milliseconds (libgomp: 300,000 pauses unless
// OMP_WAIT_POLICY says otherwise), and when another process holds one of the cores, the spinning thread burns the
// time slice the late thread needs: a 2x slowdown becomes 8x. The OpenMP runtime's policy cannot be changed here:
// it is read once per process, from the environment, and is shared with every other library that uses OpenMP.
class StepBarrier {
 public:
  // Every thread of the enclosing parallel region calls it; it returns once all of them have.
  void wait() {
    const int team = team_size();
    if (team == 1) return;
    const uint32_t generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == team - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_seq_cst);
      if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_all();
      return;
    }
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    do {
      for (int i = 0; i < 64; ++i) {
        if (generation_.load(std::memory_order_acquire) != generation) return;
        pause();
      }
    } while (std::chrono::steady_clock::now() < spin_until);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    while (generation_.load(std::memory_order_seq_cst) == generation) sleep_while(generation);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  static constexpr std::chrono::microseconds kSpin{50};

  static void pause() {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#endif
  }

  // Returns when woken, or at once if the generation has already moved on (the kernel compares atomically).
  void sleep_while(uint32_t generation) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&generation_), FUTEX_WAIT_PRIVATE, generation, nullptr, nullptr, 0);
#else
    (void)generation;
    std::this_thread::yield();
#endif
  }

  void wake_all() {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&generation_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#endif
  }

  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "the futex word is the atomic itself");
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> arrived_{0};
  std::atomic<int> sleepers_{0};
};

// Cores taken by other processes. A team whose threads meet at every time step runs at the pace of its slowest
// thread, and a thread that shares its core with another busy process runs half the time, while its partners
// sleep at the barrier: measured on 2 cores with one of them busy, a 2x256 LSTM training step took 690 ms with
// 2 threads and 563 ms with 1 (quiet: 376 ms with 2), 2x512 generation 91-115 ms with 2 and 61-64 ms with 1.
// So the recurrent kernels measure the parallelism each call achieved (the CPU time of its threads over its
// wall time: 1.8-2.0 for two threads on a quiet machine, 0.93-1.06 with one core busy), and while a call gets
// clearly less than its team, every kernel runs with the cores it did get. Now and then one call tries the whole
// team again, and the limit goes when that call gets nearly all of it. Results do not depend on the thread count,
// only speed does.
namespace contention {

using Clock = std::chrono::steady_clock;
constexpr int64_t kFirstRetryNs = 250'000'000;   // a quarter of a second, doubled while the load persists ...
constexpr int64_t kLastRetryNs = 8'000'000'000;  // ... up to 8 seconds
// A call whose parallelism falls short of its team by more than kShortfall lowers the limit; a retry lifts it only
// if it falls short by less than kRetryShortfall (a margin, so that a borderline retry does not flip the team
// back and forth).
constexpr double kShortfall = 0.5;
constexpr double kRetryShortfall = 0.35;

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

struct State {
  std::atomic<int> limit{0};  // 0: none
  std::atomic<int64_t> retry_at_ns{0};
  std::atomic<int64_t> retry_interval_ns{kFirstRetryNs};
};

inline State& state() {
  static State s;
  return s;
}

// The setting, lowered while a limit holds.
inline int limited_threads(int setting) {
  const int limit = state().limit.load(std::memory_order_relaxed);
  return limit == 0 ? setting : std::min(limit, setting);
}

// The threads a kernel may use at time `now`: the limited count, or the whole setting when a retry is due.
inline int usable_threads(int setting, int64_t now) {
  return now >= state().retry_at_ns.load(std::memory_order_relaxed) ? setting : limited_threads(setting);
}

// What one call of a `team`-thread kernel achieved: `parallelism` = its threads' CPU time / its wall time. A call
// by a team larger than the limit is a retry.
inline void record(int team, double parallelism, int64_t now) {
  State& s = state();
  if (team <= 1) return;
  const int limit = s.limit.load(std::memory_order_relaxed);
  const bool retry = limit != 0 && team > limit;
  if (retry && parallelism >= team - kRetryShortfall) {
    s.limit.store(0, std::memory_order_relaxed);
    s.retry_interval_ns.store(kFirstRetryNs, std::memory_order_relaxed);
  } else if (retry || parallelism < team - kShortfall) {
    const int64_t interval =
        retry ? std::min(kLastRetryNs, 2 * s.retry_interval_ns.load(std::memory_order_relaxed)) : kFirstRetryNs;
    s.limit.store(std::clamp(static_cast<int>(std::lround(parallelism)), 1, team - 1), std::memory_order_relaxed);
    s.retry_interval_ns.store(interval, std::memory_order_relaxed);
    s.retry_at_ns.store(now + interval, std::memory_order_relaxed);
  }
}

inline int64_t thread_cpu_ns() {
#if defined(__linux__) || defined(__APPLE__)
  timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
#endif
  return -1;
}

}  // namespace contention

inline int usable_threads() { return contention::usable_threads(max_threads(), contention::now_ns()); }

// Measures the parallelism of one parallel region: each thread holds a Member for the region, which adds the
// thread's CPU time and wall time; the calling thread calls finish() after the region.
class TeamMonitor {
 public:
  class Member {
   public:
    explicit Member(TeamMonitor& monitor)
        : monitor_(monitor), wall0_(contention::now_ns()), cpu0_(contention::thread_cpu_ns()) {}
    ~Member() {
      const int64_t wall = contention::now_ns() - wall0_, cpu = contention::thread_cpu_ns() - cpu0_;
      if (cpu0_ < 0) return;
      std::lock_guard<std::mutex> lock(monitor_.mutex_);
      ++monitor_.members_;
      monitor_.cpu_ns_ += cpu;
      monitor_.wall_ns_ = std::max(monitor_.wall_ns_, wall);
    }
    Member(const Member&) = delete;
    Member& operator=(const Member&) = delete;

   private:
    TeamMonitor& monitor_;
    const int64_t wall0_, cpu0_;
  };

  // A monitor that does not judge measures and leaves the limit alone (float64 kernels, see threads_for_step).
  explicit TeamMonitor(bool judges) : judges_(judges) {}

  void finish() const {
    if (judges_ && wall_ns_ >= kMinWallNs)
      contention::record(members_, static_cast<double>(cpu_ns_) / static_cast<double>(wall_ns_), contention::now_ns());
  }

 private:
  // Shorter regions say little: a single preemption or page fault is a large fraction of them.
  static constexpr int64_t kMinWallNs = 2'000'000;
  const bool judges_;
  std::mutex mutex_;
  int members_ = 0;
  int64_t cpu_ns_ = 0, wall_ns_ = 0;
};

// Contiguous unit ranges, multiples of 16 so each thread's slice starts on a full vector of floats.
struct UnitRange {
  int64_t begin, end;
  int64_t size() const { return end - begin; }
};

inline UnitRange unit_range(int64_t units, int threads, int tid) {
  const int64_t align = 16;
  int64_t per = (units + threads - 1) / threads;
  per = (per + align - 1) / align * align;
  const int64_t begin = std::min<int64_t>(units, per * tid);
  return {begin, std::min<int64_t>(units, begin + per)};
}

// Threads for one pass over n elements (optimizer updates, sums, bias adds): each gets at least 64K of them.
inline int threads_for_elements(int64_t n) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(usable_threads(), n / 65536)));
}

// A thread must own enough work per step to pay for one barrier (about a microsecond).
// float64 kernels (gradient checks and references, not speed) keep the set count under load: their products are
// not thread-count invariant, and a check comparing two calls must not see the count change between them.
template <class S>
int threads_for_step(int64_t batch, int64_t gate_units, int64_t depth, int64_t units) {
  const int64_t flops_per_step = 2 * batch * gate_units * depth;
  const int64_t min_flops_per_thread = 1 << 17;
  int64_t by_work = std::max<int64_t>(1, flops_per_step / min_flops_per_thread);
  int64_t by_units = std::max<int64_t>(1, (units + 15) / 16);
  const int threads = std::is_same_v<S, double> ? max_threads() : usable_threads();
  return static_cast<int>(std::min<int64_t>({by_work, by_units, static_cast<int64_t>(threads)}));
}

}  // namespace rnnfast
