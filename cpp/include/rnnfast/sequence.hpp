// One recurrent layer, one direction, over a whole sequence: forward (training or inference) and BPTT backward.
//
// Threads split the hidden units once per call; each keeps a packed copy of the rows of W_ih and W_hh that feed
// its units (all gates), projects its own columns of the input for all steps, and then per step runs only its
// recurrent GEMM and the fused pointwise pass for its units. Steps are separated by a single barrier, because
// every thread needs the whole h_prev. Backward mirrors this: pointwise for own units, a barrier, then own
// columns of dh_prev; the weight and input gradients are a few large GEMMs over all steps afterwards.
//
// Variable lengths follow PyTorch's packed sequences: at a position t >= lengths[b] the output is 0, the state
// passes through unchanged and no gradient is produced, so the final state is the one after each sequence's
// own last step (forward) or after t = 0 (reverse).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "rnnfast/cells.hpp"
#include "rnnfast/matmul.hpp"
#include "rnnfast/parallel.hpp"

namespace rnnfast {

template <class S>
struct LayerParams {
  Cell cell;
  int64_t I, H;
  const S* W_ih;  // (G*H, I)
  const S* W_hh;  // (G*H, H)
  const S* b_ih;  // (G*H) or nullptr
  const S* b_hh;  // (G*H) or nullptr
  // Inference with int8 weights (float only): W_ih and W_hh are then nullptr.
  int8::Weights W_ih_int8 = {};
  int8::Weights W_hh_int8 = {};
};

template <class S>
struct LayerGrads {
  S* dW_ih;  // (G*H, I)
  S* dW_hh;  // (G*H, H)
  S* db_ih;  // (G*H) or nullptr
  S* db_hh;  // (G*H) or nullptr
};

struct SeqShape {
  int64_t T, B;
  const int64_t* lengths;  // (B) each in 1..T, or nullptr for full length
  bool reverse;
  bool valid(int64_t t, int64_t b) const { return lengths == nullptr || t < lengths[b]; }
  int64_t time_at(int64_t step) const { return reverse ? T - 1 - step : step; }
};

inline int64_t workspace_size(Cell cell, int64_t T, int64_t B, int64_t H) { return T * B * H * workspace_units(cell); }

// Views into the training workspace: act (T*B, G*H), h_prev (T*B, H), then LSTM c_prev, tanh(c_new) / GRU hn.
template <class S>
struct WorkspaceView {
  S *act, *h_prev, *c_prev, *aux0;
  WorkspaceView(Cell cell, S* base, int64_t T, int64_t B, int64_t H) {
    const int64_t TBH = T * B * H;
    act = base;
    h_prev = act + TBH * num_gates(cell);
    c_prev = cell == Cell::LSTM ? h_prev + TBH : nullptr;
    aux0 = cell == Cell::LSTM ? h_prev + 2 * TBH : (cell == Cell::GRU ? h_prev + TBH : nullptr);
  }
};

// b_ih plus every part of b_hh that is simply added to the pre-activation (all but GRU's n gate).
template <class S>
std::vector<S> folded_bias(const LayerParams<S>& p) {
  const int G = num_gates(p.cell);
  std::vector<S> bias(G * p.H, S(0));
  for (int64_t k = 0; k < G * p.H; ++k) {
    if (p.b_ih) bias[k] += p.b_ih[k];
    const bool hidden_n_gate = p.cell == Cell::GRU && k >= 2 * p.H;
    if (p.b_hh && !hidden_n_gate) bias[k] += p.b_hh[k];
  }
  return bias;
}

// The rows of a (G*H, K) gate weight matrix, float W or int8 Wq, that feed units [j0, j0 + n) of every gate, as one
// operand whose gate g lands in columns [g * gate_stride + dest0, + n).
template <class S>
FixedRhs<S> gate_rows(const S* W, const int8::Weights& Wq, int G, int64_t H, int64_t K, int64_t j0, int64_t n,
                      int64_t gate_stride, int64_t dest0, int64_t max_rows, RhsStorage storage) {
  if (Wq) {
    std::vector<int8::Segment> rows;
    for (int g = 0; g < G; ++g)
      rows.push_back({Wq.q + (g * H + j0) * K, K, Wq.scale + g * H + j0, n, g * gate_stride + dest0});
    return FixedRhs<S>(rows, K, max_rows);
  }
  std::vector<gemm::Segment<S>> rows;
  for (int g = 0; g < G; ++g)
    rows.push_back({gemm::MatView<S>{W + (g * H + j0) * K, K, true}, n, g * gate_stride + dest0});
  return FixedRhs<S>(rows, K, max_rows, storage);
}

template <class S>
void sequence_forward(const LayerParams<S>& p, const SeqShape& s,
                      const S* x,         // (T, B, I)
                      const S* h0,        // (B, H)
                      const S* c0,        // (B, H) LSTM, else ignored
                      S* y, int64_t ldy,  // (T, B, ldy): writes columns [0, H)
                      S* hT, S* cT,       // (B, H)
                      S* workspace) {     // training: workspace_size(); nullptr: inference
  const Cell cell = p.cell;
  const int G = num_gates(cell);
  const int64_t T = s.T, B = s.B, I = p.I, H = p.H, GH = G * H;
  const bool training = workspace != nullptr;
  const bool lstm = cell == Cell::LSTM;
  const std::vector<S> bias = folded_bias(p);

  // Training projects every step into the workspace once; inference keeps a bounded chunk of steps.
  const int64_t chunk_steps = training ? T : std::min<int64_t>(T, std::max<int64_t>(1, 256 / B));
  std::vector<S> chunk;
  if (!training) chunk.resize(chunk_steps * B * GH);
  std::vector<S> h_buf(2 * B * H), c_buf(lstm ? 2 * B * H : 0);
  std::copy(h0, h0 + B * H, h_buf.begin());
  if (lstm) std::copy(c0, c0 + B * H, c_buf.begin());
  WorkspaceView<S> ws(cell, workspace, T, B, H);

  const int nthreads = threads_for_step<S>(B, GH, H + I / 4, H);
  StepBarrier step_barrier;
  TeamMonitor monitor(!std::is_same_v<S, double>);
#pragma omp parallel num_threads(nthreads)
  {
    TeamMonitor::Member member(monitor);
    const UnitRange units = unit_range(H, team_size(), thread_id());
    const int64_t j0 = units.begin, n = units.size();
    std::vector<S> rec(B * G * n);
    // x W_ih^T: gate g's n columns land at g*H + j0 of a projection row; h W_hh^T: all own gate columns, gate by
    // gate, into `rec`. Both read the rows of the weights that feed this thread's units.
    const RhsStorage storage = T * B >= gemm::kMinRowsToPack ? RhsStorage::packed : RhsStorage::in_place;
    const FixedRhs<S> projection = gate_rows<S>(p.W_ih, p.W_ih_int8, G, H, I, j0, n, H, j0, chunk_steps * B, storage);
    const FixedRhs<S> recurrence = gate_rows<S>(p.W_hh, p.W_hh_int8, G, H, H, j0, n, n, 0, B, storage);
    const S* b_hn = (cell == Cell::GRU && p.b_hh) ? p.b_hh + 2 * H + j0 : nullptr;
    S* h_cur = h_buf.data();
    S* h_next = h_buf.data() + B * H;
    S* c_cur = lstm ? c_buf.data() : nullptr;
    S* c_next = lstm ? c_buf.data() + B * H : nullptr;
    S* proj = training ? ws.act : chunk.data();
    int64_t chunk_end_step = 0, chunk_t_lo = 0;  // steps before chunk_end_step are projected

    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = s.time_at(step);
      if (n > 0 && step >= chunk_end_step) {
        // Project the next steps in processing order for this thread's columns.
        const int64_t steps = std::min(chunk_steps, T - step);
        chunk_end_step = step + steps;
        chunk_t_lo = s.reverse ? t - steps + 1 : t;
        S* dst = training ? proj + chunk_t_lo * B * GH : proj;
        projection.apply(steps * B, x + chunk_t_lo * B * I, I, S(0), dst, GH);
      }
      if (n > 0) {
        recurrence.apply(B, h_cur, H, S(0), rec.data(), G * n);
        const S* pre_t = proj + (training ? t : t - chunk_t_lo) * B * GH;
        for (int64_t b = 0; b < B; ++b) {
          const int64_t hb = b * H + j0;
          S* y_row = y + (t * B + b) * ldy + j0;
          if (!s.valid(t, b)) {
            std::copy(h_cur + hb, h_cur + hb + n, h_next + hb);
            if (lstm) std::copy(c_cur + hb, c_cur + hb + n, c_next + hb);
            std::fill(y_row, y_row + n, S(0));
            if (training) {
              // Backward multiplies these rows by zero gradients; keep them finite.
              std::fill(ws.h_prev + (t * B + b) * H + j0, ws.h_prev + (t * B + b) * H + j0 + n, S(0));
            }
            continue;
          }
          RowForward<S> r;
          r.pre = pre_t + b * GH + j0;
          r.bias = bias.data() + j0;
          r.rec = rec.data() + b * G * n;
          r.b_hn = b_hn;
          r.h_prev = h_cur + hb;
          r.c_prev = lstm ? c_cur + hb : nullptr;
          r.h_new = h_next + hb;
          r.c_new = lstm ? c_next + hb : nullptr;
          r.act = training ? ws.act + (t * B + b) * GH + j0 : nullptr;
          r.aux0 = training && ws.aux0 ? ws.aux0 + (t * B + b) * H + j0 : nullptr;
          cell_forward_row(cell, H, n, r);
          std::copy(h_next + hb, h_next + hb + n, y_row);
          if (training) {
            std::copy(h_cur + hb, h_cur + hb + n, ws.h_prev + (t * B + b) * H + j0);
            if (lstm) std::copy(c_cur + hb, c_cur + hb + n, ws.c_prev + (t * B + b) * H + j0);
          }
        }
      }
      step_barrier.wait();
      std::swap(h_cur, h_next);
      std::swap(c_cur, c_next);
    }
    for (int64_t b = 0; b < B; ++b) {
      std::copy(h_cur + b * H + j0, h_cur + b * H + j0 + n, hT + b * H + j0);
      if (lstm) std::copy(c_cur + b * H + j0, c_cur + b * H + j0 + n, cT + b * H + j0);
    }
  }
  monitor.finish();
}

