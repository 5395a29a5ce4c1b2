"""One training loop for every task: batches from a task, optimizer and clipping, periodic evaluation,
metrics.jsonl, best/last checkpoints, time limits, Ctrl-C/SIGTERM handling and exact resumption.

A task supplies the data side:
    task.train_batches(epoch, start)  -> iterator over batches of one epoch, beginning at batch ``start``
    task.num_train_batches()          -> batches per epoch
    task.train_step(model, batch, carry) -> (mean loss, items, carry)  # forward + backward, no update
    task.evaluate(model, split)       -> dict of metrics with at least "loss" ("val"/"test" splits)
    task.carry_to_json(carry) / task.carry_from_json(obj)  state carried between batches (e.g. hidden state)
    task.metric_names                 -> metric keys reported as val_<key> in metrics.jsonl
    task.selection (optional)         -> (metric key, "min" or "max") that picks the best checkpoint; default
                                         ("loss", "min")
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import io
from .optim import OPTIMIZERS, StepDecay, clip_grad_norm


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must act on (e.g. a non-finite loss)."""


@dataclass
class TrainConfig:
    epochs: int = 1
    minutes: float | None = None
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_decay: float | None = None
    decay_after: int = 1
    clip: float | None = 5.0
    eval_every: int | None = None
    skip_nonfinite: bool = False
    out: str = "runs/rnnfast"
    resume: bool = False
    progress: bool | None = None  # None: a bar on terminals, log lines otherwise
    extra: dict = field(default_factory=dict)  # task settings saved with checkpoints


def rng_states(model) -> list:
    return [m._rng.bit_generator.state for m in model.modules() if hasattr(m, "_rng")]


def set_rng_states(model, states: list) -> None:
    owners = [m for m in model.modules() if hasattr(m, "_rng")]
    if len(owners) != len(states):
        raise ValueError(f"resume: checkpoint holds {len(states)} random streams, the model has {len(owners)}")
    for module, state in zip(owners, states):
        module._rng.bit_generator.state = state


