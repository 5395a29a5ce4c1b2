"""Language models: next-token prediction over token streams with truncated back-propagation through time.

Data: a text file (character or word tokens) or a token file of ``rnnfast prepare`` (memory-mapped, so a corpus
of any size trains in little memory); without a file, the Python standard library's docstrings. ``fit`` takes a
1-d array of token ids. Metrics: loss (nats per token), perplexity, bits per character, accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _checks, distributed, metrics
from ..models import LanguageModel, _softmax_cross_entropy
from .common import (
    Option,
    Prepared,
    add_weight_dtype_option,
    in_weight_dtype,
    one_file,
    option,
    positive_float,
    positive_int,
)

NAME = "lm"
HELP = "language model: predicts the next character or word of a text"
MODEL = LanguageModel
DEFAULTS = {
    "cell": "lstm",
    "embed": 64,
    "hidden": 256,
    "layers": 2,
    "dropout": 0.0,
    "batch_size": 64,
    "epochs": 1,
    "seq_len": 100,
}
OPTIONS: tuple[Option, ...] = (
    option(
        "--level",
        choices=("char", "word"),
        help="tokens are characters or words (default char; a token file has its own)",
    ),
    option("--tie-weights", action="store_true", help="share embedding and output weights"),
    option("--seq-len", type=positive_int, help="steps of truncated back-propagation (default 100)"),
    option("--init-scale", type=positive_float, help="initialise all weights U(-s, s)"),
)
# A word vocabulary's evaluation uses few parallel streams, as Zaremba et al.'s does (batch 10).
WORD_EVAL_STREAMS = 10


@dataclass
class Settings:
    VERSION = 1
    level: str = "char"
    seq_len: int = 100
    encoding: str = "utf-8"


def batchify(ids, batch_size: int, name: str = "data") -> np.ndarray:
    """Lay a token stream out as ``batch_size`` parallel streams, (N, B): column b continues where it left off in
    the next batch, so the final state of one batch is the right initial state of the next (truncated BPTT).

    The result is a view of ``ids`` (the transpose of a (B, N) reshape), never a copy, so a memory-mapped corpus
    stays on disk; ``LanguageModelTask`` copies one (T, B) batch at a time."""
    ids = np.asanyarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"{name}: got {_checks.describe(ids)}, expected a 1-d array of token ids")
    per_stream = len(ids) // batch_size
    if per_stream < 2:
        raise ValueError(
            f"{name}: {len(ids)} tokens are too few for batch size {batch_size} (need at least {2 * batch_size})"
        )
    return ids[: per_stream * batch_size].reshape(batch_size, per_stream).T


class LanguageModelTask:
    """Next-token prediction over token streams with truncated back-propagation through time; the hidden state
    is carried from one batch to the next within an epoch."""

    metric_names = ("loss", "ppl", "bpc", "accuracy")
    selection = ("loss", "min")

    def __init__(
        self, train_ids, val_ids, seq_len: int, batch_size: int, test_ids=None, eval_batch_size=None, dtype=np.float32
    ):
        self.seq_len = _checks.positive_int(seq_len, "seq_len")
        self.train = batchify(train_ids, batch_size, "training data")
        eval_batch = eval_batch_size or batch_size
        self.splits = {}
        if val_ids is not None:
            self.splits["val"] = self._eval_streams(val_ids, eval_batch, "validation data")
        if test_ids is not None:
            self.splits["test"] = self._eval_streams(test_ids, eval_batch, "test data")
        self.dtype = dtype

    @staticmethod
    def _eval_streams(ids, batch_size: int, name: str) -> np.ndarray:
        # Short evaluation sets still get evaluated, with fewer parallel streams.
        return batchify(ids, max(1, min(batch_size, len(ids) // 2)), name)

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def num_train_batches(self) -> int:
        return math.ceil((len(self.train) - 1) / self.seq_len)

    def _windows(self, streams: np.ndarray, start: int = 0):
        """Views of n + 1 steps of every stream (uncopied, so a memory map is read only where a rank's own
        streams lie)."""
        for i in range(start * self.seq_len, len(streams) - 1, self.seq_len):
            yield streams[i : i + min(self.seq_len, len(streams) - 1 - i) + 1]

    @staticmethod
    def _steps(window: np.ndarray):
        # Inputs and targets overlap in all but one step: one int64 copy of n + 1 steps serves both.
        steps = np.ascontiguousarray(window, dtype=np.int64)
        return steps[:-1], steps[1:]

    def train_batches(self, epoch: int, start: int):
        return self._windows(self.train, start)

    def shard(self, batch, rank: int, size: int):
        if batch.shape[1] < size:
            raise ValueError(f"batch_size: got {batch.shape[1]} streams for {size} ranks, expected at least one each")
        return batch[:, distributed.share(batch.shape[1], rank, size)]

    def train_step(self, model, batch, carry):
        inputs, targets = self._steps(batch)
        loss, state = model.loss(inputs, targets, carry)
        model.backward()
        return loss, inputs.size, state

    def evaluate(self, model, split: str, with_f1: bool = False) -> dict:
        """Under MPI each rank evaluates its share of the streams and the sums are reduced."""
        total, count, correct = 0.0, 0, 0
        y_true, y_pred = [], []
        state = None
        streams = self.splits[split]
        streams = streams[:, distributed.share(streams.shape[1])]
        for window in self._windows(streams) if streams.shape[1] else ():
            inputs, targets = self._steps(window)
            logits, state = model.forward(inputs, state)
            loss, n, right = _softmax_cross_entropy(logits, targets)
            total, count, correct = total + loss * n, count + n, correct + right
            if with_f1:
                y_true.append(targets.reshape(-1))
                y_pred.append(logits.argmax(-1).reshape(-1))
        total, count, correct = distributed.sum_values([total, count, correct])
        loss = float(total / count)
        out = {
            "loss": loss,
            "ppl": metrics.perplexity(loss),
            "bpc": metrics.bits_per_char(loss),
            "accuracy": float(correct / count),
        }
        if with_f1:
            y_true, y_pred = (
                np.concatenate(distributed.allgather(np.concatenate([*y, np.zeros(0, np.int64)])))
                for y in (y_true, y_pred)
            )
            _, _, out["macro_f1"] = metrics.precision_recall_f1(y_true, y_pred)
            out["macro_f1"] = float(out["macro_f1"])
        return out

    def carry_to_arrays(self, carry) -> dict:
        if carry is None:
            return {}
        parts = carry if isinstance(carry, tuple) else (carry,)
        return dict(zip(("h", "c"), parts))

    def carry_from_arrays(self, arrays):
        if not arrays:
            return None
        parts = tuple(np.asarray(arrays[k], dtype=self.dtype) for k in ("h", "c") if k in arrays)
        return parts if len(parts) == 2 else parts[0]


# ----- files ------------------------------------------------------------------------------------------------
def is_token_file(path) -> bool:
    """Whether ``path`` begins like a token file of rnnfast prepare (anything else is read as text)."""
    from ..prepare import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:  # reading it as text reports the problem
        return False


def _open_token_file(path, option_name: str):
    from ..prepare import TokenFileError, open_tokens

    try:
        return open_tokens(path)
    except TokenFileError as exc:
        raise ValueError(f"{option_name}: {exc}") from None


def file_ids(path, tokenizer, encoding: str, option_name: str):
    """The ids of ``path`` for a model of ``tokenizer``: a token file prepared with that same tokenizer (memory
    mapped), or a text file encoded with it."""
    from .. import text

    if not is_token_file(path):
        content = text.read_text(path, encoding)
        try:
            return tokenizer.encode(content)
        except ValueError as exc:  # a character the model has no id for
            raise ValueError(f"{option_name}: {path}: {exc}") from None
    ids, file_tokenizer = _open_token_file(path, option_name)
    if file_tokenizer != tokenizer:
        raise ValueError(
            f"{option_name}: {path} holds the ids of another tokenizer ({file_tokenizer!r}) than the "
            f"model's ({tokenizer!r}); expected a token file prepared like the training data, or text"
        )
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


def load_token_file(args):
    """Tokenizer and splits (train, val, test ids) when --data is a token file: the training ids stay a memory
    map, and --val-fraction takes the end of it as another view."""
    ids, tokenizer = _open_token_file(args.data, "--data")
    if args.level is not None and args.level != tokenizer.kind:
        raise ValueError(f"--level: got {args.level}, but {args.data} holds {tokenizer.kind} tokens")
    if args.val_data:
        splits = {"train": ids, "val": file_ids(args.val_data, tokenizer, args.encoding, "--val-data")}
    else:
        fraction = args.val_fraction if args.val_fraction is not None else 0.1
        cut = int(len(ids) * (1 - fraction))
        if tokenizer.kind == "word":  # keep whole lines on each side, as for text
            cut = _after_last(ids, tokenizer.eos_id, cut) or cut
        splits = {"train": ids[:cut], "val": ids[cut:]}
    if args.test_data:
        splits["test"] = file_ids(args.test_data, tokenizer, args.encoding, "--test-data")
    return tokenizer, splits


def _load_texts(args, level: str):
    from .. import corpus, text

    for name in ("val_data", "test_data"):
        path = getattr(args, name)
        if path and is_token_file(path):
            raise ValueError(
                f"--{name.replace('_', '-')}: {path} is a token file, which needs --data to be a "
                "token file of the same tokenizer; expected a text file like --data"
            )
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


def load_data(args):
    """The tokenizer and the ids of each split (train, val, test) of a language model."""
    from .. import text

    if args.data and is_token_file(args.data):
        return load_token_file(args)
    level = args.level or "char"
    train_text, val_text, test_text = _load_texts(args, level)
    if level == "char":
        # The vocabulary covers every split so that no validation character is unknown.
        tokenizer = text.CharTokenizer.fit(train_text + val_text + (test_text or ""))
    else:
        tokenizer = text.WordTokenizer.fit(train_text)
    splits = {"train": tokenizer.encode(train_text), "val": tokenizer.encode(val_text)}
    if test_text is not None:
        splits["test"] = tokenizer.encode(test_text)
    return tokenizer, splits


def _eval_streams(tokenizer) -> int | None:
    return WORD_EVAL_STREAMS if tokenizer is not None and tokenizer.kind == "word" else None


def prepare(args) -> Prepared:
    for name in ("data", "val_data", "test_data"):
        setattr(args, name, one_file(getattr(args, name), "--" + name.replace("_", "-")))
    tokenizer, splits = load_data(args)
    task = LanguageModelTask(
        splits["train"],
        splits["val"],
        args.seq_len,
        args.batch_size,
        test_ids=splits.get("test"),
        eval_batch_size=_eval_streams(tokenizer),
    )
    model = LanguageModel(
        tokenizer.vocab_size,
        args.embed,
        args.hidden,
        args.layers,
        args.cell,
        args.dropout,
        args.tie_weights,
        seed=args.seed,
        init_scale=args.init_scale,
    )
    from pathlib import Path

    summary = f"{len(splits['train']):,} training tokens, vocabulary {tokenizer.vocab_size}"
    return Prepared(
        model,
        task,
        Settings(tokenizer.kind, args.seq_len, args.encoding),
        tokenizer,
        summary,
        Path(args.data).stem if args.data else "stdlib-docstrings",
    )


def after_training(args, checkpoint) -> None:
    """The main job (no --data) ends by showing what the model learned."""
    if args.data is None:
        print(sample_text(checkpoint, prime=None, n=300, temperature=0.8, seed=args.seed))


def sample_text(
    checkpoint, prime=None, n=500, temperature=1.0, top_k=None, top_p=None, seed=None, weight_dtype=None
) -> str:
    """``n`` generated tokens as text, after ``prime`` (shown first) or after a line break."""
    tokenizer = checkpoint.tokenizer
    if tokenizer is None:
        raise ValueError(f"checkpoint: {checkpoint.path} holds no tokenizer, so it cannot turn samples into text")
    if not prime:
        # Start where a document would: after a line break (char-rnn's habit), else at the first token.
        starts_line = tokenizer.kind == "word" or "\n" in tokenizer.vocab
        prime_ids = tokenizer.encode("\n") if starts_line else np.zeros(1, np.int64)
        shown = ""
    else:
        prime_ids, shown = tokenizer.encode(prime), prime
    if prime_ids.size == 0:
        raise ValueError("--prime: encodes to no tokens, expected some text")
    ids = checkpoint.model.generate(
        prime_ids, n, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, weight_dtype=weight_dtype
    )
    joiner = "" if tokenizer.kind == "char" or not shown else " "
    return shown + joiner + tokenizer.decode(ids)


def evaluate_files(checkpoint, settings: Settings, args) -> dict:
    if checkpoint.tokenizer is None:
        raise ValueError(f"checkpoint: {checkpoint.path} holds no tokenizer to read --data with")
    ids = file_ids(one_file(args.data, "--data"), checkpoint.tokenizer, args.encoding or settings.encoding, "--data")
    task = LanguageModelTask(ids, ids, args.seq_len or settings.seq_len, args.batch_size or WORD_EVAL_STREAMS)
    result = task.evaluate(checkpoint.model, "val", with_f1=True)
    return {k: result[k] for k in ("loss", "ppl", "bpc", "accuracy", "macro_f1")}


def predict_files(checkpoint, settings, args):
    raise ValueError(
        f"checkpoint: {checkpoint.path} is a language model, expected a classify, tag or forecast "
        "checkpoint (rnnfast sample generates text)"
    )


def result_line(result: dict) -> str:
    return " ".join(f"{k} {result[k]:.4f}" for k in ("loss", "ppl", "accuracy") if result.get(k) is not None)


# ----- in memory --------------------------------------------------------------------------------------------
def _token_ids(x, name: str) -> np.ndarray:
    ids = np.asanyarray(x)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"{name}: got {_checks.describe(ids)}, expected a 1-d array of token ids")
    return ids


def fit_task(model, x, y, validation, batch_size: int, seed: int, options: dict):
    """(task, settings, tokenizer) for ``LanguageModel.fit``: ``x`` is a 1-d array of token ids; options
    ``seq_len`` (default 100) and ``tokenizer`` (saved with the checkpoints of ``out=``)."""
    seq_len = options.pop("seq_len", DEFAULTS["seq_len"])
    tokenizer = options.pop("tokenizer", None)
    if options:
        raise TypeError(f"{', '.join(options)}: not options of LanguageModel.fit (seq_len, tokenizer)")
    if y is not None:
        raise ValueError("y: a language model predicts x's own next tokens, expected y=None")
    ids = _token_ids(x, "x")
    if isinstance(validation, float):
        cut = int(len(ids) * (1 - validation))
        ids, val = ids[:cut], ids[cut:]
    else:
        val = (
            None
            if validation is None
            else _token_ids(validation[0] if isinstance(validation, tuple) else validation, "validation_data")
        )
    task = LanguageModelTask(ids, val, seq_len, batch_size, eval_batch_size=_eval_streams(tokenizer), dtype=model.dtype)
    return task, Settings(getattr(tokenizer, "kind", "char"), task.seq_len), tokenizer


def evaluate_arrays(model, x, y, options: dict) -> dict:
    """``LanguageModel.evaluate``: loss, ppl, bpc, accuracy and macro_f1 of predicting ``x``'s next tokens."""
    from ..seqmodels import evaluation_mode

    seq_len = options.pop("seq_len", DEFAULTS["seq_len"])
    batch_size = options.pop("batch_size", WORD_EVAL_STREAMS)
    if options or y is not None:
        raise TypeError(
            f"{', '.join(options) or 'y'}: not arguments of LanguageModel.evaluate (x, seq_len, batch_size)"
        )
    ids = _token_ids(x, "x")
    task = LanguageModelTask(ids, ids, seq_len, batch_size, dtype=model.dtype)
    with evaluation_mode(model):
        return task.evaluate(model, "val", with_f1=True)


