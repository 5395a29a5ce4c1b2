"""The ``rnnfast`` command line: prepare, train, sample, eval, predict.

A dispatcher: each task (rnnfast.tasks: lm, classify, tag, forecast) brings its own options, defaults, readers,
evaluation and prediction; ``train`` runs the one training loop (rnnfast.train). Bad input and usage errors end
as one line on stderr and exit code 2, an interrupted run as 130; anything else is a bug and shows its
traceback (exit 1). Nothing already saved is touched by a failing command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings

from . import distributed, set_matmul_precision, set_num_threads, tasks
from .io import load
from .onnx import add_export_command, export_command
from .prepare import add_prepare_command, prepare_command
from .tasks.common import UnseenLabelWarning, fraction, note, positive_int, probability
from .tasks.lm import add_sample_command, sample_command
from .train import TrainingError, add_loop_options, config_from_args, train

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Shared size and schedule options whose defaults come from the task.
SIZE_OPTIONS = ("cell", "embed", "hidden", "layers", "dropout", "batch_size", "epochs")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _task_options() -> dict:
    """Each task option's spec and the tasks that read it, in registry order."""
    owners: dict = {}
    for name in tasks.REGISTRY:
        for spec in tasks.get(name).OPTIONS:
            owners.setdefault(spec.dest, (spec, []))[1].append(name)
    return owners


def _defaults_text() -> str:
    return "; ".join(
        tasks.describe(module)[len("--task ") :]
        + " "
        + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in module.DEFAULTS.items() if k in SIZE_OPTIONS)
        for module in map(tasks.get, tasks.REGISTRY)
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnfast", description="Train recurrent networks on a CPU and sample from them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    add_prepare_command(sub)
    add_export_command(sub)
    add_sample_command(sub)

    t = sub.add_parser(
        "train",
        help="train a model (default: a character-level language model)",
        description="Without --data, trains a language model on the Python standard library's "
        "docstrings. Size options left out take the task's defaults: " + _defaults_text() + ". "
        "--minutes without --epochs trains until the time is up.",
    )
    t.add_argument(
        "--task",
        choices=tuple(tasks.names()),
        default="lm",
        help="; ".join(f"{n}: {tasks.get(n).HELP.partition(': ')[2]}" for n in tasks.names()),
    )
    t.add_argument("--data", nargs="+", help="training file(s) (lm default: the standard library's docstrings)")
    t.add_argument(
        "--format",
        choices=tasks.formats(),
        help="classify: tsv (label<TAB>text lines, the default), "
        "files (one file per class, named after it), ts (UEA/UCR), npz, wav (a folder per class); tag: "
        "CoNLL columns, or npz with per-step tags",
    )
    t.add_argument("--encoding", default="utf-8", help="text encoding of the data files")
    t.add_argument("--cell", choices=("lstm", "gru", "rnn"))
    t.add_argument("--embed", type=positive_int, help="embedding size")
    t.add_argument("--hidden", type=positive_int, help="hidden units per layer (and direction)")
    t.add_argument("--layers", type=positive_int)
    t.add_argument("--dropout", type=probability)
    t.add_argument("--batch-size", type=positive_int)
    add_loop_options(t)
    val = t.add_mutually_exclusive_group()
    val.add_argument("--val-data", nargs="+", help="validation file(s), like --data")
    val.add_argument(
        "--val-fraction",
        type=fraction,
        help="hold out a fraction of --data for validation (default "
        "0.1): the end of the text (lm) or series (forecast), a random sample of examples (classify, "
        "tag)",
    )
    t.add_argument("--test-data", nargs="+", help="test file, evaluated with the best model at the end")
    t.add_argument(
        "--test-fraction",
        type=fraction,
        help="hold out a fraction of --data as the test part instead: "
        "the end of the series (forecast, default 0.1), a random sample of examples (classify, tag)",
    )
    for spec, _ in _task_options().values():
        t.add_argument(*spec.flags, **spec.kwargs)
    t.add_argument("--threads", type=positive_int)
    t.add_argument("--out", help="output directory (default runs/<data name>)")

    e = sub.add_parser(
        "eval",
        help="evaluate a checkpoint on a file; prints one JSON object",
        description="Keys: lm loss, ppl, bpc, accuracy, macro_f1; classify accuracy, macro_f1, "
        "loss; tag accuracy, chunk_f1 (null for tags that are not chunk tags), loss; forecast rmse, "
        "mae, naive_rmse, naive_mae, seasonal_naive_rmse, seasonal_naive_mae, loss, on the test "
        "part of the series (its last --test-fraction, as in training). Gold labels or tags the "
        "model never saw count as errors, with a warning naming them.",
    )
    e.add_argument("checkpoint")
    e.add_argument("--data", required=True, nargs="+", help="a file like the training data")
    e.add_argument("--encoding", help="text encoding (default: the one used in training)")
    e.add_argument("--batch-size", type=positive_int)
    e.add_argument("--seq-len", type=positive_int, help="lm only")
    e.add_argument("--threads", type=positive_int)
    tasks.common.add_weight_dtype_option(e)

    p = sub.add_parser(
        "predict",
        help="predict with a classify, tag or forecast checkpoint",
        description="Writes predictions in the input's own format: classify, one label per input "
        "line (a line's text is what follows its first tab, if it has one); tag, the CoNLL file "
        "with the predicted tags as one more column; forecast, a CSV of the next --steps values.",
    )
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="texts (classify), a CoNLL file (tag) or the series (forecast)")
    p.add_argument("--out", help="output file (default: standard output)")
    p.add_argument("--encoding", help="text encoding (default: the one used in training)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--steps", type=positive_int, help="forecast: values to forecast (default: the model's horizon)")
    p.add_argument("--threads", type=positive_int)
    tasks.common.add_weight_dtype_option(p)
    return parser