class _StopRequest:
    """Turns Ctrl-C and SIGTERM into a flag checked between steps, so the saved state is always consistent; a
    second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Reporter:
    def __init__(self, total_steps: int | None, enabled: bool | None):
        use_bar = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if use_bar:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total_steps, unit="step", dynamic_ncols=True)
            except ImportError:
                self.bar = None

    def step(self, loss: float, tokens_per_s: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
            self.bar.update(1)

    def log(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _json_line(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _plot(metrics_path: Path, out_png: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    records = [r for r in records if not r.get("final")]
    if not records:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["step"] for r in records]
    ax.plot(steps, [r["train_loss"] for r in records], label="train")
    ax.plot(steps, [r["val_loss"] for r in records], label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def train(model, task, config: TrainConfig, tokenizer=None, log=None):
    """Train ``model`` on ``task``; returns the list of evaluation records written to metrics.jsonl."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    best_path, last_path, metrics_path = out / "model.rnnfast", out / "last.rnnfast", out / "metrics.jsonl"
    optimizer = OPTIMIZERS[config.optimizer](model, lr=config.lr)
    schedule = StepDecay(optimizer, config.lr_decay, 1, config.decay_after) if config.lr_decay else None
    per_epoch = task.num_train_batches()
    select_key, select_mode = getattr(task, "selection", ("loss", "min"))
    step, epoch, start_batch, carry = 0, 0, 0, None
    best_val, elapsed_before = math.inf, 0.0  # best_val: the selection metric, negated when larger is better
    if config.resume:
        if not last_path.exists():
            raise FileNotFoundError(f"--resume: {last_path} does not exist")
        ckpt = io.load(last_path)
        model.load_state_dict(ckpt.model.state_dict())
        optimizer.load_state_dict(ckpt.optimizer_state)
        ex = ckpt.extra
        step, epoch, start_batch = ex["step"], ex["epoch"], ex["batch"]
        # JSON has no infinity: a run stopped before its first evaluation saved best_val as null.
        best_val = math.inf if ex.get("best_val") is None else ex["best_val"]
        elapsed_before = ex.get("elapsed_s", 0.0)
        carry = task.carry_from_json(ex.get("carry"))
        set_rng_states(model, ex["rng"])
    elif metrics_path.exists():
        metrics_path.unlink()

    def checkpoint_extra(batch_index: int, elapsed: float) -> dict:
        return {"step": step, "epoch": epoch, "batch": batch_index,
                "best_val": best_val if math.isfinite(best_val) else None, "elapsed_s": elapsed,
                "carry": task.carry_to_json(carry), "rng": rng_states(model), "task": config.extra}

    total_steps = config.epochs * per_epoch
    reporter = _Reporter(total_steps, config.progress)
    if reporter.bar is not None:
        reporter.bar.update(step)
    records = []
    t0 = time.perf_counter() - elapsed_before
    window_loss, window_items, window_start = 0.0, 0, time.perf_counter()
    deadline = None if config.minutes is None else config.minutes * 60.0

    def evaluate(batch_index: int) -> dict:
        nonlocal best_val, window_loss, window_items, window_start
        elapsed = time.perf_counter() - t0
        model.eval()
        metrics = task.evaluate(model, "val")
        model.train()
        tokens_per_s = window_items / max(time.perf_counter() - window_start, 1e-9)
        record = {"step": step, "epoch": epoch, "elapsed_s": round(elapsed, 3),
                  "train_loss": window_loss / max(window_items, 1) if window_items else None,
                  **{f"val_{k}": v for k, v in metrics.items()}, "tokens_per_s": round(tokens_per_s, 1),
                  "lr": optimizer.lr}
        _json_line(metrics_path, record)
        records.append(record)
        selected = "" if select_key == "loss" else f" {select_key} {metrics[select_key]:.4f}"
        reporter.log("step {step} epoch {epoch} train {tl} val {vl:.4f}{sel} ({tps:,.0f} tok/s, {el:.0f}s)".format(
            step=step, epoch=epoch, tl="-" if record["train_loss"] is None else f"{record['train_loss']:.4f}",
            vl=metrics["loss"], sel=selected, tps=tokens_per_s, el=elapsed))
        score = metrics[select_key] if select_mode == "min" else -metrics[select_key]
        if score < best_val:
            best_val = score
            io.save(best_path, model, tokenizer, optimizer, checkpoint_extra(batch_index, elapsed))
        io.save(last_path, model, tokenizer, optimizer, checkpoint_extra(batch_index, elapsed))
        window_loss, window_items, window_start = 0.0, 0, time.perf_counter()
        return record

    stopped_by = None
    with _StopRequest() as stop:
        try:
            while epoch < config.epochs and stopped_by is None:
                if schedule is not None:
                    schedule.step(epoch)
                for batch_index, batch in enumerate(task.train_batches(epoch, start_batch), start=start_batch):
                    model.zero_grad()
                    loss, items, new_carry = task.train_step(model, batch, carry)
                    if not math.isfinite(loss):
                        if not config.skip_nonfinite:
                            raise TrainingError(f"non-finite loss ({loss}) at step {step + 1} (epoch {epoch}); "
                                                "the saved checkpoints hold the last finite weights "
                                                "(use --skip-nonfinite to skip such updates, or lower --lr)")
                        reporter.log(f"step {step + 1}: non-finite loss, update skipped")
                    else:
                        norm = clip_grad_norm(model, config.clip) if config.clip else None
                        if norm is not None and not math.isfinite(norm):
                            if not config.skip_nonfinite:
                                raise TrainingError(f"non-finite gradient norm at step {step + 1} (epoch {epoch})")
                        else:
                            optimizer.step()
                        window_loss += loss * items
                        window_items += items
                    carry = new_carry
                    step += 1
                    reporter.step(loss, window_items / max(time.perf_counter() - window_start, 1e-9))
                    if config.eval_every and step % config.eval_every == 0:
                        evaluate(batch_index + 1)
                    if stop.requested:
                        stopped_by = "signal"
                    elif deadline is not None and time.perf_counter() - t0 >= deadline:
                        stopped_by = "time"
                    if stopped_by:
                        start_batch = batch_index + 1
                        break
                else:
                    epoch, start_batch, carry = epoch + 1, 0, None
                    if not config.eval_every or step % config.eval_every:
                        evaluate(0)
            if stopped_by == "time" and (not records or records[-1]["step"] != step):
                evaluate(start_batch)
        finally:
            reporter.close()
        if stopped_by == "signal":
            io.save(last_path, model, tokenizer, optimizer,
                    checkpoint_extra(start_batch, time.perf_counter() - t0))
            reporter.log(f"interrupted at step {step}: saved {last_path}; continue with --resume")
            raise KeyboardInterrupt

    if hasattr(task, "evaluate") and task.has_split("test"):
        best = io.load(best_path).model if best_path.exists() else model
        best.eval()
        test = task.evaluate(best, "test")
        final = {"final": True, "step": step, **{f"test_{k}": v for k, v in test.items()}}
        _json_line(metrics_path, final)
        records.append(final)
        reporter.log("test " + " ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float)))
    _plot(metrics_path, out / "loss.png")
    return records
