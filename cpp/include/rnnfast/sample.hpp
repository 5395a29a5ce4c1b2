// Token-by-token generation from a recurrent language model (embedding -> stacked cells -> linear head), the
// whole loop in C++: every layer's step, the head, temperature softmax, top-k / nucleus filtering and the draw.
//
// At batch 1 a step is bound by reading the weights, so one parallel region spans the whole generation: each
// thread keeps its packed share of every layer's gate rows and of the head's rows, hot in its own cache, and the
// threads meet at one barrier per layer plus two per token (head done; next token chosen).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "rnnfast/cells.hpp"
#include "rnnfast/parallel.hpp"
#include "rnnfast/sequence.hpp"

namespace rnnfast {

template <class S>
struct LanguageModelWeights {
  Cell cell;
  int64_t vocab, embed, hidden, layers;
  const S* embedding;               // (V, E)
  std::vector<LayerParams<S>> rnn;  // per layer; layer 0 has I = E, the others I = H
  const S* head_W;                  // (V, H)
  const S* head_b;                  // (V) or nullptr
};

struct SamplingOptions {
  double temperature;  // 0 = greedy
  int64_t top_k;       // 0 = no limit
  double top_p;        // 1 = no limit
  uint64_t seed;
};

// Picks the next token from logits (V). Deterministic for a given generator state.
template <class S>
int64_t choose_token(const S* logits, int64_t V, const SamplingOptions& opt, std::mt19937_64& rng,
                     std::vector<int64_t>& order, std::vector<double>& probs) {
  if (opt.temperature == 0.0) return std::max_element(logits, logits + V) - logits;
  const double z_max = *std::max_element(logits, logits + V);
  probs.resize(V);
  for (int64_t v = 0; v < V; ++v) probs[v] = std::exp((static_cast<double>(logits[v]) - z_max) / opt.temperature);
  order.resize(V);
  std::iota(order.begin(), order.end(), 0);
  // Candidates in descending logit (ties by id), truncated by top-k, then by nucleus mass. Ranking by logit, not
  // by the tempered probabilities, keeps the order exact when a huge temperature rounds every probability to 1.
  auto by_prob = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  int64_t keep = V;
  if (opt.top_k > 0 && opt.top_k < V) {
    keep = opt.top_k;
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_prob);
  } else if (opt.top_p < 1.0) {
    std::sort(order.begin(), order.end(), by_prob);
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += probs[order[i]];
  if (opt.top_p < 1.0) {
    if (opt.top_k > 0 && opt.top_k < V) std::sort(order.begin(), order.begin() + keep, by_prob);
    double mass = 0;
    int64_t nucleus = 0;
    while (nucleus < keep) {
      mass += probs[order[nucleus++]];
      if (mass >= opt.top_p * total) break;
    }
    keep = nucleus;
    total = mass;
  }
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng) * total;
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs[order[i]];
    if (u < acc) return order[i];
  }
  return order[keep - 1];
}

