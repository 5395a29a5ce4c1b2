"""The one training loop, for every task, for ``model.fit`` and for ``rnnfast train``: batches from a task
(rnnfast.tasks.Task), optimizer and clipping, periodic evaluation, metrics.jsonl, best/last checkpoints, time
limits, early stopping, callbacks, Ctrl-C/SIGTERM handling and exact resumption.

Under ``mpiexec -n N`` the loop is data-parallel (rnnfast.distributed): every rank trains on its share of each
global batch (``Task.shard``), the gradients are summed across ranks before the one optimizer step that every
rank takes, and every decision to stop (a signal, the time limit, a non-finite loss, a callback) is taken from
values reduced across ranks, so all ranks stop after the same step. Rank 0 alone writes files and logs."""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _checks, distributed, io
from .optim import OPTIMIZERS, StepDecay, clip_factor, grad_norm


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must act on (e.g. a non-finite loss)."""


@dataclass
class TrainConfig:
    epochs: int | None = 1  # None: until ``minutes`` run out
    minutes: float | None = None
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_decay: float | None = None
    decay_after: int = 1
    clip: float | None = 5.0
    eval_every: int | None = None
    skip_nonfinite: bool = False
    out: str | None = "runs/rnnfast"  # None: no files (fit without out=)
    resume: bool = False
    progress: bool | None = None  # None: a bar on terminals, log lines otherwise
    patience: int | None = None  # stop after this many evaluations without a better validation score
    callbacks: tuple = ()  # called with each evaluation record; one that returns True stops training
    extra: dict = field(default_factory=dict)  # task settings saved with checkpoints


def default_lr(optimizer: str) -> float:
    return 1.0 if optimizer == "sgd" else 2e-3


def add_loop_options(parser) -> None:
    """The command-line options of this loop (``rnnfast train``)."""
    from .tasks.common import non_negative_float, positive_float, positive_int

    parser.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="adam")
    parser.add_argument("--lr", type=positive_float, help="learning rate (adam 2e-3, sgd 1.0)")
    parser.add_argument("--lr-decay", type=positive_float, help="multiply the lr by this every epoch...")
    parser.add_argument("--decay-after", type=int, default=1, help="...starting after this many epochs")
    parser.add_argument("--clip", type=non_negative_float, default=5.0, help="max global gradient norm (0: off)")
    parser.add_argument("--epochs", type=positive_int)
    parser.add_argument("--minutes", type=positive_float, help="stop after this much training time")
    parser.add_argument(
        "--patience",
        type=positive_int,
        help="stop after this many evaluations without a better validation score (the best checkpoint is kept)",
    )
    parser.add_argument("--eval-every", type=positive_int, help="evaluate every N steps (default: every epoch)")
    parser.add_argument("--skip-nonfinite", action="store_true", help="skip updates whose loss is NaN/Inf")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.rnnfast")
    parser.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    parser.add_argument(
        "--matmul-precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16: matrix products round their operands to bfloat16 and sum in float32 (mixed "
        "precision, like PyTorch's bfloat16 autocast); needs a CPU with AMX or AVX512-BF16",
    )


def config_from_args(args, out: str, extra: dict) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        minutes=args.minutes,
        optimizer=args.optimizer,
        lr=args.lr or default_lr(args.optimizer),
        lr_decay=args.lr_decay,
        decay_after=args.decay_after,
        clip=args.clip or None,
        eval_every=args.eval_every,
        skip_nonfinite=args.skip_nonfinite,
        out=out,
        resume=args.resume,
        progress=False if args.no_progress else None,
        patience=args.patience,
        extra=extra,
    )


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
    def __init__(self, total_steps: int | None, enabled: bool | None, quiet: bool = False):
        use_bar = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        self.quiet = quiet
        if quiet:
            return
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
        if self.quiet:
            return
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
    if "val_loss" in records[0]:
        ax.plot(steps, [r["val_loss"] for r in records], label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def _carry_arrays(checkpoint) -> dict:
    """The carried state of a checkpoint: its ``state.`` tensors, or the JSON lists (h, c) that checkpoints
    held before carried state was saved as tensors."""
    if checkpoint.arrays:
        return checkpoint.arrays
    old = checkpoint.extra.get("carry")
    return {} if old is None else {name: np.asarray(part) for name, part in zip(("h", "c"), old)}


def _own_carry(arrays: dict) -> dict:
    """This rank's streams of a carried state saved whole (the batch is axis 1 of each array)."""
    return {name: value[:, distributed.share(value.shape[1])] for name, value in arrays.items()}


