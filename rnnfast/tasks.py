"""Tasks plug data into the one training loop (rnnfast.train): how to batch, step and evaluate."""

from __future__ import annotations

import math

import numpy as np

from . import metrics
from .models import cross_entropy


def batchify(ids: np.ndarray, batch_size: int, name: str = "data") -> np.ndarray:
    """Lay a token stream out as ``batch_size`` parallel streams, (N, B): column b continues where it left off in
    the next batch, so the final state of one batch is the right initial state of the next (truncated BPTT)."""
    ids = np.asarray(ids)
    per_stream = len(ids) // batch_size
    if per_stream < 2:
        raise ValueError(f"{name}: {len(ids)} tokens are too few for batch size {batch_size} "
                         f"(need at least {2 * batch_size})")
    return np.ascontiguousarray(ids[: per_stream * batch_size].reshape(batch_size, per_stream).T)


def _state_to_json(state):
    if state is None:
        return None
    parts = state if isinstance(state, tuple) else (state,)
    return [p.tolist() for p in parts]


def _state_from_json(obj, dtype):
    if obj is None:
        return None
    parts = tuple(np.asarray(p, dtype=dtype) for p in obj)
    return parts if len(parts) == 2 else parts[0]


class LanguageModelTask:
    """Next-token prediction over token streams with truncated back-propagation through time."""

    metric_names = ("loss", "ppl", "bpc", "accuracy")

    def __init__(self, train_ids, val_ids, seq_len: int, batch_size: int, test_ids=None, eval_batch_size=None,
                 dtype=np.float32):
        self.seq_len = seq_len
        self.train = batchify(train_ids, batch_size, "training data")
        eval_batch = eval_batch_size or batch_size
        self.splits = {"val": self._eval_streams(val_ids, eval_batch, "validation data")}
        if test_ids is not None:
            self.splits["test"] = self._eval_streams(test_ids, eval_batch, "test data")
        self.dtype = dtype

    @staticmethod
    def _eval_streams(ids, batch_size: int, name: str) -> np.ndarray:
        # Short evaluation sets still get evaluated, with fewer parallel streams.
        return batchify(ids, max(1, min(batch_size, len(ids) // 2)), name)

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def num_train_batches(self) -> int:
        return math.ceil((len(self.train) - 1) / self.seq_len)

    def _chunks(self, streams: np.ndarray, start: int = 0):
        for i in range(start * self.seq_len, len(streams) - 1, self.seq_len):
            n = min(self.seq_len, len(streams) - 1 - i)
            yield streams[i : i + n], streams[i + 1 : i + 1 + n]

    def train_batches(self, epoch: int, start: int):
        return self._chunks(self.train, start)

    def train_step(self, model, batch, carry):
        inputs, targets = batch
        loss, state = model.loss(inputs, targets, carry)
        model.backward()
        return loss, inputs.size, state

    def evaluate(self, model, split: str, with_f1: bool = False) -> dict:
        total, count, correct = 0.0, 0, 0
        y_true, y_pred = [], []
        state = None
        for inputs, targets in self._chunks(self.splits[split]):
            logits, state = model.forward(inputs, state)
            loss, n, right = cross_entropy(logits, targets)
            total, count, correct = total + loss * n, count + n, correct + right
            if with_f1:
                y_true.append(targets.reshape(-1))
                y_pred.append(logits.argmax(-1).reshape(-1))
        loss = total / count
        out = {"loss": loss, "ppl": metrics.perplexity(loss), "bpc": metrics.bits_per_char(loss),
               "accuracy": correct / count}
        if with_f1:
            _, _, out["macro_f1"] = metrics.precision_recall_f1(np.concatenate(y_true), np.concatenate(y_pred))
            out["macro_f1"] = float(out["macro_f1"])
        return out

    def carry_to_json(self, carry):
        return _state_to_json(carry)

    def carry_from_json(self, obj):
        return _state_from_json(obj, self.dtype)
