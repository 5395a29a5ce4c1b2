// Thread-count control and the static split of hidden units across threads used by the recurrent kernels.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
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
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_threads(), n / 65536)));
}

// A thread must own enough work per step to pay for one barrier (about a microsecond).
inline int threads_for_step(int64_t batch, int64_t gate_units, int64_t depth, int64_t units) {
  const int64_t flops_per_step = 2 * batch * gate_units * depth;
  const int64_t min_flops_per_thread = 1 << 17;
  int64_t by_work = std::max<int64_t>(1, flops_per_step / min_flops_per_thread);
  int64_t by_units = std::max<int64_t>(1, (units + 15) / 16);
  return static_cast<int>(std::min<int64_t>({by_work, by_units, static_cast<int64_t>(max_threads())}));
}

}  // namespace rnnfast
