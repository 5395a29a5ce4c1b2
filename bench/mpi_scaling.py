"""Data-parallel scaling of ``rnnfast train`` over MPI, against PyTorch DistributedDataParallel.

For the tinyshakespeare model and Penn Treebank small (bench/RESULTS.md's language models), trains with
``rnnfast train`` at each layout (ranks x threads per rank) and with PyTorch DDP (gloo, ``torchrun``, 1 thread per
process, bench/torch_ddp_lm.py), in rounds that alternate the runs so that a change in machine load hits all
alike, and prints medians as a markdown table. Tokens per second are global (all ranks), over the evaluation
windows after the first (a warm-up); validation uses a small held-out file, so its cost stays out of the way.

Also measured, per training step: the bytes allreduced (the gradient arena plus four float64 numbers), the time
in the gradient Allreduce and in the small reduction before it (which also waits for the slowest rank), and the
time of the same Allreduce alone after a barrier (median of 30). From the measured sizes and step times, a
10 Gbit/s network model says what a step would cost across machines.

    python bench/mpi_scaling.py                      # 1x1, 2x1, 1x2 and PyTorch 1x1, 2x1; 3 rounds of 40 s
    python bench/mpi_scaling.py --layouts 1x1,2x1,4x1,8x1,16x1 --rounds 2   # a 16-core machine
    python bench/mpi_scaling.py --worker OUT.json -- train ...   # (internal) one rank of a measured run

Writes every run to ``--json`` (default bench/results/mpi_scaling.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from torch_ddp_lm import DATA, MODELS  # noqa: E402

NETWORK_BYTES_PER_S = 10e9 / 8  # 10 Gbit/s
NETWORK_LATENCY_S = 50e-6  # one message over TCP on such a network, a typical order of magnitude


def rnnfast_args(name: str, val_path: Path, seconds: float) -> list[str]:
    m = MODELS[name]
    args = ["train", "--data", str(m["data"]), "--val-data", str(val_path), "--level", m["level"]]
    args += ["--embed", str(m["embed"]), "--hidden", str(m["hidden"]), "--layers", str(m["layers"])]
    args += ["--seq-len", str(m["seq_len"]), "--batch-size", str(m["batch"]), "--optimizer", m["optimizer"]]
    args += ["--lr", str(m["lr"]), "--clip", str(m["clip"]), "--eval-every", str(m["window"])]
    args += ["--minutes", str(seconds / 60), "--epochs", "1", "--no-progress"]
    return args + (["--init-scale", "0.1"] if m["level"] == "word" else [])


def small_validation(name: str, folder: Path) -> Path:
    """A few thousand tokens that the training vocabulary covers: validation stays cheap."""
    path = folder / f"{name}.val.txt"
    if name == "tinyshakespeare":
        path.write_text(MODELS[name]["data"].read_text()[-20000:])
    else:
        path.write_text("".join((DATA / "ptb" / "ptb.valid.txt").read_text().splitlines(keepends=True)[:150]))
    return path


# ----- one rank of a measured run (under mpiexec) ----------------------------------------------------------
def overlap_head_allreduce(distributed) -> None:
    """The experiment of layouts ending in "o": a language model's output layer (the last parameters of the
    arena, and the first whose backward ends) starts its allreduce (Iallreduce) before the recurrent layers'
    backward runs; the rest of the arena is allreduced after, then the output layer's is waited for."""
    from mpi4py import MPI

    from rnnfast.models import LanguageModel

    comm, pending = MPI.COMM_WORLD, {}

    def backward(self):
        dlogits, self._dlogits = self._dlogits, None
        dy = self.drop_out.backward(self.head.backward(dlogits))
        arena = self.parameters()
        head = arena.grad[arena.offsets[arena.names.index("head.weight")] :]
        head *= head.dtype.type(1.0 / comm.Get_size())  # the benchmark's global batch splits evenly
        pending["head"] = (len(arena.grad) - len(head), comm.Iallreduce(MPI.IN_PLACE, head, op=MPI.SUM))
        dx, _ = self.rnn.backward(dy)
        self.embedding.backward(self.drop_in.backward(dx))

    def allreduce_gradients(model, weight=None):
        start, request = pending.pop("head")
        rest = model.parameters().grad[:start]
        rest *= rest.dtype.type(weight)
        comm.Allreduce(MPI.IN_PLACE, rest, op=MPI.SUM)
        request.Wait()

    LanguageModel.backward = backward
    distributed.allreduce_gradients = allreduce_gradients


