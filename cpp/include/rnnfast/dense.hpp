// Dense layers over flattened steps: the linear map (T*B, I) -> (T*B, O) and the embedding gradient.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "rnnfast/matmul.hpp"
#include "rnnfast/sequence.hpp"

namespace rnnfast {

template <class S>
void linear_forward(const S* x, int64_t N, int64_t I,  // (N, I)
                    const S* W, int64_t O,             // (O, I)
                    const S* b,                        // (O) or nullptr
                    S* y) {                            // (N, O)
  matmul<S>(N, O, I, gemm::MatView<S>{x, I, false}, gemm::MatView<S>{W, I, true}, S(0), y, O);
  if (!b) return;
#pragma omp parallel for num_threads(threads_for_elements(N* O)) schedule(static)
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < O; ++j) y[i * O + j] += b[j];
}

// y (N, O) = x W^T + b with W quantized to int8 (int8.hpp; inference only). The rows of x are quantized once,
// shared; each thread multiplies them by its own range of W's rows.
inline void linear_forward_int8(const float* x, int64_t N, int64_t I, const int8::Weights& W, int64_t O, const float* b,
                                float* y) {
  int8::QuantizedRows a(N, I);
#pragma omp parallel num_threads(threads_for_elements(N* O))
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; ++i) a.scale[i] = int8::quantize_row(x + i * I, I, a.Kp, a.u.get() + i * a.Kp);
    const UnitRange own = unit_range(O, team_size(), thread_id());
    const int8::PackedRows rows({{W.q + own.begin * I, I, W.scale + own.begin, own.size(), own.begin}}, I);
    int8::multiply(N, a, rows, y, O);
  }
  if (!b) return;
#pragma omp parallel for num_threads(threads_for_elements(N* O)) schedule(static)
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < O; ++j) y[i * O + j] += b[j];
}

template <class S>
void linear_backward(const S* dy, int64_t N, int64_t O,  // (N, O)
                     const S* x, int64_t I,              // (N, I)
                     const S* W,                         // (O, I)
                     S* dx,                              // (N, I) or nullptr; overwritten
                     S* dW,                              // (O, I) accumulated
                     S* db) {                            // (O) or nullptr; accumulated
  using V = gemm::MatView<S>;
  if (dx) matmul<S>(N, I, O, V{dy, O, false}, V{W, I, false}, S(0), dx, I);
  matmul<S>(O, I, N, V{dy, O, true}, V{x, I, false}, S(1), dW, I);
  if (db) add_column_sums(dy, N, O, db);
}

// Rows of dW receive the gradients of every position that looked them up. Threads own disjoint row ranges of dW
// so the scatter needs no atomics and its summation order does not depend on the thread count.
template <class S>
void embedding_backward(const int64_t* ids, int64_t N,  // (N)
                        const S* dy, int64_t E,         // (N, E)
                        S* dW, int64_t V) {             // (V, E) accumulated
#pragma omp parallel num_threads(std::max<int64_t>(1, std::min<int64_t>(usable_threads(), N * E / 16384)))
  {
    const int64_t per = (V + team_size() - 1) / team_size();
    const int64_t lo = per * thread_id(), hi = std::min(V, lo + per);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t row = ids[n];
      if (row < lo || row >= hi) continue;
      Eigen::Map<Eigen::Array<S, 1, Eigen::Dynamic>>(dW + row * E, E) +=
          Eigen::Map<const Eigen::Array<S, 1, Eigen::Dynamic>>(dy + n * E, E);
    }
  }
}

}  // namespace rnnfast
