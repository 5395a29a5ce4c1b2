"""What rounding a language model's weights to bfloat16 costs in loss: evaluates a checkpoint on a text file with
its float32 weights, then with the weight matrices that ``generate(..., weight_dtype="bfloat16")`` rounds (the
recurrent and output layers'; biases and the embedding stay float32), rounded by PyTorch's conversion. Generation
with bfloat16 weights computes exactly the float32 model on such rounded weights (tests/test_generate.py).

    python bench/bfloat16_loss.py runs/ts/model.rnnfast --data ../shared/data/tinyshakespeare.txt --last 0.1
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import rnnfast as rf
from rnnfast.tasks.lm import LanguageModelTask


def evaluate(model, ids: np.ndarray, seq_len: int, batch_size: int) -> dict:
    result = LanguageModelTask(ids, ids, seq_len, batch_size).evaluate(model, "val")
    return {k: result[k] for k in ("loss", "ppl", "bpc")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", required=True, help="text file, encoded with the checkpoint's tokenizer")
    parser.add_argument("--last", type=float, default=1.0, help="evaluate only this final fraction of the file")
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()

    ckpt = rf.load(args.checkpoint)
    model = ckpt.model.eval()
    if model.tie_weights:
        raise SystemExit(
            "a model with tied weights keeps its embedding in float32 but rounds the output layer; "
            "this script rounds both, so it does not apply"
        )
    with open(args.data, encoding="utf-8") as f:
        text = f.read()
    if ckpt.tokenizer.kind == "word":
        ids = ckpt.tokenizer.encode(text)
        ids = ids[int(len(ids) * (1 - args.last)) :]
    else:
        ids = ckpt.tokenizer.encode(text[int(len(text) * (1 - args.last)) :])
    full = evaluate(model, ids, args.seq_len, args.batch_size)
    state = model.state_dict()
    for name in state:
        if name.startswith("rnn.weight") or name == "head.weight":
            state[name] = torch.from_numpy(state[name]).to(torch.bfloat16).float().numpy()
    model.load_state_dict(state)
    rounded = evaluate(model, ids, args.seq_len, args.batch_size)
    print(
        json.dumps(
            {
                "tokens": int(ids.size),
                "float32": full,
                "bfloat16_weights": rounded,
                "loss_change": rounded["loss"] - full["loss"],
            }
        )
    )


if __name__ == "__main__":
    main()