// Feeds `prompt` (P >= 1 ids), then samples `steps` new ids into `out`. h0/c0 (layers, H) are the initial state
// and receive the final one. RhsStorage::packed_bf16 (float models only) multiplies by the layers' and the head's
// weight matrices rounded to bfloat16, accumulating in float: each token reads half the bytes.
template <class S>
void generate(const LanguageModelWeights<S>& w, const int64_t* prompt, int64_t P, int64_t steps,
              const SamplingOptions& opt, S* h_state, S* c_state, int64_t* out,
              RhsStorage weight_storage = RhsStorage::packed) {
  if (!std::is_same_v<S, float> && weight_storage == RhsStorage::packed_bf16)
    throw std::invalid_argument("weight_dtype: bfloat16 weights need a float32 model, got float64");
  const Cell cell = w.cell;
  const int G = num_gates(cell);
  const int64_t H = w.hidden, V = w.vocab, L = w.layers, E = w.embed, GH = G * H;
  const bool lstm = has_cell_state(cell);

  // Per layer: input x (I) and state h, double-buffered by token parity so no thread overwrites what another
  // still reads; the input of layer l+1 is the new h of layer l.
  std::vector<S> x0(2 * E);
  std::vector<S> h(2 * L * H), c(lstm ? 2 * L * H : 0);
  std::copy(h_state, h_state + L * H, h.begin());
  if (lstm) std::copy(c_state, c_state + L * H, c.begin());
  std::vector<S> pre(L * GH), logits(V);
  int64_t next_token = prompt[0];
  std::mt19937_64 rng(opt.seed);
  std::vector<int64_t> order;
  std::vector<double> probs;
  const int64_t total_steps = P - 1 + steps;

  const int nthreads = threads_for_step(1, GH, H + E, H);
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = thread_id(), nth = team_size();
    const UnitRange units = unit_range(H, nth, tid);
    const int64_t j0 = units.begin, n = units.size();
    const int64_t v_per = (V + nth - 1) / nth, v0 = std::min(V, v_per * tid), nv = std::min(V, v0 + v_per) - v0;
    // Each thread's gate rows of every layer, packed once for all tokens (with float weights, the same products as
    // the sequence kernel, so generation and the training-mode forward agree to the last bit).
    std::vector<std::vector<S>> bias_own(L);
    std::vector<FixedRhs<S>> input_rhs, recurrent_rhs;
    for (int64_t l = 0; l < L; ++l) {
      const LayerParams<S>& p = w.rnn[l];
      std::vector<gemm::Segment<S>> input_columns, recurrent_columns;
      for (int g = 0; g < G; ++g) {
        input_columns.push_back({gemm::MatView<S>{p.W_ih + (g * H + j0) * p.I, p.I, true}, n, g * n});
        recurrent_columns.push_back({gemm::MatView<S>{p.W_hh + (g * H + j0) * H, H, true}, n, g * n});
      }
      input_rhs.emplace_back(input_columns, p.I, 1, weight_storage);
      recurrent_rhs.emplace_back(recurrent_columns, H, 1, weight_storage);
      const std::vector<S> folded = folded_bias(p);
      bias_own[l].resize(G * n);
      for (int g = 0; g < G; ++g)
        std::copy(folded.begin() + g * H + j0, folded.begin() + g * H + j0 + n, bias_own[l].begin() + g * n);
    }
    const FixedRhs<S> head_rhs(gemm::MatView<S>{w.head_W + v0 * H, H, true}, H, nv, 1, weight_storage);
    std::vector<S> gi(G * n), rec(G * n);

    for (int64_t step = 0; step <= total_steps; ++step) {
      const int64_t cur = step & 1, nxt = cur ^ 1;
      if (tid == 0) std::copy(w.embedding + next_token * E, w.embedding + (next_token + 1) * E, x0.data() + cur * E);
#pragma omp barrier
      for (int64_t l = 0; l < L; ++l) {
        if (n > 0) {
          const S* x = l == 0 ? x0.data() + cur * E : h.data() + (nxt * L + l - 1) * H;
          const S* h_prev = h.data() + (cur * L + l) * H;
          S* h_new = h.data() + (nxt * L + l) * H;
          input_rhs[l].apply(1, x, w.rnn[l].I, S(0), gi.data(), G * n);
          recurrent_rhs[l].apply(1, h_prev, H, S(0), rec.data(), G * n);
          // `pre` is laid out (G*H) like a row of the sequence kernel's projection, so the same cell code applies.
          S* pre_l = pre.data() + l * GH;
          for (int g = 0; g < G; ++g)
            for (int64_t k = 0; k < n; ++k) pre_l[g * H + j0 + k] = gi[g * n + k] + bias_own[l][g * n + k];
          RowForward<S> r;
          r.pre = pre_l + j0;
          r.rec = rec.data();
          r.b_hn = (cell == Cell::GRU && w.rnn[l].b_hh) ? w.rnn[l].b_hh + 2 * H + j0 : nullptr;
          r.h_prev = h_prev + j0;
          r.c_prev = lstm ? c.data() + (cur * L + l) * H + j0 : nullptr;
          r.h_new = h_new + j0;
          r.c_new = lstm ? c.data() + (nxt * L + l) * H + j0 : nullptr;
          r.act = nullptr;
          r.aux0 = nullptr;
          cell_forward_row(cell, H, n, r);
        }
#pragma omp barrier
      }
      const bool sampling = step >= P - 1 && step < total_steps;
      if (sampling && nv > 0) {
        head_rhs.apply(1, h.data() + (nxt * L + L - 1) * H, H, S(0), logits.data() + v0, nv);
        if (w.head_b)
          for (int64_t v = 0; v < nv; ++v) logits[v0 + v] += w.head_b[v0 + v];
      }
#pragma omp barrier
      if (tid == 0 && step < total_steps) {
        if (sampling) {
          next_token = choose_token(logits.data(), V, opt, rng, order, probs);
          out[step - (P - 1)] = next_token;
        } else {
          next_token = prompt[step + 1];
        }
      }
    }
  }
  // The last iteration fed the final sampled token through the layers, so the state covers every token.
  const int64_t final_buf = (total_steps + 1) & 1;
  std::copy(h.begin() + final_buf * L * H, h.begin() + (final_buf + 1) * L * H, h_state);
  if (lstm) std::copy(c.begin() + final_buf * L * H, c.begin() + (final_buf + 1) * L * H, c_state);
}

}  // namespace rnnfast