def worker(result_path: str, argv: list[str], overlap: bool) -> int:
    import numpy as np

    from rnnfast import cli, distributed

    if overlap and distributed.size() > 1:
        overlap_head_allreduce(distributed)

    spent = {"allreduce_s": 0.0, "reduce_values_s": 0.0, "steps": 0, "grad_bytes": 0}
    allreduce, sum_values = distributed.allreduce_gradients, distributed.sum_values

    def timed_allreduce(model, weight=None):
        start = time.perf_counter()
        allreduce(model, weight)
        spent["allreduce_s"] += time.perf_counter() - start
        spent["steps"] += 1
        spent["grad_bytes"] = model.parameters().grad.nbytes

    def timed_sum(values):
        start = time.perf_counter()
        out = sum_values(values)
        spent["reduce_values_s"] += time.perf_counter() - start
        return out

    distributed.allreduce_gradients, distributed.sum_values = timed_allreduce, timed_sum
    code = cli.main(argv)
    if distributed.size() > 1:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        buffer = np.zeros(spent["grad_bytes"] // 4, np.float32)
        alone = []
        for _ in range(30):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            alone.append(time.perf_counter() - start)
        spent["allreduce_alone_s"] = statistics.median(alone)
    if distributed.rank() == 0:
        Path(result_path).write_text(json.dumps(spent))
    return code


# ----- the driver -------------------------------------------------------------------------------------------
def run_rnnfast(name, ranks, threads, overlap, seconds, folder: Path, mpiexec) -> dict:
    out, result = folder / "run", folder / "result.json"
    shutil.rmtree(out, ignore_errors=True)
    result.unlink(missing_ok=True)
    argv = [*rnnfast_args(name, folder / f"{name}.val.txt", seconds), "--threads", str(threads), "--out", str(out)]
    launcher = [mpiexec, "-n", str(ranks)] if ranks > 1 else []
    command = [*launcher, sys.executable, str(Path(__file__)), "--worker", str(result), *(["--overlap"] * overlap)]
    command += ["--", *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # Whole evaluation windows only: the stop at the time limit adds a record of a partial one.
    rates = [r["tokens_per_s"] for r in records if not r.get("final") and r["step"] % MODELS[name]["window"] == 0]
    measured = json.loads(result.read_text())
    steps = max(measured["steps"], 1)
    return {
        "tokens_per_s": statistics.median(rates[1:] or rates) if rates else None,  # None: not one whole window
        "windows": rates,
        "grad_bytes": measured["grad_bytes"],
        "allreduce_ms_per_step": 1e3 * measured["allreduce_s"] / steps,
        "reduce_values_ms_per_step": 1e3 * measured["reduce_values_s"] / steps,
        "allreduce_alone_ms": 1e3 * measured["allreduce_alone_s"] if "allreduce_alone_s" in measured else None,
    }


def run_torch(name, ranks, seconds) -> dict:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    command = [torchrun, "--standalone", "--nproc-per-node", str(ranks), str(HERE / "torch_ddp_lm.py")]
    command += ["--model", name, "--seconds", str(seconds)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 600, env=env)
    # A process may abort in gloo's teardown after rank 0 has printed its result (seen once in 12 runs).
    if not done.stdout.strip():
        raise RuntimeError(f"{' '.join(command)}\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "exit_code": done.returncode}


def network_model(grad_bytes: int, step_s_one_rank: float) -> list[dict]:
    """A ring allreduce over p machines sends and receives 2 (p - 1) / p of the buffer on each machine's link in
    2 (p - 1) messages; with the global batch fixed, each machine computes 1 / p of one rank's step."""
    rows = []
    for p in (2, 4, 8, 16):
        comm = 2 * (p - 1) / p * grad_bytes / NETWORK_BYTES_PER_S + 2 * (p - 1) * NETWORK_LATENCY_S
        compute = step_s_one_rank / p
        rows.append({"machines": p, "allreduce_ms": 1e3 * comm, "speedup": step_s_one_rank / (compute + comm)})
    return rows


def main() -> int:
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        return worker(sys.argv[i + 1], sys.argv[sys.argv.index("--") + 1 :], "--overlap" in sys.argv[: i + 3])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tinyshakespeare,ptb-small")
    p.add_argument(
        "--layouts",
        default="1x1,2x1,1x2,2x1o",
        help="ranks x threads per rank; a final o: the output layer's allreduce overlaps the recurrent backward",
    )
    p.add_argument("--torch-ranks", default="1,2", help="PyTorch DDP processes (1 thread each); empty: none")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=40.0, help="training time of each run")
    p.add_argument("--json", default=str(HERE / "results" / "mpi_scaling.json"))
    args = p.parse_args()
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    models = args.models.split(",")
    layouts = [(*map(int, layout.rstrip("o").split("x")), layout.endswith("o")) for layout in args.layouts.split(",")]
    torch_ranks = [int(r) for r in args.torch_ranks.split(",") if r]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in models:
            small_validation(name, folder)
        for round_index in range(args.rounds):
            for name in models:
                for ranks, threads, overlap in layouts:
                    measured = run_rnnfast(name, ranks, threads, overlap, args.seconds, folder, mpiexec)
                    library = "rnnfast, overlapped" if overlap else "rnnfast"
                    runs.append({"model": name, "library": library, "ranks": ranks, "threads": threads, **measured})
                    runs[-1].update(round=round_index, load=os.getloadavg()[0])
                    print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
                    Path(args.json).write_text(json.dumps(runs, indent=1))
                for ranks in torch_ranks:
                    measured = run_torch(name, ranks, args.seconds)
                    runs.append({"model": name, "library": "torch DDP", "ranks": ranks, "threads": 1, **measured})
                    runs[-1].update(round=round_index, load=os.getloadavg()[0])
                    print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
                    Path(args.json).write_text(json.dumps(runs, indent=1))
    print(table(runs, models))
    return 0


def table(runs: list[dict], models: list[str]) -> str:
    def median(key, **where):
        values = [r[key] for r in runs if all(r[k] == v for k, v in where.items()) and r.get(key) is not None]
        return statistics.median(values) if values else None

    lines = [
        "| model | library | ranks x threads | tokens/s (median) | runs | vs 1x1 | allreduced per step | "
        "gradient allreduce ms/step | reduction before it (incl. waiting) ms/step | allreduce alone ms |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in models:
        kinds = sorted({(r["library"], r["ranks"], r["threads"]) for r in runs if r["model"] == name})
        for library, ranks, threads in kinds:
            where = dict(model=name, library=library, ranks=ranks, threads=threads)
            rate = median("tokens_per_s", **where)
            base = median("tokens_per_s", model=name, library=library.split(",")[0], ranks=1, threads=1)
            count = sum(1 for r in runs if all(r[k] == v for k, v in where.items()))
            cells = [name, library, f"{ranks}x{threads}", "-" if rate is None else f"{rate:,.0f}", str(count)]
            cells.append(f"{rate / base:.2f}x" if rate and base else "")
            if library.startswith("rnnfast") and ranks > 1:
                size = median("grad_bytes", **where) + 32
                cells += [f"{size / 1e6:.2f} MB", f"{median('allreduce_ms_per_step', **where):.2f}"]
                cells += [f"{median('reduce_values_ms_per_step', **where):.2f}"]
                cells += [f"{median('allreduce_alone_ms', **where):.2f}"]
            else:
                cells += ["", "", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "10 Gbit/s network model (ring allreduce, one rank per machine, global batch fixed):", ""]
    lines += ["| model | machines | allreduce ms/step | step speedup over one machine |", "|---|---:|---:|---:|"]
    for name in models:
        rate = median("tokens_per_s", model=name, library="rnnfast", ranks=1, threads=1)
        size = max((r["grad_bytes"] for r in runs if r["model"] == name and r["library"] == "rnnfast"), default=0)
        if rate is None or not size:
            continue
        step_s = MODELS[name]["seq_len"] * MODELS[name]["batch"] / rate
        for row in network_model(size + 32, step_s):
            lines.append(f"| {name} | {row['machines']} | {row['allreduce_ms']:.2f} | {row['speedup']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
