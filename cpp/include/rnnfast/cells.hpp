// Per-cell gate math: the pointwise part of one time step for a slice of hidden units, forward and backward.
//
// Gate layouts follow PyTorch: LSTM (i, f, g, o), GRU (r, z, n) with the reset gate applied to W_hn h + b_hn,
// vanilla RNN one gate. Pre-activations arrive split in two: `pre` holds W_ih x + folded biases in the global
// (G*H) layout of one row, `rec` holds h_prev W_hh^T for this thread's slice of units only, in (G*n) layout.
// Eigen array expressions give vectorised exp/tanh/logistic without -ffast-math.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace rnnfast {

enum class Cell : int { RNN_TANH = 0, RNN_RELU = 1, LSTM = 2, GRU = 3 };

inline int num_gates(Cell cell) {
  switch (cell) {
    case Cell::LSTM: return 4;
    case Cell::GRU: return 3;
    default: return 1;
  }
}

inline bool has_cell_state(Cell cell) { return cell == Cell::LSTM; }

inline Cell cell_from_name(const std::string& name) {
  if (name == "rnn_tanh") return Cell::RNN_TANH;
  if (name == "rnn_relu") return Cell::RNN_RELU;
  if (name == "lstm") return Cell::LSTM;
  if (name == "gru") return Cell::GRU;
  throw std::invalid_argument("cell: got '" + name + "', expected one of rnn_tanh, rnn_relu, lstm, gru");
}

template <class S>
using ArrMap = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>>;
template <class S>
using ConstArrMap = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;

// Per-(t, b) values that backward needs, as offsets into one training workspace row block.
// act: activated gates (G*H) [RNN: the new h]; h_prev (H); LSTM: c_prev (H), tanh(c_new) (H); GRU: W_hn h + b_hn (H).
inline int64_t workspace_units(Cell cell) {
  switch (cell) {
    case Cell::LSTM: return 4 + 1 + 1 + 1;
    case Cell::GRU: return 3 + 1 + 1;
    default: return 1 + 1;
  }
}

// Pointers for one row (one batch element) of one step, all already offset to this thread's first unit j0.
template <class S>
struct RowForward {
  const S* pre;     // (G*H) row of input projections, offset by j0; gate g at pre[g*H + k]
  const S* rec;     // (G*n) this slice's recurrent product; gate g at rec[g*n + k]
  const S* b_hn;    // GRU: (n) hidden bias of the n gate, or nullptr
  const S* h_prev;  // (n)
  const S* c_prev;  // (n) LSTM only
  S* h_new;         // (n)
  S* c_new;         // (n) LSTM only
  S* act;           // training: (G*H) row of activated gates, offset by j0; nullptr in inference
  S* aux0;          // training: LSTM tanh(c_new) / GRU W_hn h + b_hn, (n); nullptr in inference
};

template <class S>
inline void cell_forward_row(Cell cell, int64_t H, int64_t n, const RowForward<S>& r) {
  using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
  auto pre = [&](int g) { return ConstArrMap<S>(r.pre + g * H, n); };
  auto rec = [&](int g) { return ConstArrMap<S>(r.rec + g * n, n); };
  ArrMap<S> h_new(r.h_new, n);
  switch (cell) {
    case Cell::RNN_TANH:
      h_new = (pre(0) + rec(0)).tanh();
      if (r.act) ArrMap<S>(r.act, n) = h_new;
      break;
    case Cell::RNN_RELU:
      h_new = (pre(0) + rec(0)).cwiseMax(S(0));
      if (r.act) ArrMap<S>(r.act, n) = h_new;
      break;
    case Cell::LSTM: {
      ArrMap<S> c_new(r.c_new, n);
      ConstArrMap<S> c_prev(r.c_prev, n);
      if (r.act) {
        ArrMap<S> i(r.act, n), f(r.act + H, n), g(r.act + 2 * H, n), o(r.act + 3 * H, n), tc(r.aux0, n);
        i = (pre(0) + rec(0)).logistic();
        f = (pre(1) + rec(1)).logistic();
        g = (pre(2) + rec(2)).tanh();
        o = (pre(3) + rec(3)).logistic();
        c_new = f * c_prev + i * g;
        tc = c_new.tanh();
        h_new = o * tc;
      } else {
        c_new = (pre(1) + rec(1)).logistic() * c_prev + (pre(0) + rec(0)).logistic() * (pre(2) + rec(2)).tanh();
        h_new = (pre(3) + rec(3)).logistic() * c_new.tanh();
      }
      break;
    }
    case Cell::GRU: {
      ConstArrMap<S> h_prev(r.h_prev, n);
      Arr hn = rec(2);
      if (r.b_hn) hn += ConstArrMap<S>(r.b_hn, n);
      if (r.act) {
        ArrMap<S> rg(r.act, n), z(r.act + H, n), ng(r.act + 2 * H, n);
        rg = (pre(0) + rec(0)).logistic();
        z = (pre(1) + rec(1)).logistic();
        ng = (pre(2) + rg * hn).tanh();
        ArrMap<S>(r.aux0, n) = hn;
        h_new = (S(1) - z) * ng + z * h_prev;
      } else {
        Arr z = (pre(1) + rec(1)).logistic();
        Arr ng = (pre(2) + (pre(0) + rec(0)).logistic() * hn).tanh();
        h_new = (S(1) - z) * ng + z * h_prev;
      }
      break;
    }
  }
}

