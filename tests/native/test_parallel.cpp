// StepBarrier and the contention policy (parallel.hpp). The barrier: no thread leaves a round before every thread has
// arrived, writes made before the barrier are visible after it, and this holds both when the waiters catch the release
// while spinning and when they have gone to sleep in the kernel (a late thread holds everyone past the spin).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "check.hpp"
#include "rnnfast/parallel.hpp"

namespace rnnfast_test {
namespace {

// Rounds of the barrier; every `late_every`-th round, thread (round % team) arrives 300 microseconds late, well
// past the spin, so the others sleep and must be woken.
void barrier_case(int team, int rounds, int late_every) {
  Scope s(format("team=%d rounds=%d late every %d", team, rounds, late_every));
  rnnfast::StepBarrier barrier;
  std::atomic<int64_t> arrivals{0};
  std::vector<int64_t> slot(team * 16, -1);  // one cache line per thread, written plainly before each wait
  std::atomic<int64_t> early_leaves{0}, stale_reads{0};
  int actual_team = 0;
#pragma omp parallel num_threads(team)
  {
    const int tid = rnnfast::thread_id(), nth = rnnfast::team_size();
    if (tid == 0) actual_team = nth;
    for (int round = 0; round < rounds; ++round) {
      if (late_every > 0 && round % late_every == 0 && tid == round % nth)
        std::this_thread::sleep_for(std::chrono::microseconds(300));
      slot[tid * 16] = round;
      arrivals.fetch_add(1, std::memory_order_relaxed);
      barrier.wait();
      if (arrivals.load(std::memory_order_relaxed) < static_cast<int64_t>(nth) * (round + 1)) ++early_leaves;
      for (int other = 0; other < nth; ++other)
        if (slot[other * 16] < round) ++stale_reads;
      // A second wait, so that no thread overwrites its slot for the next round while another still reads it.
      barrier.wait();
    }
  }
  CHECK(actual_team >= 1, "the team never started");
  CHECK(early_leaves.load() == 0, "%lld waits returned before the whole team had arrived",
        static_cast<long long>(early_leaves.load()));
  CHECK(stale_reads.load() == 0, "%lld reads after the barrier missed a write made before it",
        static_cast<long long>(stale_reads.load()));
}

// The thread-count policy under other processes' load, with the measurements given by hand.
void contention_policy() {
  namespace c = rnnfast::contention;
  Scope s("contention policy");
  c::State& state = c::state();
  const auto reset = [&] {
    state.limit = 0;
    state.retry_at_ns = 0;
    state.retry_interval_ns = c::kFirstRetryNs;
  };
  reset();
  const int64_t t0 = 1'000'000'000'000, F = c::kFirstRetryNs;
  c::record(2, 1.85, t0);  // quiet: nothing changes
  CHECK(c::usable_threads(2, t0) == 2, "quiet team of 2: got %d threads", c::usable_threads(2, t0));
  // Two threads got one core's worth: one thread until the retry a quarter of a second later.
  c::record(2, 1.02, t0);
  CHECK(c::usable_threads(2, t0 + 1) == 1, "after a short call: got %d", c::usable_threads(2, t0 + 1));
  CHECK(c::limited_threads(2) == 1, "limited_threads ignores retries");
  CHECK(c::usable_threads(2, t0 + F) == 2, "the retry gets the whole team");
  // A lone thread's calls say nothing about the other cores; a retry that falls short again waits twice as long.
  c::record(1, 1.0, t0 + 1000);
  CHECK(c::usable_threads(2, t0 + 2000) == 1, "a one-thread call lifted the limit");
  const int64_t t1 = t0 + F;
  c::record(2, 0.95, t1);
  CHECK(c::usable_threads(2, t1 + F) == 1, "the second retry came after the first interval");
  CHECK(c::usable_threads(2, t1 + 2 * F) == 2, "no retry after twice the interval");
  // A borderline retry keeps the limit; a clean one lifts it and resets the interval.
  const int64_t t2 = t1 + 2 * F;
  c::record(2, 1.6, t2);
  CHECK(c::usable_threads(2, t2 + 1) == 1, "a borderline retry lifted the limit");
  CHECK(c::usable_threads(2, t2 + 4 * F) == 2, "no retry after a borderline one");
  c::record(2, 1.9, t2 + 4 * F);
  CHECK(c::usable_threads(2, t2 + 4 * F + 1) == 2, "a clean retry left the limit in place");
  CHECK(state.retry_interval_ns == F, "the interval was not reset");
  // Sixteen threads that got twelve cores' worth run as twelve; the limit never falls below one thread.
  c::record(16, 12.3, t0);
  CHECK(c::usable_threads(16, t0 + 1) == 12, "16 threads, 12.3 cores' worth: got %d", c::usable_threads(16, t0 + 1));
  reset();
  c::record(4, 0.2, t0);
  CHECK(c::usable_threads(4, t0 + 1) == 1, "almost no cores: got %d", c::usable_threads(4, t0 + 1));
  // The setting caps the limit: a user who asks for fewer threads gets them.
  CHECK(c::usable_threads(1, t0 + 1) == 1, "setting 1");
  // The intervals stop doubling at the last one.
  for (int k = 0; k < 12; ++k) c::record(4, 0.2, t0 + k);
  CHECK(state.retry_interval_ns == c::kLastRetryNs, "interval %lld after many failed retries",
        static_cast<long long>(state.retry_interval_ns.load()));
  reset();
}

}  // namespace

void test_parallel() {
  contention_policy();
  for (int team : {1, 2, 3, 4}) {
    barrier_case(team, 4000, 0);
    barrier_case(team, 200, 7);
  }
}

}  // namespace rnnfast_test
