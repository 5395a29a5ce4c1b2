"""The ``rnnfast`` command line: train, sample, eval.

Every user error ends as one line on stderr and exit code 2; nothing already saved is touched by a failing
command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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

    t = sub.add_parser("train", help="train a model (default: a character-level language model)",
                       description="Without --data, trains on the Python standard library's docstrings.")
    t.add_argument("--data", help="training text file (default: the standard library's docstrings)")
    t.add_argument("--level", choices=("char", "word"), default="char")
    t.add_argument("--encoding", default="utf-8", help="text encoding of the data files")
    t.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    t.add_argument("--embed", type=_positive_int, default=64, help="embedding size")
    t.add_argument("--hidden", type=_positive_int, default=256, help="hidden units per layer")
    t.add_argument("--layers", type=_positive_int, default=2)
    t.add_argument("--dropout", type=_probability, default=0.0)
    t.add_argument("--tie-weights", action="store_true", help="share embedding and output weights")
    t.add_argument("--seq-len", type=_positive_int, default=100, help="steps of truncated back-propagation")
    t.add_argument("--batch-size", type=_positive_int, default=64)
    t.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam")
    t.add_argument("--lr", type=_positive_float, default=None, help="learning rate (adam 2e-3, sgd 1.0)")
    t.add_argument("--lr-decay", type=_positive_float, default=None, help="multiply the lr by this every epoch...")
    t.add_argument("--decay-after", type=int, default=1, help="...starting after this many epochs")
    t.add_argument("--clip", type=_non_negative_float, default=5.0, help="max global gradient norm (0: off)")
    t.add_argument("--init-scale", type=_positive_float, default=None, help="initialise all weights U(-s, s)")
    t.add_argument("--epochs", type=_positive_int, default=None)
    t.add_argument("--minutes", type=_positive_float, default=None, help="stop after this much training time")
    val = t.add_mutually_exclusive_group()
    val.add_argument("--val-data", help="validation text file")
    val.add_argument("--val-fraction", type=_fraction, default=None,
                     help="hold out the last fraction of --data for validation (default 0.1)")
    t.add_argument("--test-data", help="test text file, evaluated with the best model at the end")
    t.add_argument("--eval-every", type=_positive_int, default=None, help="evaluate every N steps (default: "
                   "every epoch)")
    t.add_argument("--skip-nonfinite", action="store_true", help="skip updates whose loss is NaN/Inf")
    t.add_argument("--threads", type=_positive_int, default=None)
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

    e = sub.add_parser("eval", help="evaluate a checkpoint on a file; prints one JSON object")
    e.add_argument("checkpoint")
    e.add_argument("--data", required=True)
    e.add_argument("--encoding", default="utf-8")
    e.add_argument("--batch-size", type=_positive_int, default=10)
    e.add_argument("--seq-len", type=_positive_int, default=None)
    e.add_argument("--threads", type=_positive_int, default=None)
    return parser


def _language_model_task(args, tokenizer_text, splits):
    from .tasks import LanguageModelTask

    return LanguageModelTask(splits["train"], splits["val"], args.seq_len, args.batch_size,
                             test_ids=splits.get("test"), eval_batch_size=10 if args.level == "word" else None)


def _load_lm_texts(args):
    from . import corpus, text

    if args.data:
        train_text = text.read_text(args.data, args.encoding)
    else:
        train_text = corpus.stdlib_docstrings(max_chars=1_500_000)
    if args.val_data:
        val_text = text.read_text(args.val_data, args.encoding)
    else:
        fraction = args.val_fraction if args.val_fraction is not None else 0.1
        cut = int(len(train_text) * (1 - fraction))
        if args.level == "word":  # keep whole lines on each side
            cut = train_text.rfind("\n", 0, cut) + 1 or cut
        train_text, val_text = train_text[:cut], train_text[cut:]
    test_text = text.read_text(args.test_data, args.encoding) if args.test_data else None
    return train_text, val_text, test_text


def cmd_train(args) -> int:
    from . import LanguageModel, set_num_threads, text
    from .train import TrainConfig, train

    if args.threads:
        set_num_threads(args.threads)
    train_text, val_text, test_text = _load_lm_texts(args)
    if args.level == "char":
        # The vocabulary covers every split so that no validation character is unknown.
        tokenizer = text.CharTokenizer.fit(train_text + val_text + (test_text or ""))
    else:
        tokenizer = text.WordTokenizer.fit(train_text)
    splits = {"train": tokenizer.encode(train_text), "val": tokenizer.encode(val_text)}
    if test_text is not None:
        splits["test"] = tokenizer.encode(test_text)
    task = _language_model_task(args, tokenizer, splits)
    out = args.out or os.path.join("runs", Path(args.data).stem if args.data else "stdlib-docstrings")
    lr = args.lr if args.lr is not None else (1.0 if args.optimizer == "sgd" else 2e-3)
    epochs = args.epochs if args.epochs is not None else 1
    model = LanguageModel(tokenizer.vocab_size, args.embed, args.hidden, args.layers, args.cell, args.dropout,
                          args.tie_weights, seed=args.seed, init_scale=args.init_scale)
    config = TrainConfig(epochs=epochs, minutes=args.minutes, optimizer=args.optimizer, lr=lr,
                         lr_decay=args.lr_decay, decay_after=args.decay_after, clip=args.clip or None,
                         eval_every=args.eval_every, skip_nonfinite=args.skip_nonfinite, out=out,
                         resume=args.resume, progress=False if args.no_progress else None,
                         extra={"task": "lm", "level": args.level, "seq_len": args.seq_len})
    print(f"rnnfast: {len(splits['train']):,} training tokens, vocabulary {tokenizer.vocab_size}, "
          f"{model.num_parameters():,} parameters -> {out}", file=sys.stderr)
    try:
        train(model, task, config, tokenizer)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    print(f"rnnfast: saved {out}/model.rnnfast (best validation) and {out}/last.rnnfast", file=sys.stderr)
    if args.data is None:
        best = _load(os.path.join(out, "model.rnnfast"))
        print(_sample_text(best, prime=None, n=300, temperature=0.8, top_k=None, top_p=None, seed=args.seed))
    return 0


def _load(path):
    from . import io

    ckpt = io.load(path)
    ckpt.model.eval()
    return ckpt


def _sample_text(ckpt, prime, n, temperature, top_k, top_p, seed) -> str:
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
    ids = ckpt.model.generate(prime_ids, n, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    joiner = "" if tokenizer.kind == "char" or not shown else " "
    return shown + joiner + tokenizer.decode(ids)


def cmd_sample(args) -> int:
    from . import set_num_threads

    if args.threads:
        set_num_threads(args.threads)
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        raise ValueError(f"--top-p: got {args.top_p}, expected a number in (0, 1]")
    ckpt = _load(args.checkpoint)
    for k in range(args.num_samples):
        seed = None if args.seed is None else args.seed + k
        text_out = _sample_text(ckpt, args.prime, args.n, args.temperature, args.top_k, args.top_p, seed)
        if args.num_samples > 1:
            print(f"----- sample {k + 1} -----")
        print(text_out)
    return 0


def cmd_eval(args) -> int:
    from . import set_num_threads, text
    from .tasks import LanguageModelTask

    if args.threads:
        set_num_threads(args.threads)
    ckpt = _load(args.checkpoint)
    if ckpt.tokenizer is None:
        raise ValueError(f"checkpoint: {args.checkpoint} holds no tokenizer to read --data with")
    ids = ckpt.tokenizer.encode(text.read_text(args.data, args.encoding))
    seq_len = args.seq_len or ckpt.extra.get("task", {}).get("seq_len", 100)
    task = LanguageModelTask(ids, ids, seq_len, args.batch_size)
    result = task.evaluate(ckpt.model, "val", with_f1=True)
    print(json.dumps({k: result[k] for k in ("loss", "ppl", "bpc", "accuracy", "macro_f1")}))
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
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
