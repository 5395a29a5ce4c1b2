"""The same language-model training as `rnnfast train`, written with PyTorch, for side-by-side time-to-loss.

Same data split (char level: first 90% / last 10%; word level: the given files), the same stream layout for
truncated back-propagation through time, the same model (embedding -> LSTM/GRU stack -> linear), optimizer,
clipping and evaluation schedule. Writes metrics.jsonl records with the keys rnnfast writes.

    python bench/torch_lm.py --data ../shared/data/tinyshakespeare.txt --embed 64 --hidden 256 --layers 2 \\
        --seq-len 100 --batch-size 64 --lr 2e-3 --clip 5 --eval-every 100 --minutes 4 --out runs/torch-ts

``--matmul-precision bfloat16`` runs the forward passes (training and evaluation) under PyTorch's bfloat16
autocast, the counterpart of ``rnnfast train --matmul-precision bfloat16``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from rnnfast import text


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    n = len(ids) // batch_size
    return ids[: n * batch_size].view(batch_size, n).t().contiguous()


class LM(nn.Module):
    def __init__(self, vocab, embed, hidden, layers, cell, dropout, init_scale):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](embed, hidden, layers, dropout=dropout)
        self.head = nn.Linear(hidden, vocab)
        if init_scale:
            for p in self.parameters():
                nn.init.uniform_(p, -init_scale, init_scale)

    def forward(self, x, state):
        y, state = self.rnn(self.drop(self.embedding(x)), state)
        return self.head(self.drop(y)), state


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def evaluate(model, streams, seq_len, precision):
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad(), precision():
        for i in range(0, len(streams) - 1, seq_len):
            n = min(seq_len, len(streams) - 1 - i)
            logits, state = model(streams[i : i + n], state)
            total += nn.functional.cross_entropy(
                logits.view(-1, logits.size(-1)), streams[i + 1 : i + 1 + n].reshape(-1), reduction="sum"
            ).item()
            count += n * streams.size(1)
    model.train()
    return total / count


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--val-data")
    p.add_argument("--test-data")
    p.add_argument("--level", choices=("char", "word"), default="char")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-decay", type=float, default=None)
    p.add_argument("--decay-after", type=int, default=1)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--init-scale", type=float, default=None)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--matmul-precision", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    precision = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if args.matmul_precision == "bfloat16"
        else contextlib.nullcontext
    )
    train_text = text.read_text(args.data)
    if args.val_data:
        val_text = text.read_text(args.val_data)
    else:
        cut = int(len(train_text) * 0.9)
        train_text, val_text = train_text[:cut], train_text[cut:]
    test_text = text.read_text(args.test_data) if args.test_data else None
    if args.level == "char":
        tok = text.CharTokenizer.fit(train_text + val_text + (test_text or ""))
    else:
        tok = text.WordTokenizer.fit(train_text)
    train = batchify(torch.from_numpy(tok.encode(train_text)), args.batch_size)
    eval_batch = 10 if args.level == "word" else args.batch_size
    val = batchify(torch.from_numpy(tok.encode(val_text)), eval_batch)
    test = batchify(torch.from_numpy(tok.encode(test_text)), eval_batch) if test_text else None

    model = LM(tok.vocab_size, args.embed, args.hidden, args.layers, args.cell, args.dropout, args.init_scale)
    opt = (
        torch.optim.Adam(model.parameters(), lr=args.lr)
        if args.optimizer == "adam"
        else torch.optim.SGD(model.parameters(), lr=args.lr)
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = out / "metrics.jsonl"
    metrics.unlink(missing_ok=True)
    t0 = time.perf_counter()
    step, window_loss, window_items, window_t = 0, 0.0, 0, time.perf_counter()
    deadline = args.minutes * 60 if args.minutes else None

    def log_eval(epoch):
        nonlocal window_loss, window_items, window_t
        tokens_per_s = window_items / (time.perf_counter() - window_t)  # training alone, as rnnfast train counts
        elapsed = time.perf_counter() - t0
        val_loss = evaluate(model, val, args.seq_len, precision)
        rec = {
            "step": step,
            "epoch": epoch,
            "elapsed_s": round(elapsed, 3),
            "train_loss": window_loss / max(window_items, 1),
            "val_loss": val_loss,
            "val_ppl": math.exp(val_loss),
            "val_bpc": val_loss / math.log(2),
            "tokens_per_s": tokens_per_s,
        }
        with open(metrics, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
        window_loss, window_items, window_t = 0.0, 0, time.perf_counter()

    done = False
    for epoch in range(args.epochs):
        if args.lr_decay:
            decays = 0 if epoch < args.decay_after else epoch - args.decay_after + 1
            for group in opt.param_groups:
                group["lr"] = args.lr * args.lr_decay**decays
        state = None
        for i in range(0, len(train) - 1, args.seq_len):
            n = min(args.seq_len, len(train) - 1 - i)
            x, y = train[i : i + n], train[i + 1 : i + 1 + n]
            state = detach(state) if state is not None else None
            with precision():
                logits, state = model(x, state)
                loss = nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            if args.clip:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            step += 1
            window_loss += loss.item() * x.numel()
            window_items += x.numel()
            if args.eval_every and step % args.eval_every == 0:
                log_eval(epoch)
            if deadline and time.perf_counter() - t0 > deadline:
                done = True
                break
        if not args.eval_every or step % args.eval_every:
            log_eval(epoch + 1)
        if done:
            break
    if test is not None:
        test_loss = evaluate(model, test, args.seq_len, precision)
        rec = {"final": True, "step": step, "test_loss": test_loss, "test_ppl": math.exp(test_loss)}
        with open(metrics, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
