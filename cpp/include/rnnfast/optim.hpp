// Optimizer updates over a flat parameter arena, with PyTorch's exact update formulas (torch.optim SGD, Adam,
// AdamW), so the same gradients give the same parameters.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "rnnfast/parallel.hpp"

namespace rnnfast {

// Hyper-parameters arrive as double and derived constants are rounded to S once, as PyTorch's Python-side scalars
// are, which keeps float32 updates bit-compatible with torch.optim.

// grad_scale multiplies each gradient as it is read: gradient clipping fused into the update, without a pass that
// scales the gradients in place first. The products go through a small block, each rounded to S on its own, so the
// update equals scaling first and updating after bit for bit; a product feeding the update's sums directly could be
// contracted into a fused multiply-add with one of them.
constexpr int64_t kUpdateBlock = 1024;

template <class S, class Update>
void for_scaled_gradients(const S* g, int64_t n, S grad_scale, Update&& update) {
  const int64_t blocks = (n + kUpdateBlock - 1) / kUpdateBlock;
#pragma omp parallel for num_threads(threads_for_elements(n)) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    alignas(64) S scaled[kUpdateBlock];
    const int64_t k0 = b * kUpdateBlock, m = std::min(kUpdateBlock, n - k0);
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) scaled[j] = g[k0 + j] * grad_scale;
    update(k0, m, scaled);
  }
}

// momentum_buf may be nullptr when momentum == 0; first_step seeds the buffer with the gradient as PyTorch does.
template <class S>
void sgd_step(S* p, const S* g, S* momentum_buf, int64_t n, double lr_d, double momentum_d, double weight_decay_d,
              double dampening_d, bool nesterov, bool first_step, double grad_scale) {
  const S lr = static_cast<S>(lr_d), momentum = static_cast<S>(momentum_d);
  const S weight_decay = static_cast<S>(weight_decay_d), keep = static_cast<S>(1.0 - dampening_d);
  for_scaled_gradients<S>(g, n, static_cast<S>(grad_scale), [&](int64_t k0, int64_t m, const S* scaled) {
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      const int64_t k = k0 + j;
      S d = scaled[j];
      if (weight_decay != S(0)) d += weight_decay * p[k];
      if (momentum != S(0)) {
        S buf = first_step ? d : momentum_buf[k] * momentum + keep * d;
        momentum_buf[k] = buf;
        d = nesterov ? d + momentum * buf : buf;
      }
      p[k] += -lr * d;
    }
  });
}

// decoupled == true is AdamW. step counts from 1.
template <class S>
void adam_step(S* p, const S* g, S* m, S* v, int64_t n, double lr, double beta1, double beta2, double eps_d,
               double weight_decay_d, bool decoupled, int64_t step, double grad_scale) {
  const S bias2_sqrt = static_cast<S>(std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step))));
  const S step_size = static_cast<S>(lr / (1.0 - std::pow(beta1, static_cast<double>(step))));
  const S w1 = static_cast<S>(1.0 - beta1), b2 = static_cast<S>(beta2), w2 = static_cast<S>(1.0 - beta2);
  const S eps = static_cast<S>(eps_d), weight_decay = static_cast<S>(weight_decay_d);
  const S decay_factor = static_cast<S>(1.0 - lr * weight_decay_d);
  for_scaled_gradients<S>(g, n, static_cast<S>(grad_scale), [&](int64_t k0, int64_t count, const S* scaled) {
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) {
      const int64_t k = k0 + j;
      S grad = scaled[j];
      if (weight_decay != S(0)) {
        if (decoupled)
          p[k] *= decay_factor;
        else
          grad += weight_decay * p[k];
      }
      m[k] = m[k] + w1 * (grad - m[k]);  // torch's lerp_ for weights below 0.5
      v[k] = v[k] * b2 + w2 * grad * grad;
      const S denom = std::sqrt(v[k]) / bias2_sqrt + eps;
      p[k] += -step_size * (m[k] / denom);
    }
  });
}

// Blocks of fixed size summed in a fixed order: the same total for any thread count.
template <class S>
double sum_of_squares(const S* x, int64_t n) {
  constexpr int64_t block = 1 << 14;
  constexpr int lanes = 8;
  const int64_t blocks = (n + block - 1) / block;
  std::vector<double> partial(blocks);
#pragma omp parallel for num_threads(threads_for_elements(n)) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    double acc[lanes] = {};
    const int64_t lo = b * block, hi = std::min(n, lo + block);
    int64_t k = lo;
    for (; k + lanes <= hi; k += lanes)
      for (int l = 0; l < lanes; ++l) acc[l] += static_cast<double>(x[k + l]) * static_cast<double>(x[k + l]);
    for (int l = 0; k + l < hi; ++l) acc[l] += static_cast<double>(x[k + l]) * static_cast<double>(x[k + l]);
    double total = 0;
    for (double a : acc) total += a;
    partial[b] = total;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

template <class S>
void scale_in_place(S* x, int64_t n, S factor) {
#pragma omp parallel for simd num_threads(threads_for_elements(n)) schedule(static)
  for (int64_t k = 0; k < n; ++k) x[k] *= factor;
}

template <class S>
void clamp_in_place(S* x, int64_t n, S limit) {
#pragma omp parallel for simd num_threads(threads_for_elements(n)) schedule(static)
  for (int64_t k = 0; k < n; ++k) x[k] = std::min(limit, std::max(-limit, x[k]));
}

}  // namespace rnnfast
