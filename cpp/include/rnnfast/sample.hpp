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
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
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
  const S* head_W;                  // (V, H), nullptr with head_int8
  const S* head_b;                  // (V) or nullptr
  int8::Weights head_int8 = {};     // (V, H) quantized (float models), with rnn's int8 weights
};

struct SamplingOptions {
  double temperature;  // 0 = greedy
  int64_t top_k;       // 0 = no limit
  double top_p;        // 1 = no limit
  uint64_t seed;
};

// The largest logit, 16 lanes at a time (std::max_element compares and branches one element at a time).
template <class S>
S max_logit(const S* logits, int64_t V) {
  S lanes[kBlock];
  std::fill(lanes, lanes + kBlock, logits[0]);
  int64_t v = 0;
  for (; v + kBlock <= V; v += kBlock)
    for (int i = 0; i < kBlock; ++i) lanes[i] = logits[v + i] > lanes[i] ? logits[v + i] : lanes[i];
  for (; v < V; ++v) lanes[0] = logits[v] > lanes[0] ? logits[v] : lanes[0];
  return *std::max_element(lanes, lanes + kBlock);
}

// probs[v] = exp((logits[v] - z_max) / temperature) for every v. The argument is formed in double and the exp taken
// in float, in fixed blocks of kBlock (see cells.hpp) so every element takes the same vectorised code path whatever
// the buffers' alignment: within about 1e-6 of the double exp, which is what a float32 softmax gives, and seven
// times faster than std::exp one element at a time (which took over 90 us a token at vocabulary 10,000).
template <class S>
void tempered_probabilities(const S* logits, int64_t V, double z_max, double temperature, double* probs) {
  for_blocks<float>(V, [&](const BlockIO<float>& io) {
    Block<float> x = Block<float>::Zero();
    for (int64_t i = 0; i < io.m; ++i)
      x[i] = static_cast<float>((static_cast<double>(logits[io.k0 + i]) - z_max) / temperature);
    const Block<float> e = x.exp();
    for (int64_t i = 0; i < io.m; ++i) probs[io.k0 + i] = e[i];
  });
}

// A candidate's rank as one unsigned integer, larger = ranked first: descending logit, ties by smaller id. The logit's
// bits are mapped so that unsigned order is numeric order (-0 taken as +0), above the id reversed. Sorting these
// keys instead of ids compared through the logits avoids an indirection per comparison.
template <class S>
using RankKey = std::conditional_t<std::is_same_v<S, float>, uint64_t, unsigned __int128>;

template <class S>
RankKey<S> rank_key(S logit, int64_t id) {
  using Bits = std::conditional_t<std::is_same_v<S, float>, uint32_t, uint64_t>;
  constexpr Bits sign = Bits(1) << (8 * sizeof(Bits) - 1);
  const S value = logit + S(0);  // -0 + 0 = +0
  Bits bits;
  std::memcpy(&bits, &value, sizeof(bits));
  const Bits ordered = (bits & sign) ? ~bits : (bits | sign);
  return (RankKey<S>(ordered) << 32) | RankKey<S>(0xFFFFFFFFu - static_cast<uint32_t>(id));
}

template <class S>
int64_t ranked_id(RankKey<S> key) {
  return 0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFu);
}

// The most candidates choose_token can rank: ids share a rank key with the logit's bits.
constexpr int64_t kMaxSampledVocabulary = int64_t(1) << 32;

