// Linear-chain conditional random field over emission scores: the negative log-likelihood of given tag sequences
// (forward algorithm) with its gradient (forward-backward marginals), and Viterbi decoding.
//
// The score of tags y_0 .. y_{L-1} of one sequence of length L is
//   start[y_0] + sum_t emissions[t, y_t] + sum_{t>0} trans[y_{t-1}, y_t] + end[y_{L-1}],
// and the model's probability of y is exp(score(y)) / Z with Z summed over all C^L tag sequences. Sequences are
// independent, so threads split the batch; everything per step stays in log space (log-sum-exp with the maximum
// taken out), which keeps float32 finite for any sequence length.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "rnnfast/parallel.hpp"

namespace rnnfast {

template <class S>
struct CrfScores {
  const S* emissions;  // (T, B, C), time-major like the recurrent layers
  int64_t T, B, C;
  const int64_t* lengths;  // (B) each in 1..T, or nullptr for full length
  const S* start;          // (C)
  const S* end;            // (C)
  const S* trans;          // (C, C): trans[i * C + j] scores a step from tag i to tag j

  int64_t length(int64_t b) const { return lengths ? lengths[b] : T; }
  S emission(int64_t t, int64_t b, int64_t j) const { return emissions[(t * B + b) * C + j]; }
};

namespace crf_detail {

// log(sum_i exp(a[i] + b[i])) over i < n.
template <class S>
S log_sum_exp(const S* a, const S* b, int64_t n) {
  S m = -std::numeric_limits<S>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, a[i] + b[i]);
  S s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(a[i] + b[i] - m);
  return m + std::log(s);
}

// Threads are worth it only when each one gets about 2^15 multiply-adds of work.
inline int crf_threads(int64_t B, int64_t T, int64_t C) {
  const int64_t by_work = std::max<int64_t>(1, B * T * C * C / (1 << 15));
  return static_cast<int>(std::min<int64_t>({by_work, B, static_cast<int64_t>(usable_threads())}));
}

}  // namespace crf_detail

// nll (B): -log p(tags_b) for each sequence. With demissions given, also the gradient of grad_scale * sum_b nll_b:
// demissions (T, B, C) is overwritten (0 at padded positions) and dstart (C), dend (C), dtrans (C, C) are
// accumulated. tags (T, B) must lie in 0..C-1 at every position before the sequence's length; the rest is read
// never. Parameter gradients are reduced over the batch in a fixed order, so results do not depend on threads.
template <class S>
void crf_nll(const CrfScores<S>& s, const int64_t* tags, double* nll, S* demissions, S* dstart, S* dend, S* dtrans,
             double grad_scale) {
  const int64_t T = s.T, B = s.B, C = s.C;
  std::vector<S> trans_t(C * C);  // transposed, so the sum over the previous tag reads contiguous memory
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < C; ++j) trans_t[j * C + i] = s.trans[i * C + j];
  const bool with_grad = demissions != nullptr;
  const int64_t P = C * C + 2 * C;  // per-sequence parameter gradients: trans, start, end
  std::vector<S> dparams(with_grad ? B * P : 0, S(0));
  const S scale = static_cast<S>(grad_scale);