template <class S>
struct RowBackward {
  const S* dh;      // (n) gradient reaching h_new (from the output and from step t+1)
  const S* act;     // (G*H) activated gates, offset by j0
  const S* h_prev;  // (n)
  const S* c_prev;  // (n) LSTM
  const S* aux0;    // (n) LSTM tanh(c_new) / GRU W_hn h + b_hn
  S* dc;            // (n) LSTM: in: gradient reaching c_new from step t+1; out: gradient reaching c_prev
  S* dG;            // (G*H) gradient of the input pre-activations, offset by j0
  S* dGh;           // (G*H) GRU: gradient of the recurrent pre-activations (differs in the n gate); else == dG
  S* dh_direct;     // (n) out: the part of dh_prev that does not pass through W_hh (GRU: dh * z; else 0)
};

template <class S>
inline void cell_backward_row(Cell cell, int64_t H, int64_t n, const RowBackward<S>& r) {
  ConstArrMap<S> dh(r.dh, n);
  ArrMap<S> dh_direct(r.dh_direct, n);
  switch (cell) {
    case Cell::RNN_TANH: {
      ConstArrMap<S> h(r.act, n);
      ArrMap<S>(r.dG, n) = dh * (S(1) - h * h);
      dh_direct.setZero();
      break;
    }
    case Cell::RNN_RELU: {
      ConstArrMap<S> h(r.act, n);
      ArrMap<S>(r.dG, n) = (h > S(0)).select(dh, S(0));
      dh_direct.setZero();
      break;
    }
    case Cell::LSTM: {
      ConstArrMap<S> i(r.act, n), f(r.act + H, n), g(r.act + 2 * H, n), o(r.act + 3 * H, n);
      ConstArrMap<S> tc(r.aux0, n), c_prev(r.c_prev, n);
      ArrMap<S> dc(r.dc, n);
      dc += dh * o * (S(1) - tc * tc);
      ArrMap<S>(r.dG, n) = dc * g * i * (S(1) - i);
      ArrMap<S>(r.dG + H, n) = dc * c_prev * f * (S(1) - f);
      ArrMap<S>(r.dG + 2 * H, n) = dc * i * (S(1) - g * g);
      ArrMap<S>(r.dG + 3 * H, n) = dh * tc * o * (S(1) - o);
      dc *= f;
      dh_direct.setZero();
      break;
    }
    case Cell::GRU: {
      ConstArrMap<S> rg(r.act, n), z(r.act + H, n), ng(r.act + 2 * H, n), hn(r.aux0, n), h_prev(r.h_prev, n);
      ArrMap<S> dr(r.dG, n), dz(r.dG + H, n), dn(r.dG + 2 * H, n);
      dn = dh * (S(1) - z) * (S(1) - ng * ng);
      dz = dh * (h_prev - ng) * z * (S(1) - z);
      dr = dn * hn * rg * (S(1) - rg);
      ArrMap<S>(r.dGh, n) = dr;
      ArrMap<S>(r.dGh + H, n) = dz;
      ArrMap<S>(r.dGh + 2 * H, n) = dn * rg;
      dh_direct = dh * z;
      break;
    }
  }
}

}  // namespace rnnfast