// Picks the next token from logits (V <= kMaxSampledVocabulary). Deterministic for a given generator state.
//
// Candidates rank by descending logit (ties by id), not by the tempered probabilities, so the order stays exact when
// a huge temperature rounds every probability to 1. Only the head of the ranking is sorted: logits fall into buckets
// one binade of tempered probability wide, counted from the largest logit, and the filters take the fewest whole
// buckets from the top that hold the k candidates or the top_p mass. A bucket is a function of the logit alone,
// monotone, so whole buckets from the top are always a prefix of the ranking. (Sorting a 10,000-word vocabulary
// whole took a millisecond a token, longer than the model's own step.)
template <class S>
int64_t choose_token(const S* logits, int64_t V, const SamplingOptions& opt, std::mt19937_64& rng,
                     std::vector<RankKey<S>>& keys, std::vector<double>& probs) {
  if (opt.temperature == 0.0) return std::max_element(logits, logits + V) - logits;
  const S z_max = max_logit(logits, V);
  probs.resize(V);
  tempered_probabilities(logits, V, z_max, opt.temperature, probs.data());
  const bool top_k = opt.top_k > 0 && opt.top_k < V, top_p = opt.top_p < 1.0;
  double total = 0;
  if (!top_k)
    for (int64_t v = 0; v < V; ++v) total += probs[v];
  auto draw = [&](double mass) { return std::uniform_real_distribution<double>(0.0, 1.0)(rng) * mass; };
  if (!top_k && !top_p) {
    const double u = draw(total);
    double acc = 0;
    for (int64_t v = 0; v < V; ++v) {
      acc += probs[v];
      if (u < acc) return v;
    }
    return V - 1;
  }

  constexpr int kBuckets = 1024;
  const double buckets_per_nat = 1.0 / (opt.temperature * std::log(2.0));
  auto bucket = [&](S logit) {
    const double b = (static_cast<double>(z_max) - static_cast<double>(logit)) * buckets_per_nat;
    return b < kBuckets - 1 ? static_cast<int>(b) : kBuckets - 1;  // NaN goes last
  };
  int64_t count[kBuckets] = {};
  double mass[kBuckets] = {};
  for (int64_t v = 0; v < V; ++v) {
    const int b = bucket(logits[v]);
    ++count[b];
    mass[b] += probs[v];
  }
  // The nucleus of the top k lies within the top k, so with top_k the count alone sets the cut.
  int cut = 0;
  int64_t held = count[0];
  double held_mass = mass[0];
  while (cut < kBuckets - 1 && (top_k ? held < opt.top_k : held_mass < opt.top_p * total)) {
    ++cut;
    held += count[cut];
    held_mass += mass[cut];
  }
  keys.clear();
  for (int64_t v = 0; v < V; ++v)
    if (bucket(logits[v]) <= cut) keys.push_back(rank_key(logits[v], v));
  auto prob = [&](int64_t i) { return probs[ranked_id<S>(keys[i])]; };
  int64_t keep = static_cast<int64_t>(keys.size());
  if (top_k) {
    keep = opt.top_k;
    std::partial_sort(keys.begin(), keys.begin() + keep, keys.end(), std::greater<RankKey<S>>());
    for (int64_t i = 0; i < keep; ++i) total += prob(i);
  } else {
    std::sort(keys.begin(), keys.end(), std::greater<RankKey<S>>());
  }
  if (top_p) {
    // The shortest prefix whose mass reaches top_p of the total, and at least one candidate.
    double nucleus_mass = 0;
    int64_t nucleus = 0;
    while (nucleus < keep && (nucleus == 0 || nucleus_mass < opt.top_p * total)) nucleus_mass += prob(nucleus++);
    keep = nucleus;
    total = nucleus_mass;
  }
  const double u = draw(total);
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += prob(i);
    if (u < acc) return ranked_id<S>(keys[i]);
  }
  return ranked_id<S>(keys[keep - 1]);
}

