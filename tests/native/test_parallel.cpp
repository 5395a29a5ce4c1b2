// StepBarrier (parallel.hpp): no thread leaves a round before every thread has arrived, writes made before the
// barrier are visible after it, and this holds both when the waiters catch the release while spinning and when
// they have gone to sleep in the kernel (a late thread holds everyone past the spin).
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

}  // namespace

void test_barrier() {
  for (int team : {1, 2, 3, 4}) {
    barrier_case(team, 4000, 0);
    barrier_case(team, 200, 7);
  }
}

}  // namespace rnnfast_test