def _spread_rng(model) -> None:
    """Give each rank its own dropout masks: rank r's random streams jump r times ahead of rank 0's, so a
    checkpoint (rank 0's streams) resumes the same way on any number of ranks."""
    if distributed.rank():
        for module in model.modules():
            if hasattr(module, "_rng"):
                module._rng = np.random.Generator(module._rng.bit_generator.jumped(distributed.rank()))


def _copy_weights(model) -> dict:
    return {name: value.copy() for name, value in model.state_dict().items()}


def train(model, task, config: TrainConfig, tokenizer=None):
    """Train ``model`` on ``task`` (an rnnfast.tasks.Task); returns the list of evaluation records (the lines of
    metrics.jsonl). On return the model holds the weights of the best validation score (the last weights when
    the task has no validation split), which ``out/model.rnnfast`` also holds."""
    if config.epochs is None and config.minutes is None:
        raise ValueError("epochs, minutes: got neither, expected a number of epochs or a time limit")
    ranks = distributed.size()
    lead = distributed.rank() == 0  # the rank that writes files and logs
    out = None if config.out is None else Path(config.out)
    if out is not None:
        if lead:
            out.mkdir(parents=True, exist_ok=True)
        best_path, last_path, metrics_path = out / "model.rnnfast", out / "last.rnnfast", out / "metrics.jsonl"
    elif config.resume:
        raise ValueError("resume: needs an output directory (out) to resume from")
    has_val = task.has_split("val")
    if config.patience is not None and not has_val:
        raise ValueError(f"patience: got {config.patience}, which needs validation data to watch, and there is none")
    optimizer = OPTIMIZERS[config.optimizer](model, lr=config.lr)
    schedule = StepDecay(optimizer, config.lr_decay, 1, config.decay_after) if config.lr_decay else None
    per_epoch = task.num_train_batches()
    select_key, select_mode = getattr(task, "selection", ("loss", "min"))
    step, epoch, start_batch, carry = 0, 0, 0, None
    # best_val: the selection metric, negated when larger is better; stale: evaluations since it last improved
    best_val, stale, elapsed_before, best_weights = math.inf, 0, 0.0, None
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
        stale = ex.get("stale", 0)
        elapsed_before = ex.get("elapsed_s", 0.0)
        carry = task.carry_from_arrays(_own_carry(_carry_arrays(ckpt)))
        set_rng_states(model, ex["rng"])
    elif lead and out is not None and metrics_path.exists():
        metrics_path.unlink()
    distributed.broadcast_parameters(model)
    _spread_rng(model)

    def save(path, batch_index: int, elapsed: float) -> None:
        """Every rank calls this: the carried state of all ranks' streams is gathered to rank 0, which writes
        while the others wait, so that no rank moves on (or ends the job) before the file is complete."""
        arrays = {name: distributed.gather_axis(value, 1) for name, value in task.carry_to_arrays(carry).items()}
        if not lead:
            distributed.barrier()
            return
        extra = {
            "step": step,
            "epoch": epoch,
            "batch": batch_index,
            "best_val": best_val if math.isfinite(best_val) else None,
            "stale": stale,
            "elapsed_s": elapsed,
            "rng": rng_states(model),
            "task": config.extra,
        }
        io.save(path, model, tokenizer, optimizer, extra, arrays=arrays)
        distributed.barrier()

    total_steps = None if config.epochs is None else config.epochs * per_epoch
    reporter = _Reporter(total_steps, config.progress, quiet=not lead)
    if reporter.bar is not None:
        reporter.bar.update(step)
    records = []
    t0 = time.perf_counter() - elapsed_before
    window_loss, window_items, window_start = 0.0, 0, time.perf_counter()
    deadline = None if config.minutes is None else config.minutes * 60.0

    def evaluate(batch_index: int) -> str | None:
        """Evaluate, record, save; the reason to stop (early stopping or a callback), if any."""
        nonlocal best_val, stale, best_weights, window_loss, window_items, window_start
        tokens_per_s = window_items / max(time.perf_counter() - window_start, 1e-9)  # training alone
        distributed.check_same_weights(model, step)
        elapsed = time.perf_counter() - t0
        metrics = {}
        if has_val:
            model.eval()
            metrics = task.evaluate(model, "val")
            model.train()
        record = {
            "step": step,
            "epoch": epoch,
            "elapsed_s": round(elapsed, 3),
            "train_loss": window_loss / max(window_items, 1) if window_items else None,
            **{f"val_{k}": v for k, v in metrics.items()},
            "tokens_per_s": round(tokens_per_s, 1),
            "lr": optimizer.lr,
        }
        records.append(record)
        line = f"step {step} epoch {epoch} train " + (
            "-" if record["train_loss"] is None else f"{record['train_loss']:.4f}"
        )
        improved = True
        if has_val:
            line += f" val {metrics['loss']:.4f}" + (
                "" if select_key == "loss" else f" {select_key} {metrics[select_key]:.4f}"
            )
            score = metrics[select_key] if select_mode == "min" else -metrics[select_key]
            improved = score < best_val
            if improved:
                best_val = score
        stale = 0 if improved else stale + 1
        if improved:
            best_weights = _copy_weights(model)
        reporter.log(f"{line} ({tokens_per_s:,.0f} tok/s, {elapsed:.0f}s)")
        if out is not None:
            if lead:
                _json_line(metrics_path, record)
            if improved:
                save(best_path, batch_index, elapsed)
            save(last_path, batch_index, elapsed)
        window_loss, window_items, window_start = 0.0, 0, time.perf_counter()
        if config.patience is not None and stale >= config.patience:
            reporter.log(f"no better validation {select_key} in {stale} evaluations: stopping early")
            return "patience"
        # A callback that stops any rank stops them all.
        if distributed.sum_values([any(callback(dict(record)) is True for callback in config.callbacks)])[0]:
            return "callback"
        return None

    stopped_by = None
    with _StopRequest() as stop:
        try:
            while (config.epochs is None or epoch < config.epochs) and stopped_by is None:
                if schedule is not None:
                    schedule.step(epoch)
                for batch_index, batch in enumerate(task.train_batches(epoch, start_batch), start=start_batch):
                    model.zero_grad()
                    own = batch if ranks == 1 else task.shard(batch, distributed.rank(), ranks)
                    loss, items, new_carry = (0.0, 0, carry) if own is None else task.train_step(model, own, carry)
                    out_of_time = deadline is not None and time.perf_counter() - t0 >= deadline
                    requested = stop.requested
                    if ranks > 1:
                        # One small reduction carries what every rank must agree on after this step.
                        total, count, requests, late = distributed.sum_values(
                            [loss * items if items else 0.0, items, requested, out_of_time]
                        )
                        distributed.allreduce_gradients(model, items / count)
                        loss, items, requested, out_of_time = total / count, int(count), requests > 0, late > 0
                    if not math.isfinite(loss):
                        if not config.skip_nonfinite:
                            raise TrainingError(
                                f"non-finite loss ({loss}) at step {step + 1} (epoch {epoch}); "
                                "the saved checkpoints hold the last finite weights "
                                "(use --skip-nonfinite to skip such updates, or lower --lr)"
                            )
                        reporter.log(f"step {step + 1}: non-finite loss, update skipped")
                    else:
                        # One pass over the gradients for the norm; clipping happens inside the update.
                        norm = grad_norm(model)
                        if math.isfinite(norm):
                            optimizer.step(clip_factor(norm, config.clip) if config.clip else 1.0, grad_norm=norm)
                        elif not config.skip_nonfinite:
                            raise TrainingError(f"non-finite gradient norm at step {step + 1} (epoch {epoch})")
                        window_loss += loss * items
                        window_items += items
                    carry = new_carry
                    step += 1
                    reporter.step(loss, window_items / max(time.perf_counter() - window_start, 1e-9))
                    if config.eval_every and step % config.eval_every == 0:
                        stopped_by = evaluate(batch_index + 1)
                    if requested:
                        stopped_by = "signal"
                    elif out_of_time:
                        stopped_by = stopped_by or "time"
                    if stopped_by:
                        start_batch = batch_index + 1
                        break
                else:
                    epoch, start_batch, carry = epoch + 1, 0, None
                    if not config.eval_every or step % config.eval_every:
                        stopped_by = evaluate(0)
            if stopped_by == "time" and (not records or records[-1]["step"] != step):
                evaluate(start_batch)
        finally:
            reporter.close()
        if stopped_by == "signal":
            if out is not None:
                save(last_path, start_batch, time.perf_counter() - t0)
                reporter.log(f"interrupted at step {step}: saved {last_path}; continue with --resume")
            raise KeyboardInterrupt

    if best_weights is None and out is not None and best_path.exists():
        best_weights = io.load(best_path).model.state_dict()  # a resumed run that found nothing better
    if best_weights is not None:
        model.load_state_dict(best_weights)
    if task.has_split("test"):
        model.eval()
        test = task.evaluate(model, "test")
        model.train()
        final = {"final": True, "step": step, **{f"test_{k}": v for k, v in test.items()}}
        records.append(final)
        if out is not None and lead:
            _json_line(metrics_path, final)
        reporter.log("test " + " ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float)))
    if out is not None and lead:
        _plot(metrics_path, out / "loss.png")
    return records


class Trainable:
    """``fit`` and ``evaluate`` on in-memory data for a model of task ``TASK`` (rnnfast.tasks)."""

    TASK: str

    def fit(
        self,
        x,
        y=None,
        *,
        validation_data=None,
        validation_split=0.0,
        epochs=None,
        minutes=None,
        batch_size=None,
        optimizer="adam",
        lr=None,
        clip=5.0,
        patience=None,
        callbacks=(),
        out=None,
        seed=None,
        progress=None,
        **task_options,
    ) -> list[dict]:
        """Train on ``x`` (and targets ``y``) with the loop ``rnnfast train`` runs; returns the evaluation
        records (the dicts of metrics.jsonl: ``step``, ``epoch``, ``train_loss``, ``val_<metric>``, ...).

        ``x``, ``y`` and ``task_options`` depend on the model: see its class docstring. ``validation_data``
        (data like ``x``, ``y``, as a tuple) or ``validation_split`` (a fraction of ``x`` held out) give the
        validation scores, which pick the best weights (the model holds them on return), stop training early
        after ``patience`` evaluations without improvement, and are what ``callbacks`` see: callables given
        each record, any of which may return True to stop. ``epochs`` (default: the task's) and ``minutes``
        limit training; ``minutes`` alone trains until the time is up. ``optimizer`` "adam", "adamw" or "sgd"
        with ``lr`` (default 2e-3, sgd 1.0); ``clip`` the global gradient norm (None: off). ``out``: a directory
        for model.rnnfast (best), last.rnnfast, metrics.jsonl and loss.png, as ``rnnfast train`` writes.
        ``seed`` fixes the order of the batches. ``progress``: a bar (True), log lines (False) or a bar on
        terminals only (None). Ctrl-C stops between steps and raises KeyboardInterrupt."""
        self._refuse_if_quantized("fit")
        from . import tasks

        module = tasks.get(self.TASK)
        if validation_data is not None and validation_split:
            raise ValueError("validation_data, validation_split: got both, expected one way to validate")
        split = _checks.real(validation_split, "validation_split", 0.0, 1.0, high_open=True)
        validation = validation_data if validation_data is not None else (split or None)
        if epochs is None and minutes is None:
            epochs = module.DEFAULTS["epochs"]
        epochs = None if epochs is None else _checks.positive_int(epochs, "epochs")
        minutes = None if minutes is None else _checks.real(minutes, "minutes", 0.0, low_open=True)
        batch_size = _checks.positive_int(
            module.DEFAULTS["batch_size"] if batch_size is None else batch_size, "batch_size"
        )
        optimizer = _checks.choice(optimizer, "optimizer", tuple(OPTIMIZERS))
        lr = default_lr(optimizer) if lr is None else _checks.real(lr, "lr", 0.0, low_open=True)
        clip = _checks.real(clip, "clip", 0.0) if clip is not None else None
        patience = None if patience is None else _checks.positive_int(patience, "patience")
        if callable(callbacks):
            callbacks = (callbacks,)
        callbacks = tuple(callbacks)
        for k, callback in enumerate(callbacks):
            if not callable(callback):
                raise TypeError(f"callbacks[{k}]: got {type(callback).__name__}, expected a callable")
        seed = int(np.random.default_rng().integers(2**31)) if seed is None else _checks.integer(seed, "seed", 0)
        task, settings, tokenizer = module.fit_task(self, x, y, validation, batch_size, seed, dict(task_options))
        from .tasks.common import settings_to_dict

        config = TrainConfig(
            epochs=epochs,
            minutes=minutes,
            optimizer=optimizer,
            lr=lr,
            clip=clip or None,
            out=None if out is None else str(out),
            progress=progress,
            patience=patience,
            callbacks=callbacks,
            extra=settings_to_dict(self.TASK, settings),
        )
        self.train()
        return train(self, task, config, tokenizer)

    def evaluate(self, x, y=None, **task_options) -> dict:
        """The metrics ``rnnfast eval`` prints for this task, on ``x`` (and ``y``), in evaluation mode."""
        from . import tasks

        return tasks.get(self.TASK).evaluate_arrays(self, x, y, dict(task_options))