// Feeds `prompt` (P >= 1 ids), then samples `steps` new ids into `out`. h0/c0 (layers, H) are the initial state
// and receive the final one. RhsStorage::packed_bf16 (float models only) multiplies by the layers' and the head's
// weight matrices rounded to bfloat16, accumulating in float: each token reads half the bytes. Layers and a head
// given as int8 weights (int8.hpp) read a quarter of the bytes.
template <class S>
void generate(const LanguageModelWeights<S>& w, const int64_t* prompt, int64_t P, int64_t steps,
              const SamplingOptions& opt, S* h_state, S* c_state, int64_t* out,
              RhsStorage weight_storage = RhsStorage::packed) {
  if (!std::is_same_v<S, float> && weight_storage == RhsStorage::packed_bf16)
    throw std::invalid_argument("weight_dtype: bfloat16 weights need a float32 model, got float64");
  if (w.vocab > kMaxSampledVocabulary)
    throw std::invalid_argument("vocab_size: got " + std::to_string(w.vocab) + ", sampling supports at most 2**32");
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
  std::vector<RankKey<S>> keys;
  std::vector<double> probs;
  const int64_t total_steps = P - 1 + steps;

  const int nthreads = threads_for_step<S>(1, GH, H + E, H);
  StepBarrier step_barrier;
  TeamMonitor monitor(!std::is_same_v<S, double>);
#pragma omp parallel num_threads(nthreads)
  {
    TeamMonitor::Member member(monitor);
    const int tid = thread_id(), nth = team_size();
    const UnitRange units = unit_range(H, nth, tid);
    const int64_t j0 = units.begin, n = units.size();
    const int64_t v_per = (V + nth - 1) / nth, v0 = std::min(V, v_per * tid), nv = std::min(V, v0 + v_per) - v0;
    // Each thread's gate rows of every layer, packed once for all tokens (with float weights, the same products as
    // the sequence kernel, so generation and the training-mode forward agree to the last bit).
    // The input product lands in `pre`, laid out (G*H) like a row of the sequence kernel's projection, so the same
    // cell code applies.
    std::vector<std::vector<S>> bias(L);
    std::vector<FixedRhs<S>> input_rhs, recurrent_rhs;
    input_rhs.reserve(L);
    recurrent_rhs.reserve(L);
    for (int64_t l = 0; l < L; ++l) {
      const LayerParams<S>& p = w.rnn[l];
      input_rhs.push_back(gate_rows<S>(p.W_ih, p.W_ih_int8, G, H, p.I, j0, n, H, j0, 1, weight_storage));
      recurrent_rhs.push_back(gate_rows<S>(p.W_hh, p.W_hh_int8, G, H, H, j0, n, n, 0, 1, weight_storage));
      bias[l] = folded_bias(p);
    }
    const FixedRhs<S> head_rhs =
        w.head_int8
            ? FixedRhs<S>(std::vector<int8::Segment>{{w.head_int8.q + v0 * H, H, w.head_int8.scale + v0, nv, 0}}, H, 1)
            : FixedRhs<S>(gemm::MatView<S>{w.head_W + v0 * H, H, true}, H, nv, 1, weight_storage);
    std::vector<S> rec(G * n);

    for (int64_t step = 0; step <= total_steps; ++step) {
      const int64_t cur = step & 1, nxt = cur ^ 1;
      if (tid == 0) std::copy(w.embedding + next_token * E, w.embedding + (next_token + 1) * E, x0.data() + cur * E);
      step_barrier.wait();
      for (int64_t l = 0; l < L; ++l) {
        if (n > 0) {
          const S* x = l == 0 ? x0.data() + cur * E : h.data() + (nxt * L + l - 1) * H;
          const S* h_prev = h.data() + (cur * L + l) * H;
          S* h_new = h.data() + (nxt * L + l) * H;
          S* pre_l = pre.data() + l * GH;
          input_rhs[l].apply(1, x, w.rnn[l].I, S(0), pre_l, GH);
          recurrent_rhs[l].apply(1, h_prev, H, S(0), rec.data(), G * n);
          RowForward<S> r;
          r.pre = pre_l + j0;
          r.bias = bias[l].data() + j0;
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
        step_barrier.wait();
      }
      const bool sampling = step >= P - 1 && step < total_steps;
      if (sampling && nv > 0) {
        head_rhs.apply(1, h.data() + (nxt * L + L - 1) * H, H, S(0), logits.data() + v0, nv);
        if (w.head_b)
          for (int64_t v = 0; v < nv; ++v) logits[v0 + v] += w.head_b[v0 + v];
      }
      step_barrier.wait();
      if (tid == 0 && step < total_steps) {
        if (sampling) {
          next_token = choose_token(logits.data(), V, opt, rng, keys, probs);
          out[step - (P - 1)] = next_token;
        } else {
          next_token = prompt[step + 1];
        }
      }
    }
  }
  monitor.finish();
  // The last iteration fed the final sampled token through the layers, so the state covers every token.
  const int64_t final_buf = (total_steps + 1) & 1;
  std::copy(h.begin() + final_buf * L * H, h.begin() + (final_buf + 1) * L * H, h_state);
  if (lstm) std::copy(c.begin() + final_buf * L * H, c.begin() + (final_buf + 1) * L * H, c_state);
}

}  // namespace rnnfast
