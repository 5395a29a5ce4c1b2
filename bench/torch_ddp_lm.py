"""The language-model training step of bench/torch_lm.py, data-parallel with PyTorch's DistributedDataParallel
(gloo backend), for bench/mpi_scaling.py's comparison with ``mpiexec -n N rnnfast train``.

Same model, global batch and stream layout as ``rnnfast train``: the global batch's streams are split into
contiguous shares, one per process; each process averages its loss over its own tokens and DDP averages the
gradients, which gives the gradient of the global batch. Launch with torchrun, one thread per process:

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 bench/torch_ddp_lm.py --model tinyshakespeare \\
        --seconds 40

Prints one JSON line (rank 0): global tokens per second over the timed steps (the first window is a warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch_lm import LM, batchify, detach

from rnnfast import text

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Model and schedule of bench/RESULTS.md's tinyshakespeare and Penn Treebank runs.
MODELS = {
    "tinyshakespeare": dict(
        data=DATA / "tinyshakespeare.txt",
        level="char",
        embed=64,
        hidden=256,
        layers=2,
        seq_len=100,
        batch=64,
        optimizer="adam",
        lr=2e-3,
        clip=5.0,
        window=5,
    ),
    "ptb-small": dict(
        data=DATA / "ptb" / "ptb.train.txt",
        level="word",
        embed=200,
        hidden=200,
        layers=2,
        seq_len=20,
        batch=20,
        optimizer="sgd",
        lr=20.0,
        clip=0.25,
        window=25,
    ),
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=tuple(MODELS), required=True)
    p.add_argument("--seconds", type=float, default=40.0, help="time the steps for about this long")
    args = p.parse_args()
    m = MODELS[args.model]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(1234)
    content = text.read_text(m["data"])
    tok = text.CharTokenizer.fit(content) if m["level"] == "char" else text.WordTokenizer.fit(content)
    streams = batchify(torch.from_numpy(tok.encode(content)), m["batch"])
    share, extra = divmod(m["batch"], size)
    start = rank * share + min(rank, extra)
    streams = streams[:, start : start + share + (rank < extra)].contiguous()
    model = DistributedDataParallel(
        LM(tok.vocab_size, m["embed"], m["hidden"], m["layers"], "lstm", 0.0, 0.1 if m["level"] == "word" else None)
    )
    opt = (torch.optim.Adam if m["optimizer"] == "adam" else torch.optim.SGD)(model.parameters(), lr=m["lr"])
    tokens_per_step = m["seq_len"] * m["batch"]
    rates, state, steps, t = [], None, 0, time.perf_counter()
    begin = t
    for i in range(0, len(streams) - 1, m["seq_len"]):
        n = min(m["seq_len"], len(streams) - 1 - i)
        x, y = streams[i : i + n], streams[i + 1 : i + 1 + n]
        state = detach(state) if state is not None else None
        logits, state = model(x, state)
        loss = nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), m["clip"])
        opt.step()
        steps += 1
        if steps % m["window"] == 0:
            now = time.perf_counter()
            rates.append(m["window"] * tokens_per_step / (now - t))
            t = now
            # Every rank stops after the same step: rank 0's clock decides.
            done = torch.tensor([now - begin >= args.seconds], dtype=torch.int32)
            dist.broadcast(done, 0)
            if done.item():
                break
    if rank == 0:
        timed = rates[1:] or rates
        print(json.dumps({"tokens_per_s": statistics.median(timed), "windows": rates, "ranks": size}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