def _apply_task_defaults(args, module) -> None:
    for dest, (spec, owners) in _task_options().items():
        if getattr(args, dest) is not None and module.NAME not in owners:
            given = f"--task {args.task}" + (f" --format {args.format}" if args.format else "")
            raise ValueError(f"{spec.flags[0]}: only for {tasks.describe(*map(tasks.get, owners))}, got {given}")
    if args.test_fraction is not None and args.task == "lm":
        raise ValueError("--test-fraction: only for --task classify, tag or forecast, got --task lm")
    for name, value in module.DEFAULTS.items():
        # --minutes without --epochs trains until the time is up.
        if getattr(args, name, None) is None and not (name == "epochs" and args.minutes is not None):
            setattr(args, name, value)


def cmd_train(args) -> int:
    lead = distributed.rank() == 0  # starts MPI under mpiexec; rank 0 alone speaks and writes
    module = tasks.resolve(args.task, args.format)
    _apply_task_defaults(args, module)
    if args.task != "lm" and not args.data:
        raise ValueError(f"--data: required for --task {args.task}")
    prepared = module.prepare(args)
    out = args.out or os.path.join("runs", prepared.name)
    note(f"{prepared.summary}, {prepared.model.num_parameters():,} parameters -> {out}")
    config = config_from_args(args, out, tasks.common.settings_to_dict(module.NAME, prepared.settings))
    try:
        records = train(prepared.model, prepared.task, config, prepared.tokenizer)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    note(f"saved {out}/model.rnnfast (best validation) and {out}/last.rnnfast")
    if records and records[-1].get("final"):
        note("test: " + module.result_line({k[5:]: v for k, v in records[-1].items() if k.startswith("test_")}))
    if hasattr(module, "after_training") and lead:
        module.after_training(args, _load(os.path.join(out, "model.rnnfast")))
    return 0


def _load(path):
    checkpoint = load(path)
    checkpoint.model.eval()
    return checkpoint


def _checkpoint_task(path, weight_dtype):
    """A checkpoint (its model quantized if asked), its task module and its task settings."""
    checkpoint = tasks.common.in_weight_dtype(_load(path), weight_dtype)
    saved = checkpoint.extra.get("task", {})
    if not isinstance(saved, dict) or saved.get("task", "lm") not in tasks.REGISTRY:
        raise ValueError(f"checkpoint: {path} does not say which task it was trained for")
    module = tasks.get(saved.get("task", "lm"))
    return checkpoint, module, tasks.common.settings_from_dict(module.Settings, saved, path)


def cmd_eval(args) -> int:
    checkpoint, module, settings = _checkpoint_task(args.checkpoint, args.weight_dtype)
    if args.seq_len is not None and module.NAME != "lm":
        raise ValueError(f"--seq-len: only for language models, got a {module.NAME} checkpoint")
    result = module.evaluate_files(checkpoint, settings, args)  # under mpiexec: split among the ranks, reduced
    if distributed.rank() == 0:
        print(json.dumps(result))
    return 0


def cmd_predict(args) -> int:
    checkpoint, module, settings = _checkpoint_task(args.checkpoint, args.weight_dtype)
    if args.steps is not None and module.NAME != "forecast":
        raise ValueError(f"--steps: only for forecast checkpoints, got a {module.NAME} checkpoint")
    write = module.predict_files(checkpoint, settings, args)
    if distributed.rank() != 0:  # under mpiexec every rank holds every prediction; one writes them
        return 0
    if args.out:
        write(args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:  # the writers take a path; standard output gets the same bytes
        path = os.path.join(tmp, "predictions")
        write(path)
        with open(path, encoding=args.encoding or settings.encoding) as f:
            sys.stdout.write(f.read())
    return 0


COMMANDS = {"prepare": prepare_command, "train": cmd_train, "sample": sample_command, "eval": cmd_eval}
COMMANDS.update(predict=cmd_predict, export=export_command)
# User errors: bad input, bad files, a machine without the resources asked for. Anything else is a bug.
USER_ERRORS = (ValueError, OSError, MemoryError, UnicodeError)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "threads", None):
            set_num_threads(args.threads)
        if getattr(args, "matmul_precision", "float32") != "float32":
            set_matmul_precision(args.matmul_precision)
        with warnings.catch_warnings():
            warnings.simplefilter("always", UnseenLabelWarning)
            warnings.showwarning = lambda message, *_, **__: print(
                f"rnnfast {args.command}: warning: {message}", file=sys.stderr
            )
            return COMMANDS[args.command](args)
    except (*USER_ERRORS, TrainingError, distributed.DistributedError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        code = EXIT_USAGE if isinstance(exc, USER_ERRORS) else 1
        return distributed.fail(f"rnnfast {args.command}: error: {message}", code)


if __name__ == "__main__":
    sys.exit(main())