#pragma omp parallel num_threads(crf_detail::crf_threads(B, T, C))
  {
    std::vector<S> alpha(T * C), beta(with_grad ? T * C : 0), next(C);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = s.length(b);
      for (int64_t j = 0; j < C; ++j) alpha[j] = s.start[j] + s.emission(0, b, j);
      for (int64_t t = 1; t < L; ++t)
        for (int64_t j = 0; j < C; ++j)
          alpha[t * C + j] = s.emission(t, b, j) + crf_detail::log_sum_exp(&alpha[(t - 1) * C], &trans_t[j * C], C);
      const S log_z = crf_detail::log_sum_exp(&alpha[(L - 1) * C], s.end, C);

      const int64_t* y = tags;  // y[t * B + b]
      S gold = s.start[y[b]] + s.end[y[(L - 1) * B + b]];
      for (int64_t t = 0; t < L; ++t) {
        gold += s.emission(t, b, y[t * B + b]);
        if (t > 0) gold += s.trans[y[(t - 1) * B + b] * C + y[t * B + b]];
      }
      nll[b] = static_cast<double>(log_z - gold);
      if (!with_grad) continue;

      // beta[t, i]: log of the summed scores of every continuation after tag i at step t.
      for (int64_t i = 0; i < C; ++i) beta[(L - 1) * C + i] = s.end[i];
      for (int64_t t = L - 2; t >= 0; --t) {
        for (int64_t j = 0; j < C; ++j) next[j] = s.emission(t + 1, b, j) + beta[(t + 1) * C + j];
        for (int64_t i = 0; i < C; ++i) beta[t * C + i] = crf_detail::log_sum_exp(next.data(), &s.trans[i * C], C);
      }
      S* d_trans = &dparams[b * P];
      S* d_start = d_trans + C * C;
      S* d_end = d_start + C;
      for (int64_t t = 0; t < L; ++t) {
        S* de = demissions + (t * B + b) * C;
        for (int64_t j = 0; j < C; ++j) de[j] = scale * std::exp(alpha[t * C + j] + beta[t * C + j] - log_z);
        de[y[t * B + b]] -= scale;
        if (t > 0) {
          // Pairwise marginals p(y_{t-1} = i, y_t = j).
          for (int64_t j = 0; j < C; ++j) next[j] = s.emission(t, b, j) + beta[t * C + j] - log_z;
          for (int64_t i = 0; i < C; ++i) {
            const S a = alpha[(t - 1) * C + i];
            for (int64_t j = 0; j < C; ++j) d_trans[i * C + j] += scale * std::exp(a + s.trans[i * C + j] + next[j]);
          }
          d_trans[y[(t - 1) * B + b] * C + y[t * B + b]] -= scale;
        }
      }
      for (int64_t j = 0; j < C; ++j) {
        d_start[j] = demissions[b * C + j];
        d_end[j] = demissions[((L - 1) * B + b) * C + j];
      }
      for (int64_t t = L; t < T; ++t) std::fill_n(demissions + (t * B + b) * C, C, S(0));
    }
  }
  if (!with_grad) return;
  for (int64_t b = 0; b < B; ++b) {
    const S* d = &dparams[b * P];
    for (int64_t k = 0; k < C * C; ++k) dtrans[k] += d[k];
    for (int64_t j = 0; j < C; ++j) {
      dstart[j] += d[C * C + j];
      dend[j] += d[C * C + C + j];
    }
  }
}

// The highest-scoring tag sequence of each sequence: tags (T, B) (-1 at padded positions) and its score (B).
// Ties go to the smaller tag id at every step.
template <class S>
void crf_viterbi(const CrfScores<S>& s, int64_t* tags, double* scores) {
  const int64_t T = s.T, B = s.B, C = s.C;
#pragma omp parallel num_threads(crf_detail::crf_threads(B, T, C))
  {
    std::vector<S> delta(C), previous(C);
    std::vector<int64_t> back(T * C);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = s.length(b);
      for (int64_t j = 0; j < C; ++j) delta[j] = s.start[j] + s.emission(0, b, j);
      for (int64_t t = 1; t < L; ++t) {
        std::swap(delta, previous);
        for (int64_t j = 0; j < C; ++j) {
          int64_t best_i = 0;
          S best = previous[0] + s.trans[j];
          for (int64_t i = 1; i < C; ++i) {
            const S v = previous[i] + s.trans[i * C + j];
            if (v > best) best = v, best_i = i;
          }
          delta[j] = best + s.emission(t, b, j);
          back[t * C + j] = best_i;
        }
      }
      int64_t tag = 0;
      S best = delta[0] + s.end[0];
      for (int64_t j = 1; j < C; ++j)
        if (delta[j] + s.end[j] > best) best = delta[j] + s.end[j], tag = j;
      scores[b] = static_cast<double>(best);
      for (int64_t t = L - 1; t >= 0; --t) {
        tags[t * B + b] = tag;
        if (t > 0) tag = back[t * C + tag];
      }
      for (int64_t t = L; t < T; ++t) tags[t * B + b] = -1;
    }
  }
}

}  // namespace rnnfast
