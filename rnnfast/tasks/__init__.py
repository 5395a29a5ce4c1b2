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

    def train_step(self, model, batch, carry) -> tuple[float, int, Any]:
        """Forward and backward of one batch (no update): (mean loss, items it averages over, new carry)."""

    def evaluate(self, model, split: str) -> dict:
        """Metrics of ``split`` (at least "loss"), the model in evaluation mode."""

    def carry_to_arrays(self, carry) -> dict[str, np.ndarray]:
        """The carried state as named arrays, saved as checkpoint tensors."""

    def carry_from_arrays(self, arrays: Mapping[str, np.ndarray]): ...


@runtime_checkable
class TaskModule(Protocol):
    """A module of this package that implements one task."""

    NAME: str
    HELP: str
    #: defaults of the shared size and schedule options (embed, hidden, layers, dropout, batch_size, epochs) and
    #: of the task's own options
    DEFAULTS: dict
    #: the task's own command-line options (``rnnfast.tasks.common.Option``)
    OPTIONS: tuple
    #: the model class whose ``fit`` and ``evaluate`` this task serves
    MODEL: type
    #: the versioned dataclass saved as a checkpoint's task settings
    Settings: type

    def prepare(self, args) -> Any:
        """From parsed ``rnnfast train`` arguments: a ``common.Prepared`` (model, task, settings, tokenizer,
        summary line, default output name)."""

    def evaluate_files(self, checkpoint, settings, args) -> dict:
        """``rnnfast eval``: the metrics of a checkpoint on ``args.data``."""

    def predict_files(self, checkpoint, settings, args) -> Callable[[str], None]:
        """``rnnfast predict``: a function that writes the predictions for ``args.data`` to a path."""

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
    return tuple(REGISTRY)


__all__ = ["Task", "TaskModule", "REGISTRY", "get", "names"]
