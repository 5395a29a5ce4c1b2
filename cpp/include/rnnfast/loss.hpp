// Softmax cross-entropy fused with its gradient: one pass per row, no probability matrix kept.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "rnnfast/cells.hpp"
#include "rnnfast/parallel.hpp"

namespace rnnfast {

struct LossResult {
  double loss_sum;  // summed negative log-likelihood over counted rows, in nats
  int64_t count;    // rows whose target is not ignore_index
  int64_t correct;  // counted rows whose argmax equals the target
};

// logits (N, V); targets (N) in [0, V) or == ignore_index. If dlogits is given (it may alias logits), it receives
// grad_scale * (softmax - onehot) for counted rows and 0 for ignored ones. Each row is reduced in fixed-size
// blocks and the row losses are added in row order, so the result depends neither on the thread count nor on
// where the arrays live.
template <class S>
LossResult softmax_cross_entropy(const S* logits, int64_t N, int64_t V, const int64_t* targets, int64_t ignore_index,
                                 S* dlogits, double grad_scale) {
  std::vector<double> row_loss(N, 0.0);
  int64_t count = 0, correct = 0;
  const int nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(usable_threads(), N * V / 32768)));
#pragma omp parallel for num_threads(nthreads) reduction(+ : count, correct) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const S* z = logits + n * V;
    const int64_t target = targets[n];
    if (target == ignore_index) {
      if (dlogits) std::fill(dlogits + n * V, dlogits + (n + 1) * V, S(0));
      continue;
    }
    // The maximum in vector blocks, then its first position: std::max_element alone is a scalar loop.
    Block<S> block_max = Block<S>::Constant(-std::numeric_limits<S>::infinity());
    for_blocks<S>(V, [&](const BlockIO<S>& io) {
      Block<S> v = io.in(z);
      if (io.m < kBlock) v.tail(kBlock - io.m).setConstant(-std::numeric_limits<S>::infinity());
      block_max = block_max.max(v);
    });
    const S z_max = block_max.maxCoeff();
    const int64_t arg_max = std::find(z, z + V, z_max) - z;
    // One exp per logit: exp(z - z_max) goes straight into the gradient row (block by block, each block read
    // before it is written, so d may alias z) and is scaled once the sum is known.
    S* d = dlogits ? dlogits + n * V : nullptr;
    const S z_target = z[target];
    Block<S> acc = Block<S>::Zero();
    for_blocks<S>(V, [&](const BlockIO<S>& io) {
      Block<S> e = (io.in(z) - z_max).exp();
      if (io.m < kBlock) e.tail(kBlock - io.m).setZero();
      acc += e;
      if (d) io.out(d, e);
    });
    const S sum_exp = acc.sum();
    // log-sum-exp minus the target logit, with z_max - z_target exact in double: no cancellation at huge logits.
    row_loss[n] = std::log(static_cast<double>(sum_exp)) + (static_cast<double>(z_max) - static_cast<double>(z_target));
    count += 1;
    correct += (arg_max == target) ? 1 : 0;
    if (d) {
      const S scale = static_cast<S>(grad_scale / static_cast<double>(sum_exp));
      for_blocks<S>(V, [&](const BlockIO<S>& io) { io.out(d, io.in(d) * scale); });
      d[target] -= static_cast<S>(grad_scale);
    }
  }
  double loss_sum = 0;
  for (int64_t n = 0; n < N; ++n) loss_sum += row_loss[n];
  return {loss_sum, count, correct};
}

}  // namespace rnnfast
