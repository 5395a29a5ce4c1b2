"""Tasks: what a kind of training (language model, classifier, tagger, forecaster) reads, builds, evaluates and
writes, one module each, around the one training loop (rnnfast.train).

Two contracts, both ``typing.Protocol``s:

- ``Task`` is what the training loop drives: batches of an epoch, one forward and backward per batch, evaluation
  of a split, and the state carried from one batch to the next (a language model's hidden state).
- ``TaskModule`` is a task's module: its command-line options and defaults, its checkpoint settings, how it
  turns files (for the CLI) or in-memory arrays (for ``fit``/``evaluate``) into a ``Task``, and how it
  evaluates and predicts from a checkpoint.

Adding a task is one module beside these and one line in ``REGISTRY``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Name -> module under rnnfast.tasks; imported on first use, so the CLI's start-up stays light.
REGISTRY = {
    "lm": "lm",
    "classify": "classify",
    "tag": "tag",
    "forecast": "forecast",
    "sequences": "sequences",
}


@runtime_checkable
class Task(Protocol):
    """The training loop's side of a task. Splits are named "train", "val" and "test"."""

    #: metric keys of ``evaluate``, reported as ``val_<key>`` / ``test_<key>`` in metrics.jsonl
    metric_names: tuple[str, ...]
    #: (metric key, "min" or "max") that picks the best checkpoint
    selection: tuple[str, str]

    def has_split(self, split: str) -> bool: ...

    def num_train_batches(self) -> int: ...

    def train_batches(self, epoch: int, start: int) -> Iterator[Any]:
        """The batches of ``epoch`` from batch ``start`` on; the same epoch always gives the same batches, so a
        resumed run continues exactly."""

    def shard(self, batch, rank: int, size: int) -> Any:
        """Data-parallel training (rnnfast.distributed): rank ``rank``'s part of a batch of
        ``train_batches``, a contiguous part of its examples or streams, or None when it leaves this rank none.
        ``train_step``'s loss averages over the part's items, which the loop weighs by their share of the
        batch's. A carry (``carry_to_arrays``) holds one row per stream on axis 1."""

    def train_step(self, model, batch, carry) -> tuple[float, int, Any]:
        """Forward and backward of one batch (no update): (mean loss, items it averages over, new carry)."""

    def evaluate(self, model, split: str) -> dict:
        """Metrics of ``split`` (at least "loss"), the model in evaluation mode."""

    def carry_to_arrays(self, carry) -> dict[str, np.ndarray]:
        """The carried state as named arrays, saved as checkpoint tensors."""

    def carry_from_arrays(self, arrays: Mapping[str, np.ndarray]): ...


@runtime_checkable
class TaskModule(Protocol):
    """A module of this package that implements one task. Besides these, a module may set ``TASKS`` (the
    ``--task`` values it serves, default its ``NAME``), ``FORMATS`` (the ``--format`` values it reads; a module
    named after a task is that task's default) and ``after_training(args, checkpoint)``."""

    NAME: str
    HELP: str
    #: defaults of the shared size and schedule options (embed, hidden, layers, dropout, batch_size, epochs) and
    #: of the task's own options
    DEFAULTS: dict
    #: the task's own command-line options (``rnnfast.tasks.common.Option``)
    OPTIONS: tuple
    #: the versioned dataclass saved as a checkpoint's task settings
    Settings: type

    def prepare(self, args) -> Any:
        """From parsed ``rnnfast train`` arguments: a ``common.Prepared`` (model, task, settings, tokenizer,
        summary line, default output name)."""

    def evaluate_files(self, checkpoint, settings, args) -> dict:
        """``rnnfast eval``: the metrics of a checkpoint on ``args.data``."""

    def predict_files(self, checkpoint, settings, args) -> Callable[[str], None]:
        """``rnnfast predict``: a function that writes the predictions for ``args.data`` to a path."""

    def result_line(self, result: dict) -> str:
        """The headline metrics of a test result, for the log."""


@runtime_checkable
class InMemoryTask(Protocol):
    """A task module that serves a model's ``fit`` and ``evaluate`` (``MODEL.TASK`` is its name)."""

    MODEL: type

    def fit_task(self, model, x, y, validation, batch_size: int, seed: int, options: dict) -> tuple:
        """``model.fit``: (Task over in-memory data, settings, tokenizer or None); ``validation`` is data like
        (x, y), a fraction of ``x`` to hold out, or None; ``options`` are the task's keyword options."""

    def evaluate_arrays(self, model, x, y, options: dict) -> dict:
        """``model.evaluate``: the keys ``rnnfast eval`` prints for this task."""


def get(name: str) -> TaskModule:
    """The module of task ``name``; ValueError naming the known tasks for any other name."""
    if name not in REGISTRY:
        raise ValueError(f"task: got {name!r}, expected one of {', '.join(REGISTRY)}")
    return importlib.import_module(f"{__name__}.{REGISTRY[name]}")


def names() -> Iterable[str]:
    """The ``--task`` values, in registry order."""
    return tuple(dict.fromkeys(t for key in REGISTRY for t in getattr(get(key), "TASKS", (key,))))


def formats() -> tuple[str, ...]:
    """Every ``--format`` value some task module reads."""
    return tuple(dict.fromkeys(f for key in REGISTRY for f in getattr(get(key), "FORMATS", ())))


def resolve(task: str, data_format: str | None) -> TaskModule:
    """The module that trains ``--task task`` on ``--format data_format`` (None: the task's own module)."""
    own = get(task) if task in REGISTRY else None
    if data_format is None or data_format in getattr(own, "FORMATS", ()):
        return get(task)
    for key in REGISTRY:
        module = get(key)
        if task in getattr(module, "TASKS", (key,)) and data_format in getattr(module, "FORMATS", ()):
            return module
    readable = [
        f for key in REGISTRY for f in getattr(get(key), "FORMATS", ()) if task in getattr(get(key), "TASKS", (key,))
    ]
    raise ValueError(
        f"--format: got {data_format!r} for --task {task}, expected "
        + (f"one of {', '.join(readable)}" if readable else "no --format (the task has one)")
    )


def describe(*modules) -> str:
    """How a user selects any of ``modules`` on the command line, e.g. "--task classify or tag"."""
    names = list(dict.fromkeys(t for m in modules for t in getattr(m, "TASKS", (m.NAME,))))
    text = "--task " + (f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0])
    if all(hasattr(m, "TASKS") for m in modules):  # modules that only some formats select
        text += " with --format " + ", ".join(f for m in modules for f in m.FORMATS)
    return text


__all__ = ["Task", "TaskModule", "InMemoryTask", "REGISTRY", "get", "names", "formats", "resolve", "describe"]