# ----- command line -----------------------------------------------------------------------------------------
def add_sample_command(subparsers) -> None:
    """``rnnfast sample CHECKPOINT``."""
    from .common import non_negative_float

    s = subparsers.add_parser("sample", help="generate text from a language-model checkpoint")
    s.add_argument("checkpoint")
    s.add_argument("--prime", help="text to start from")
    s.add_argument("-n", type=positive_int, default=500, help="tokens to generate")
    s.add_argument("--temperature", type=non_negative_float, default=1.0, help="0 = greedy")
    s.add_argument("--top-k", type=positive_int)
    s.add_argument("--top-p", type=float)
    s.add_argument("--num-samples", type=positive_int, default=1)
    s.add_argument("--seed", type=int)
    s.add_argument("--threads", type=positive_int)
    add_weight_dtype_option(
        s,
        ("float32", "bfloat16", "int8"),
        "bfloat16: weights rounded to bfloat16 while sampling, about twice as fast (float32 models); ",
    )


def sample_command(args) -> int:
    """``rnnfast sample``: text generated from a language-model checkpoint."""
    from ..io import load

    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        raise ValueError(f"--top-p: got {args.top_p}, expected a number in (0, 1]")
    checkpoint = load(args.checkpoint)
    checkpoint.model.eval()
    # Quantized once for every sample; bfloat16 rounding happens inside generate.
    if args.weight_dtype != "bfloat16":
        checkpoint = in_weight_dtype(checkpoint, args.weight_dtype)
    # Under mpiexec the ranks share the samples (sample k still uses seed + k) and rank 0 prints them in order.
    texts = [
        sample_text(
            checkpoint,
            args.prime,
            args.n,
            args.temperature,
            args.top_k,
            args.top_p,
            None if args.seed is None else args.seed + k,
            args.weight_dtype,
        )
        for k in range(args.num_samples)[distributed.share(args.num_samples)]
    ]
    texts = [text for part in distributed.allgather(texts) for text in part]
    if distributed.rank() != 0:
        return 0
    for k, text in enumerate(texts):
        if args.num_samples > 1:
            print(f"----- sample {k + 1} -----")
        print(text)
    return 0
