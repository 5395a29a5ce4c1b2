// Softmax cross-entropy fused with its gradient: one pass per row, no probability matrix kept.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "rnnfast/parallel.hpp"

namespace rnnfast {

struct LossResult {
  double loss_sum;  // summed negative log-likelihood over counted rows, in nats
  int64_t count;    // rows whose target is not ignore_index
  int64_t correct;  // counted rows whose argmax equals the target
};

// logits (N, V); targets (N) in [0, V) or == ignore_index. If dlogits is given (it may alias logits), it receives
// grad_scale * (softmax - onehot) for counted rows and 0 for ignored ones.
template <class S>
LossResult softmax_cross_entropy(const S* logits, int64_t N, int64_t V, const int64_t* targets, int64_t ignore_index,
                                 S* dlogits, double grad_scale) {
  double loss_sum = 0;
  int64_t count = 0, correct = 0;
  const int nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_threads(), N * V / 32768)));
#pragma omp parallel for num_threads(nthreads) reduction(+ : loss_sum, count, correct) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    using Row = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;
    Row z(logits + n * V, V);
    const int64_t target = targets[n];
    if (target == ignore_index) {
      if (dlogits) std::fill(dlogits + n * V, dlogits + (n + 1) * V, S(0));
      continue;
    }
    Eigen::Index arg_max;
    const S z_max = z.maxCoeff(&arg_max);
    const S sum_exp = (z - z_max).exp().sum();
    const S log_sum = std::log(sum_exp) + z_max;
    loss_sum += static_cast<double>(log_sum - z[target]);
    count += 1;
    correct += (arg_max == target) ? 1 : 0;
    if (dlogits) {
      Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>> d(dlogits + n * V, V);
      d = (z - log_sum).exp() * static_cast<S>(grad_scale);  // reads z before overwriting when aliased
      d[target] -= static_cast<S>(grad_scale);
    }
  }
  return {loss_sum, count, correct};
}

}  // namespace rnnfast