// A buffer kept by the calling thread from call to call, grown when a call needs more. The backward pass's gate
// gradients are tens of megabytes; allocated afresh, they come back from the kernel as new pages every call (a
// page fault per 4 KB: 21,000 faults per backward of a 512-unit LSTM over 100 x 64 tokens). Every element is
// written before it is read, so stale contents never matter. One per slot, so one call can hold two.
template <class S, int slot>
S* thread_scratch(int64_t count) {
  thread_local std::vector<S> buffer;
  if (static_cast<int64_t>(buffer.size()) < count) {
    buffer.clear();
    buffer.shrink_to_fit();
    buffer.resize(count);
  }
  return buffer.data();
}

template <class S>
void sequence_backward(const LayerParams<S>& p, const SeqShape& s,
                       const S* x,                 // (T, B, I)
                       const S* workspace,         // from sequence_forward in training mode
                       const S* dy, int64_t ldy,   // (T, B, ldy): reads columns [0, H); nullptr = zeros
                       const S* dhT,               // (B, H) or nullptr
                       const S* dcT,               // (B, H) LSTM, or nullptr
                       S* dx, bool accumulate_dx,  // (T, B, I)
                       S* dh0,                     // (B, H)
                       S* dc0,                     // (B, H) LSTM
                       const LayerGrads<S>& grads) {
  const Cell cell = p.cell;
  const int G = num_gates(cell);
  const int64_t T = s.T, B = s.B, I = p.I, H = p.H, GH = G * H, TB = T * B;
  const bool lstm = cell == Cell::LSTM;
  WorkspaceView<S> ws(cell, const_cast<S*>(workspace), T, B, H);

  S* dG = thread_scratch<S, 0>(TB * GH);
  S* dGh = cell == Cell::GRU ? thread_scratch<S, 1>(TB * GH) : dG;
  std::vector<S> dh_carry(B * H, S(0)), dc_carry(lstm ? B * H : 0, S(0));
  if (dhT) std::copy(dhT, dhT + B * H, dh_carry.begin());
  if (lstm && dcT) std::copy(dcT, dcT + B * H, dc_carry.begin());

  const int nthreads = threads_for_step<S>(B, GH, H, H);
  StepBarrier step_barrier;
  TeamMonitor monitor(!std::is_same_v<S, double>);
#pragma omp parallel num_threads(nthreads)
  {
    TeamMonitor::Member member(monitor);
    const UnitRange units = unit_range(H, team_size(), thread_id());
    const int64_t j0 = units.begin, n = units.size();
    // Columns [j0, j0+n) of W_hh (G*H x n): this thread's share of dh_prev = dGh W_hh.
    const FixedRhs<S> recurrence(gemm::MatView<S>{p.W_hh + j0, H, false}, GH, n, B,
                                 T * B >= gemm::kMinRowsToPack ? RhsStorage::packed : RhsStorage::in_place);
    std::vector<S> dh(n);
    // This thread's columns of the bias gradients, summed while each row of dG is still in L1 instead of in two
    // passes over all of dG afterwards (tens of megabytes at B = 64). LSTM and RNN have dGh == dG: one sum serves
    // both biases.
    const bool separate_hidden_sum = dGh != dG && grads.db_hh;
    std::vector<S> db_sum(grads.db_ih || grads.db_hh ? G * n : 0, S(0));
    std::vector<S> dbh_sum(separate_hidden_sum ? G * n : 0, S(0));
    auto add_row = [&](std::vector<S>& sum, const S* row) {
      for (int g = 0; g < G; ++g)
        for (int64_t k = 0; k < n; ++k) sum[g * n + k] += row[g * H + k];
    };

    for (int64_t step = T - 1; step >= 0; --step) {
      const int64_t t = s.time_at(step);
      for (int64_t b = 0; b < B && n > 0; ++b) {
        const int64_t row = t * B + b, hb = b * H + j0;
        S* dG_row = dG + row * GH + j0;
        S* dGh_row = dGh + row * GH + j0;
        if (!s.valid(t, b)) {
          for (int g = 0; g < G; ++g) {
            std::fill(dG_row + g * H, dG_row + g * H + n, S(0));
            std::fill(dGh_row + g * H, dGh_row + g * H + n, S(0));
          }
          continue;
        }
        for (int64_t k = 0; k < n; ++k) dh[k] = dh_carry[hb + k] + (dy ? dy[row * ldy + j0 + k] : S(0));
        RowBackward<S> r;
        r.dh = dh.data();
        r.act = ws.act + row * GH + j0;
        r.h_prev = ws.h_prev + row * H + j0;
        r.c_prev = lstm ? ws.c_prev + row * H + j0 : nullptr;
        r.aux0 = ws.aux0 ? ws.aux0 + row * H + j0 : nullptr;
        r.dc = lstm ? dc_carry.data() + hb : nullptr;
        r.dG = dG_row;
        r.dGh = dGh_row;
        r.dh_direct = dh_carry.data() + hb;
        cell_backward_row(cell, H, n, r);
        if (!db_sum.empty()) add_row(db_sum, dG_row);
        if (separate_hidden_sum) add_row(dbh_sum, dGh_row);
      }
      step_barrier.wait();
      recurrence.apply(B, dGh + t * B * GH, GH, S(1), dh_carry.data() + j0, H);
    }
    for (int g = 0; g < G; ++g)
      for (int64_t k = 0; k < n; ++k) {
        if (grads.db_ih) grads.db_ih[g * H + j0 + k] += db_sum[g * n + k];
        if (grads.db_hh) grads.db_hh[g * H + j0 + k] += (separate_hidden_sum ? dbh_sum : db_sum)[g * n + k];
      }
  }
  monitor.finish();

  std::copy(dh_carry.begin(), dh_carry.end(), dh0);
  if (lstm) std::copy(dc_carry.begin(), dc_carry.end(), dc0);

  using V = gemm::MatView<S>;
  matmul<S>(TB, I, GH, V{dG, GH, false}, V{p.W_ih, I, false}, S(accumulate_dx ? 1 : 0), dx, I);
  matmul<S>(GH, I, TB, V{dG, GH, true}, V{x, I, false}, S(1), grads.dW_ih, I);
  matmul<S>(GH, H, TB, V{dGh, GH, true}, V{ws.h_prev, H, false}, S(1), grads.dW_hh, H);
}

}  // namespace rnnfast
