"""The ``rnnfast`` command line: prepare, train, sample, eval, predict.

``train --task lm`` (the default) trains a language model; ``classify``, ``tag`` and ``forecast`` train the
models of rnnfast.seqmodels on the same training loop. ``prepare`` tokenizes a text once into a token file
(rnnfast.prepare), which ``train --data`` and ``eval --data`` of a language model read from disk through a memory
map, so a corpus of any size trains in little memory. ``eval`` and ``predict`` read what a checkpoint was trained
on from the checkpoint itself. Every user error ends as one line on stderr and exit code 2; nothing already saved
is touched by a failing command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, expected an integer >= 1")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"got {value}, expected a number in (0, 1)")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"got {value}, expected a number in [0, 1)")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"got {text}, expected a finite number > 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"got {text}, expected a finite number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnfast", description="Train recurrent networks on a CPU and sample from them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("prepare", help="tokenize a text file once into a token file for language-model training",
                       description="Writes the token ids of TEXT to the token file OUT, which train --data and eval "
                       "--data read from disk, and prints one JSON object: path, count (ids), vocab_size, dtype, "
                       "level.")
    r.add_argument("text", help="the text file")
    r.add_argument("out", help="the token file to write (e.g. corpus.tokens)")
    r.add_argument("--level", choices=("char", "word"), default="char", help="tokens are characters or words")
    r.add_argument("--encoding", default="utf-8", help="text encoding of TEXT")
    r.add_argument("--max-vocab", type=_positive_int, default=None,
                   help="word: at most this many tokens, <unk> and <eos> included")
    r.add_argument("--min-count", type=_positive_int, default=None,
                   help="word: words seen fewer times are <unk> (default 1)")

    t = sub.add_parser("train", help="train a model (default: a character-level language model)",
                       description="Without --data, trains a language model on the Python standard library's "
                       "docstrings. Size options left out take the task's defaults: " + _defaults_text() + ".")
    t.add_argument("--task", choices=tuple(TASK_DEFAULTS), default="lm",
                   help="lm: language model; classify: one label per text; tag: one tag per token (CoNLL); "
                   "forecast: time series (CSV)")
    t.add_argument("--data", nargs="+", help="training file (default for lm: the standard library's docstrings); "
                   "for lm a text file or a token file from rnnfast prepare; for --format files, one file per class")
    t.add_argument("--level", choices=("char", "word"), default=None,
                   help="lm: tokens are characters or words (default char; a token file has its own)")
    t.add_argument("--encoding", default="utf-8", help="text encoding of the data files")
    t.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    t.add_argument("--embed", type=_positive_int, default=None, help="embedding size")
    t.add_argument("--hidden", type=_positive_int, default=None, help="hidden units per layer (and direction)")
    t.add_argument("--layers", type=_positive_int, default=None)
    t.add_argument("--dropout", type=_probability, default=None)
    t.add_argument("--tie-weights", action="store_true", help="lm: share embedding and output weights")
    t.add_argument("--seq-len", type=_positive_int, default=100, help="lm: steps of truncated back-propagation")
    t.add_argument("--batch-size", type=_positive_int, default=None)
    t.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam")
    t.add_argument("--lr", type=_positive_float, default=None, help="learning rate (adam 2e-3, sgd 1.0)")
    t.add_argument("--lr-decay", type=_positive_float, default=None, help="multiply the lr by this every epoch...")
    t.add_argument("--decay-after", type=int, default=1, help="...starting after this many epochs")
    t.add_argument("--clip", type=_non_negative_float, default=5.0, help="max global gradient norm (0: off)")
    t.add_argument("--init-scale", type=_positive_float, default=None, help="initialise all weights U(-s, s)")
    t.add_argument("--epochs", type=_positive_int, default=None)
    t.add_argument("--minutes", type=_positive_float, default=None, help="stop after this much training time")
    val = t.add_mutually_exclusive_group()
    val.add_argument("--val-data", nargs="+", help="validation file (for --format files, one per class; lm with a "
                     "token file: a token file of the same tokenizer, or text)")
    val.add_argument("--val-fraction", type=_fraction, default=None,
                     help="hold out a fraction of --data for validation (default 0.1): the end of the text (lm) "
                     "or series (forecast), a random sample of examples (classify, tag)")
    t.add_argument("--test-data", nargs="+", help="test file, evaluated with the best model at the end")
    t.add_argument("--test-fraction", type=_fraction, default=None,
                   help="hold out a fraction of --data as the test part instead: the end of the series (forecast, "
                   "default 0.1), a random sample of examples (classify, tag)")
    c = t.add_argument_group("classify")
    c.add_argument("--format", choices=("tsv", "files"), default=None,
                   help="tsv: label<TAB>text lines (default); files: one file per class, named after the class")
    c.add_argument("--pooling", choices=("last", "mean", "max"), default=None,
                   help="how a text's steps become one vector (default last)")
    c.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="read both ways (default: no for classify, yes for tag)")
    c.add_argument("--min-count", type=_positive_int, default=None,
                   help="classify, tag: words seen fewer times in training are unknown (default 2)")
    g = t.add_argument_group("tag")
    g.add_argument("--word-column", type=int, default=None, help="column of the words (default 0)")
    g.add_argument("--tag-column", type=int, default=None, help="column of the tags (default -1, the last)")
    g.add_argument("--feature-columns", type=int, nargs="+", default=None,
                   help="categorical columns embedded next to the word (e.g. part of speech)")
    g.add_argument("--char-features", action="store_true", default=None,
                   help="add a character BiLSTM over each word (helps with unknown words)")
    g.add_argument("--crf", action="store_true", default=None, help="CRF output layer (Viterbi decoding)")
    f = t.add_argument_group("forecast")
    f.add_argument("--column", nargs="+", default=None,
                   help="value column (name or index); 12 month columns read a table of years row by row")
    f.add_argument("--date-column", default=None, help="date column: sets the frequency and finds missing dates")
    f.add_argument("--window", type=_positive_int, default=None,
                   help="history length of each forecast (default two seasons, else 24)")
    f.add_argument("--horizon", type=_positive_int, default=None, help="values forecast at once (default 1)")
    f.add_argument("--season", type=_positive_int, default=None,
                   help="season length for the seasonal-naive baseline (default from the dates: 12 monthly, 52 "
                   "weekly, 7 daily)")
    f.add_argument("--loss", choices=("mse", "mae"), default=None, help="training loss (default mse)")
    t.add_argument("--eval-every", type=_positive_int, default=None, help="evaluate every N steps (default: "
                   "every epoch)")
    t.add_argument("--skip-nonfinite", action="store_true", help="skip updates whose loss is NaN/Inf")
    t.add_argument("--threads", type=_positive_int, default=None)
    t.add_argument("--matmul-precision", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: matrix products round their operands to bfloat16 and sum in float32 on AMX "
                   "tiles or AVX512-BF16 (mixed precision, like PyTorch's bfloat16 autocast); needs a CPU with "
                   "either")
    t.add_argument("--seed", type=int, default=1234)
    t.add_argument("--out", default=None, help="output directory (default runs/<data name>)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.rnnfast")
    t.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")

    s = sub.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument("checkpoint")
    s.add_argument("--prime", default=None, help="text to start from")
    s.add_argument("-n", type=_positive_int, default=500, help="tokens to generate")
    s.add_argument("--temperature", type=_non_negative_float, default=1.0, help="0 = greedy")
    s.add_argument("--top-k", type=_positive_int, default=None)
    s.add_argument("--top-p", type=float, default=None)
    s.add_argument("--num-samples", type=_positive_int, default=1)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--threads", type=_positive_int, default=None)
    s.add_argument("--weight-dtype", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: weights rounded to bfloat16 while sampling, about twice as fast (float32 models)")

    e = sub.add_parser("eval", help="evaluate a checkpoint on a file; prints one JSON object",
                       description="Keys: lm loss, ppl, bpc, accuracy, macro_f1; classify accuracy, macro_f1, "
                       "loss; tag accuracy, chunk_f1 (null for tags that are not chunk tags), loss; forecast rmse, "
                       "mae, naive_rmse, naive_mae, seasonal_naive_rmse, seasonal_naive_mae, loss, on the test "
                       "part of the series (its last --test-fraction, as in training).")
    e.add_argument("checkpoint")
    e.add_argument("--data", required=True, nargs="+", help="a file like the training data (lm: text or a token "
                   "file of the checkpoint's tokenizer; classify --format files: one file per class)")
    e.add_argument("--encoding", default=None, help="text encoding (default: the one used in training)")
    e.add_argument("--batch-size", type=_positive_int, default=None)
    e.add_argument("--seq-len", type=_positive_int, default=None, help="lm only")
    e.add_argument("--threads", type=_positive_int, default=None)

    p = sub.add_parser("predict", help="predict with a classify, tag or forecast checkpoint",
                       description="Writes predictions in the input's own format: classify, one label per input "
                       "line (a line's text is what follows its first tab, if it has one); tag, the CoNLL file "
                       "with the predicted tags as one more column; forecast, a CSV of the next --steps values.")
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="texts (classify), a CoNLL file (tag) or the series (forecast)")
    p.add_argument("--out", default=None, help="output file (default: standard output)")
    p.add_argument("--encoding", default=None, help="text encoding (default: the one used in training)")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--steps", type=_positive_int, default=None, help="forecast: values to forecast (default: "
                   "the model's horizon)")
    p.add_argument("--threads", type=_positive_int, default=None)
    return parser


# Size and schedule defaults per task; lm's are the language model's (char-rnn-like) settings.
TASK_DEFAULTS = {
    "lm": {"embed": 64, "hidden": 256, "layers": 2, "dropout": 0.0, "batch_size": 64, "epochs": 1},
    "classify": {"embed": 100, "hidden": 128, "layers": 1, "dropout": 0.5, "batch_size": 32, "epochs": 10,
                 "format": "tsv", "pooling": "last", "bidirectional": False, "min_count": 2},
    "tag": {"embed": 100, "hidden": 128, "layers": 1, "dropout": 0.5, "batch_size": 32, "epochs": 20,
            "bidirectional": True, "min_count": 2, "word_column": 0, "tag_column": -1, "feature_columns": [],
            "char_features": False, "crf": False},
    "forecast": {"hidden": 64, "layers": 1, "dropout": 0.0, "batch_size": 32, "epochs": 50, "horizon": 1,
                 "loss": "mse", "test_fraction": 0.1},
}
# Options that only one kind of task reads; any other task refuses them rather than ignoring them.
_TASK_OPTIONS = {"format": "classify", "pooling": "classify", "bidirectional": "classify tag",
                 "min_count": "classify tag", "word_column": "tag", "tag_column": "tag", "feature_columns": "tag",
                 "char_features": "tag", "crf": "tag", "column": "forecast", "date_column": "forecast",
                 "window": "forecast", "horizon": "forecast", "season": "forecast", "loss": "forecast",
                 "test_fraction": "classify tag forecast", "embed": "lm classify tag"}


def _defaults_text() -> str:
    return "; ".join(f"{task} " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in d.items()
                                             if k in ("embed", "hidden", "layers", "dropout", "batch_size", "epochs"))
                     for task, d in TASK_DEFAULTS.items())


def _apply_task_defaults(args) -> None:
    for name, tasks in _TASK_OPTIONS.items():
        if getattr(args, name) is not None and args.task not in tasks.split():
            *others, last = tasks.split()
            allowed = f"{', '.join(others)} or {last}" if others else last
            raise ValueError(f"--{name.replace('_', '-')}: only for --task {allowed}, got --task {args.task}")
    for name, value in TASK_DEFAULTS[args.task].items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def _one_file(paths, option: str):
    if paths is None:
        return None
    if len(paths) != 1:
        raise ValueError(f"{option}: got {len(paths)} files, expected one")
    return paths[0]


def _language_model_task(args, tokenizer, splits):
    from .tasks import LanguageModelTask

    return LanguageModelTask(splits["train"], splits["val"], args.seq_len, args.batch_size,
                             test_ids=splits.get("test"), eval_batch_size=10 if tokenizer.kind == "word" else None)


def _is_token_file(path) -> bool:
    """Whether ``path`` begins like a token file of rnnfast prepare (anything else is read as text)."""
    from .prepare import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:  # reading it as text reports the problem
        return False


def _open_token_file(path, option: str):
    from .prepare import TokenFileError, open_tokens

    try:
        return open_tokens(path)
    except TokenFileError as exc:
        raise ValueError(f"{option}: {exc}") from None


def _lm_ids(path, tokenizer, encoding: str, option: str):
    """The ids of ``path`` for a model of ``tokenizer``: a token file prepared with that same tokenizer (memory
    mapped), or a text file encoded with it."""
    from . import text

    if not _is_token_file(path):
        content = text.read_text(path, encoding)
        try:
            return tokenizer.encode(content)
        except ValueError as exc:  # a character the model has no id for
            raise ValueError(f"{option}: {path}: {exc}") from None
    ids, file_tokenizer = _open_token_file(path, option)
    if file_tokenizer != tokenizer:
        raise ValueError(f"{option}: {path} holds the ids of another tokenizer ({file_tokenizer!r}) than the model's "
                         f"({tokenizer!r}); expected a token file prepared like the training data, or text")
    return ids


def _after_last(ids, value: int, end: int) -> int | None:
    """The position after the last ``value`` in ``ids[:end]`` (None if there is none), searched backwards one
    block at a time, so that a memory map is read no further than needed."""
    block = 1 << 20
    for stop in range(end, 0, -block):
        start = max(0, stop - block)
        found = np.flatnonzero(ids[start:stop] == value)
        if found.size:
            return start + int(found[-1]) + 1
    return None


def _load_lm_token_file(args):
    """Tokenizer and splits (train, val, test ids) when --data is a token file: the training ids stay a memory
    map, and --val-fraction takes the end of it as another view."""
    ids, tokenizer = _open_token_file(args.data, "--data")
    if args.level is not None and args.level != tokenizer.kind:
        raise ValueError(f"--level: got {args.level}, but {args.data} holds {tokenizer.kind} tokens")
    if args.val_data:
        splits = {"train": ids, "val": _lm_ids(args.val_data, tokenizer, args.encoding, "--val-data")}
    else:
        fraction = args.val_fraction if args.val_fraction is not None else 0.1
        cut = int(len(ids) * (1 - fraction))
        if tokenizer.kind == "word":  # keep whole lines on each side, as for text
            cut = _after_last(ids, tokenizer.eos_id, cut) or cut
        splits = {"train": ids[:cut], "val": ids[cut:]}
    if args.test_data:
        splits["test"] = _lm_ids(args.test_data, tokenizer, args.encoding, "--test-data")
    return tokenizer, splits


def _load_lm_texts(args, level: str):
    from . import corpus, text

    for option in ("val_data", "test_data"):
        path = getattr(args, option)
        if path and _is_token_file(path):
            raise ValueError(f"--{option.replace('_', '-')}: {path} is a token file, which needs --data to be a "
                             "token file of the same tokenizer; expected a text file like --data")
    if args.data:
        train_text = text.read_text(args.data, args.encoding)
    else:
        train_text = corpus.stdlib_docstrings(max_chars=1_500_000)
    if args.val_data:
        val_text = text.read_text(args.val_data, args.encoding)
    else:
        fraction = args.val_fraction if args.val_fraction is not None else 0.1
        cut = int(len(train_text) * (1 - fraction))
        if level == "word":  # keep whole lines on each side
            cut = train_text.rfind("\n", 0, cut) + 1 or cut
        train_text, val_text = train_text[:cut], train_text[cut:]
    test_text = text.read_text(args.test_data, args.encoding) if args.test_data else None
    return train_text, val_text, test_text


def _train_config(args, out: str, extra: dict):
    from .train import TrainConfig

    lr = args.lr if args.lr is not None else (1.0 if args.optimizer == "sgd" else 2e-3)
    return TrainConfig(epochs=args.epochs, minutes=args.minutes, optimizer=args.optimizer, lr=lr,
                       lr_decay=args.lr_decay, decay_after=args.decay_after, clip=args.clip or None,
                       eval_every=args.eval_every, skip_nonfinite=args.skip_nonfinite, out=out,
                       resume=args.resume, progress=False if args.no_progress else None, extra=extra)


def cmd_train(args) -> int:
    _apply_task_defaults(args)
    if args.task == "lm":
        for option in ("data", "val_data", "test_data"):
            setattr(args, option, _one_file(getattr(args, option), "--" + option.replace("_", "-")))
        return _train_language_model(args)
    if not args.data:
        raise ValueError(f"--data: required for --task {args.task}")
    if args.tie_weights or args.init_scale is not None or args.level is not None:
        raise ValueError("--tie-weights, --init-scale, --level: only for --task lm")
    return _train_sequence_task(args)


def _load_lm_data(args):
    """The tokenizer and the ids of each split (train, val, test) of a language model."""
    from . import text

    if args.data and _is_token_file(args.data):
        return _load_lm_token_file(args)
    level = args.level or "char"
    train_text, val_text, test_text = _load_lm_texts(args, level)
    if level == "char":
        # The vocabulary covers every split so that no validation character is unknown.
        tokenizer = text.CharTokenizer.fit(train_text + val_text + (test_text or ""))
    else:
        tokenizer = text.WordTokenizer.fit(train_text)
    splits = {"train": tokenizer.encode(train_text), "val": tokenizer.encode(val_text)}
    if test_text is not None:
        splits["test"] = tokenizer.encode(test_text)
    return tokenizer, splits


def _train_language_model(args) -> int:
    from . import LanguageModel
    from .train import train

    tokenizer, splits = _load_lm_data(args)
    task = _language_model_task(args, tokenizer, splits)
    out = args.out or os.path.join("runs", Path(args.data).stem if args.data else "stdlib-docstrings")
    model = LanguageModel(tokenizer.vocab_size, args.embed, args.hidden, args.layers, args.cell, args.dropout,
                          args.tie_weights, seed=args.seed, init_scale=args.init_scale)
    config = _train_config(args, out, {"task": "lm", "level": tokenizer.kind, "seq_len": args.seq_len})
    print(f"rnnfast: {len(splits['train']):,} training tokens, vocabulary {tokenizer.vocab_size}, "
          f"{model.num_parameters():,} parameters -> {out}", file=sys.stderr)
    try:
        train(model, task, config, tokenizer)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    print(f"rnnfast: saved {out}/model.rnnfast (best validation) and {out}/last.rnnfast", file=sys.stderr)
    if args.data is None:
        best = _load(os.path.join(out, "model.rnnfast"))
        print(_sample_text(best, prime=None, n=300, temperature=0.8, top_k=None, top_p=None, seed=args.seed,
                           weight_dtype="float32"))
    return 0


def _load(path):
    from . import io

    ckpt = io.load(path)
    ckpt.model.eval()
    return ckpt


def _sample_text(ckpt, prime, n, temperature, top_k, top_p, seed, weight_dtype) -> str:
    tokenizer = ckpt.tokenizer
    if tokenizer is None:
        raise ValueError(f"checkpoint: {ckpt} holds no tokenizer, so it cannot turn samples into text")
    if not prime:
        # Start where a document would: after a line break (char-rnn's habit), else at the first token.
        starts_line = tokenizer.kind == "word" or "\n" in tokenizer.vocab
        prime_ids = tokenizer.encode("\n") if starts_line else np.zeros(1, np.int64)
        shown = ""
    else:
        prime_ids, shown = tokenizer.encode(prime), prime
    if prime_ids.size == 0:
        raise ValueError("--prime: encodes to no tokens, expected some text")
    ids = ckpt.model.generate(prime_ids, n, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                              weight_dtype=weight_dtype)
    joiner = "" if tokenizer.kind == "char" or not shown else " "
    return shown + joiner + tokenizer.decode(ids)


def cmd_sample(args) -> int:
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        raise ValueError(f"--top-p: got {args.top_p}, expected a number in (0, 1]")
    ckpt = _load(args.checkpoint)
    for k in range(args.num_samples):
        seed = None if args.seed is None else args.seed + k
        text_out = _sample_text(ckpt, args.prime, args.n, args.temperature, args.top_k, args.top_p, seed,
                                args.weight_dtype)
        if args.num_samples > 1:
            print(f"----- sample {k + 1} -----")
        print(text_out)
    return 0


def cmd_eval(args) -> int:
    from .tasks import LanguageModelTask

    ckpt = _load(args.checkpoint)
    settings = _task_settings(ckpt)
    if settings.get("task", "lm") != "lm":
        print(json.dumps(_EVALUATORS[settings["task"]](ckpt, settings, args)))
        return 0
    if ckpt.tokenizer is None:
        raise ValueError(f"checkpoint: {args.checkpoint} holds no tokenizer to read --data with")
    ids = _lm_ids(_one_file(args.data, "--data"), ckpt.tokenizer, args.encoding or "utf-8", "--data")
    seq_len = args.seq_len or settings.get("seq_len", 100)
    task = LanguageModelTask(ids, ids, seq_len, args.batch_size or 10)
    result = task.evaluate(ckpt.model, "val", with_f1=True)
    print(json.dumps({k: result[k] for k in ("loss", "ppl", "bpc", "accuracy", "macro_f1")}))
    return 0


def cmd_prepare(args) -> int:
    from .prepare import prepare

    if args.level == "char" and (args.max_vocab is not None or args.min_count is not None):
        raise ValueError("--max-vocab, --min-count: only for --level word (a character vocabulary keeps every "
                         "character)")
    result = prepare(args.text, args.out, level=args.level, encoding=args.encoding, max_vocab=args.max_vocab,
                     min_count=1 if args.min_count is None else args.min_count)
    print(json.dumps({"path": result.path, "count": result.count, "vocab_size": result.tokenizer.vocab_size,
                      "dtype": result.dtype.name, "level": result.tokenizer.kind}))
    return 0


def cmd_predict(args) -> int:
    ckpt = _load(args.checkpoint)
    settings = _task_settings(ckpt)
    kind = settings.get("task", "lm")
    if kind == "lm":
        raise ValueError(f"checkpoint: {args.checkpoint} is a language model, expected a classify, tag or "
                         "forecast checkpoint (rnnfast sample generates text)")
    if args.steps is not None and kind != "forecast":
        raise ValueError(f"--steps: only for forecast checkpoints, got a {kind} checkpoint")
    write = _PREDICTORS[kind](ckpt, settings, args)
    if args.out:
        write(args.out)
    else:  # the writers take a path; standard output gets the same bytes
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "predictions")
            write(path)
            with open(path, encoding=_encoding(args, settings)) as f:
                sys.stdout.write(f.read())
    return 0


# ----- classify, tag, forecast ------------------------------------------------------------------------------
def _task_settings(ckpt) -> dict:
    settings = ckpt.extra.get("task", {})
    if not isinstance(settings, dict) or settings.get("task", "lm") not in TASK_DEFAULTS:
        raise ValueError(f"checkpoint: {ckpt.path} does not say which task it was trained for")
    return settings


def _encoding(args, settings: dict) -> str:
    return args.encoding or settings.get("encoding", "utf-8")


def _random_parts(count: int, args, name: str):
    """Indices (train, validation, test) of ``count`` items, the last two a seeded random sample of
    --val-fraction (default 0.1) and --test-fraction; a part that comes from its own file is None."""
    if args.test_data and args.test_fraction:
        raise ValueError("--test-data, --test-fraction: got both, expected one way to choose the test part")
    fractions = {"--val-fraction": None if args.val_data else args.val_fraction or 0.1,
                 "--test-fraction": args.test_fraction}
    sizes = {option: 0 if f is None else int(round(count * f)) for option, f in fractions.items()}
    for option, size in sizes.items():
        if fractions[option] is not None and size < 1:
            raise ValueError(f"{option}: {fractions[option]} of {count} {name} is none, expected a larger "
                             "fraction or more data")
    if sum(sizes.values()) >= count:
        raise ValueError(f"--val-fraction, --test-fraction: leave no training {name} of {count}")
    order = np.random.default_rng(args.seed).permutation(count)
    n_val, n_test = sizes.values()
    parts = [order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]]
    return [np.sort(p) if size else None for p, size in zip(parts, (1, n_val, n_test))]


def _read_classification(paths, fmt: str, encoding: str):
    from . import data

    if fmt == "files":
        return data.read_class_files(paths, encoding)
    texts, labels = [], []
    for path in paths:
        more_texts, more_labels = data.read_labelled_lines(path, encoding)
        texts += more_texts
        labels += more_labels
    return texts, labels


def _classify_setup(args):
    from .seqmodels import SequenceClassifier
    from .tasks import ClassificationTask, TextVocabulary

    texts, labels = _read_classification(args.data, args.format, args.encoding)
    part = lambda index: ([texts[i] for i in index], [labels[i] for i in index])  # noqa: E731
    kept, held_val, held_test = _random_parts(len(texts), args, "examples")
    train = part(kept)
    val = _read_classification(args.val_data, args.format, args.encoding) if args.val_data else part(held_val)
    test = _read_classification(args.test_data, args.format, args.encoding) if args.test_data else None
    test = part(held_test) if held_test is not None else test
    vocab = TextVocabulary.fit(train[0], train[1] + val[1] + (test[1] if test else []), args.min_count)
    encode = lambda split: (vocab.encode_texts(split[0]), vocab.encode_labels(split[1]))  # noqa: E731
    task = ClassificationTask(encode(train), encode(val), args.batch_size, None if test is None else encode(test),
                              seed=args.seed)
    model = SequenceClassifier(len(vocab.labels), vocab_size=len(vocab.words), embed_dim=args.embed,
                               hidden_size=args.hidden, num_layers=args.layers, cell=args.cell,
                               bidirectional=args.bidirectional, pooling=args.pooling, dropout=args.dropout,
                               seed=args.seed)
    extra = {"task": "classify", "format": args.format, "encoding": args.encoding, "vocab": vocab.to_dict()}
    summary = f"{len(train[0]):,} training texts, {len(vocab.words):,} words, {len(vocab.labels)} classes"
    return model, task, extra, summary


def _read_tagged(path, settings: dict, encoding: str, tagged: bool = True):
    from . import data

    return data.read_conll(path, settings["word_column"], settings["tag_column"] if tagged else None,
                           settings["feature_columns"], encoding)


def _sentence_subset(sentences, index):
    from . import data

    pick = lambda items: None if items is None else [items[i] for i in index]  # noqa: E731
    return data.TaggedSentences(pick(sentences.words), pick(sentences.tags), pick(sentences.features),
                                pick(sentences.lines))


def _tag_setup(args):
    from .seqmodels import SequenceTagger
    from .tasks import TaggingTask, TaggingVocabulary

    columns = {"word_column": args.word_column, "tag_column": args.tag_column,
               "feature_columns": list(args.feature_columns)}
    read = lambda paths, option: _read_tagged(_one_file(paths, option), columns, args.encoding)  # noqa: E731
    sentences = read(args.data, "--data")
    kept, held_val, held_test = _random_parts(len(sentences), args, "sentences")
    train = _sentence_subset(sentences, kept)
    val = read(args.val_data, "--val-data") if args.val_data else _sentence_subset(sentences, held_val)
    test = read(args.test_data, "--test-data") if args.test_data else None
    test = _sentence_subset(sentences, held_test) if held_test is not None else test
    extra_tags = {t for s in val.tags + (test.tags if test else []) for t in s}
    vocab = TaggingVocabulary.fit(train, args.min_count, args.char_features, extra_tags)
    task = TaggingTask(vocab.encode(train), vocab.encode(val), vocab.tags.tokens, args.batch_size,
                       None if test is None else vocab.encode(test), vocab.chunk_scheme, seed=args.seed)
    model = SequenceTagger(len(vocab.tags), vocab_size=len(vocab.words), embed_dim=args.embed,
                           hidden_size=args.hidden, num_layers=args.layers, cell=args.cell,
                           bidirectional=args.bidirectional, feature_vocab_sizes=[len(v) for v in vocab.features],
                           char_features=args.char_features,
                           char_vocab_size=len(vocab.chars) if vocab.chars is not None else None,
                           crf=args.crf, dropout=args.dropout, seed=args.seed)
    extra = {"task": "tag", **columns, "encoding": args.encoding, "vocab": vocab.to_dict()}
    tokens = int(sum(len(s) for s in train.words))
    summary = (f"{len(train):,} training sentences ({tokens:,} tokens), {len(vocab.words):,} words, "
               f"{len(vocab.tags)} tags")
    return model, task, extra, summary


_SEASONS = {"monthly": 12, "weekly": 52, "daily": 7}


def _column(value: str):
    """A column name, or an index when it is written as an integer."""
    return int(value) if value.lstrip("-").isdigit() else value


def _read_series(path, settings: dict, encoding: str):
    from . import data

    columns = settings["column"]
    series = data.read_time_series(path, _column(columns[0]) if len(columns) == 1 else [_column(c) for c in columns],
                                   settings["date_column"], encoding)
    if series.report.count:
        print(f"rnnfast: {path}: {series.report}", file=sys.stderr)
    return series


def _forecast_task(series, settings: dict, batch_size: int, seed: int = 0):
    from .tasks import ForecastTask

    return ForecastTask(series.values, settings["window"], settings["horizon"], batch_size, settings["val_fraction"],
                        settings["test_fraction"], settings["season"], seed)


def _forecast_setup(args):
    from .seqmodels import Forecaster

    if args.val_data or args.test_data:
        raise ValueError("--val-data, --test-data: a forecast splits one series in time, expected --val-fraction "
                         "and --test-fraction instead")
    if args.column is None:
        raise ValueError("--column: required for --task forecast (the name or index of the value column)")
    settings = {"column": args.column, "date_column": args.date_column}
    series = _read_series(_one_file(args.data, "--data"), settings, args.encoding)
    season = args.season or _SEASONS.get(series.frequency)
    settings.update(window=args.window or (2 * season if season else 24), horizon=args.horizon, season=season,
                    val_fraction=args.val_fraction or 0.1, test_fraction=args.test_fraction)
    task = _forecast_task(series, settings, args.batch_size, args.seed)
    model = Forecaster(1, args.hidden, args.layers, args.cell, args.horizon, args.loss, args.dropout, seed=args.seed)
    model.fit_scaler(task.train_values)
    extra = {"task": "forecast", **settings, "encoding": args.encoding}
    sizes = "/".join(str(hi - lo) for lo, hi in task.bounds.values())
    summary = (f"{len(series):,} values ({series.frequency or 'no dates'}; train/val/test {sizes}), window "
               f"{settings['window']}, horizon {args.horizon}, season {season or '-'}")
    return model, task, extra, summary


def _result_line(kind: str, result: dict, split: str) -> str:
    number = lambda key: "-" if result.get(key) is None else f"{result[key]:.4f}"  # noqa: E731
    if kind == "forecast":
        return (f"{split}: model rmse {number('rmse')} mae {number('mae')} | naive rmse {number('naive_rmse')} mae "
                f"{number('naive_mae')} | seasonal naive rmse {number('seasonal_naive_rmse')} mae "
                f"{number('seasonal_naive_mae')}")
    keys = ("accuracy", "macro_f1") if kind == "classify" else ("accuracy", "chunk_f1")
    return f"{split}: " + " ".join(f"{key} {number(key)}" for key in keys)


def _train_sequence_task(args) -> int:
    from .train import train

    model, task, extra, summary = {"classify": _classify_setup, "tag": _tag_setup,
                                   "forecast": _forecast_setup}[args.task](args)
    out = args.out or os.path.join("runs", Path(args.data[0]).stem)
    print(f"rnnfast: {summary}, {model.num_parameters():,} parameters -> {out}", file=sys.stderr)
    try:
        records = train(model, task, _train_config(args, out, extra))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    print(f"rnnfast: saved {out}/model.rnnfast (best validation) and {out}/last.rnnfast", file=sys.stderr)
    final = records[-1] if records and records[-1].get("final") else None
    if final is not None:
        result = {k[len("test_"):]: v for k, v in final.items() if k.startswith("test_")}
        print(f"rnnfast: {_result_line(args.task, result, 'test')}", file=sys.stderr)
    return 0


def _eval_classify(ckpt, settings: dict, args) -> dict:
    from .tasks import ClassificationTask, TextVocabulary

    vocab = TextVocabulary.from_dict(settings["vocab"])
    texts, labels = _read_classification(args.data, settings["format"], _encoding(args, settings))
    split = (vocab.encode_texts(texts), vocab.encode_labels(labels))
    result = ClassificationTask(split, split, args.batch_size or 64).evaluate(ckpt.model, "val")
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "loss": result["loss"]}


def _eval_tag(ckpt, settings: dict, args) -> dict:
    from .tasks import TaggingTask, TaggingVocabulary

    vocab = TaggingVocabulary.from_dict(settings["vocab"])
    sentences = vocab.encode(_read_tagged(_one_file(args.data, "--data"), settings, _encoding(args, settings)))
    task = TaggingTask(sentences, sentences, vocab.tags.tokens, args.batch_size or 64, scheme=vocab.chunk_scheme)
    result = task.evaluate(ckpt.model, "val")
    return {"accuracy": result["accuracy"], "chunk_f1": result.get("chunk_f1"), "loss": result["loss"]}


def _eval_forecast(ckpt, settings: dict, args) -> dict:
    series = _read_series(_one_file(args.data, "--data"), settings, _encoding(args, settings))
    task = _forecast_task(series, settings, args.batch_size or 64)
    result = task.evaluate(ckpt.model, "test" if task.has_split("test") else "val")
    keys = ("rmse", "mae", "naive_rmse", "seasonal_naive_rmse", "naive_mae", "seasonal_naive_mae", "loss")
    return {k: result[k] for k in keys}


def _predict_classify(ckpt, settings: dict, args):
    from . import text
    from .tasks import TextVocabulary, predict_labels

    vocab = TextVocabulary.from_dict(settings["vocab"])
    encoding = _encoding(args, settings)
    lines = text.read_text(args.data, encoding).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    present = [i for i, line in enumerate(lines) if line.strip()]
    texts = [lines[i].partition("\t")[2] if "\t" in lines[i] else lines[i] for i in present]
    if not texts:
        raise ValueError(f"--data: {args.data} has no text lines, expected one text per line")
    predicted, _ = predict_labels(ckpt.model, vocab.encode_texts(texts), args.batch_size)
    out = [""] * len(lines)
    for i, label in zip(present, vocab.labels.decode(predicted)):
        out[i] = label

    def write(path):
        with open(path, "w", encoding=encoding) as f:
            f.write("\n".join(out) + "\n")
    return write


def _predict_tag(ckpt, settings: dict, args):
    from . import data
    from .tasks import TaggingVocabulary, predict_tags

    vocab = TaggingVocabulary.from_dict(settings["vocab"])
    encoding = _encoding(args, settings)
    sentences = _read_tagged(args.data, settings, encoding, tagged=False)
    predicted = predict_tags(ckpt.model, vocab.encode(sentences, with_tags=False), args.batch_size)
    tags = [vocab.tags.decode(p) for p in predicted]
    return lambda path: data.write_conll(path, sentences, tags, encoding)


def _predict_forecast(ckpt, settings: dict, args):
    import csv

    encoding = _encoding(args, settings)
    series = _read_series(args.data, settings, encoding)
    window = settings["window"]
    if len(series) < window:
        raise ValueError(f"--data: {args.data} has {len(series)} values, expected at least the model's window of "
                         f"{window}")
    steps = args.steps or settings["horizon"]
    forecast = ckpt.model.predict(series.values[-window:], steps)
    columns = settings["column"]
    name = str(columns[0]) if len(columns) == 1 else "value"
    if series.dates is not None:
        step = 7 if series.frequency == "weekly" else 1
        keys = [str(d) for d in series.dates[-1] + step * np.arange(1, steps + 1)]
        header = str(settings["date_column"])
    else:
        keys = [str(len(series) + k) for k in range(steps)]
        header = "step"

    def write(path):
        with open(path, "w", encoding=encoding, newline="") as f:
            writer = csv.writer(f)
            writer.writerow([header, name])
            writer.writerows([key, repr(float(value))] for key, value in zip(keys, forecast))
    return write


_EVALUATORS = {"classify": _eval_classify, "tag": _eval_tag, "forecast": _eval_forecast}
_PREDICTORS = {"classify": _predict_classify, "tag": _predict_tag, "forecast": _predict_forecast}
COMMANDS = {"prepare": cmd_prepare, "train": cmd_train, "sample": cmd_sample, "eval": cmd_eval,
            "predict": cmd_predict}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "threads", None):
            from . import set_num_threads

            set_num_threads(args.threads)
        if getattr(args, "matmul_precision", "float32") != "float32":
            from . import set_matmul_precision

            set_matmul_precision(args.matmul_precision)
        return COMMANDS[args.command](args)
    except (ValueError, TypeError, OSError, MemoryError, UnicodeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"rnnfast {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as exc:
        print(f"rnnfast {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
