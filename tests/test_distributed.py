"""Data-parallel training over MPI (rnnfast.distributed): ``mpiexec -n 2`` and ``-n 3`` give the weights of one
process with the same global batch, two runs with the same N give the same bits, checkpoints resume on another
number of ranks, and a failing, killed or interrupted rank ends the whole job in bounded time.

The MPI tests need mpi4py and an mpiexec (``pip install "rnnfast[mpi]"``): without them they skip, unless
RNNFAST_REQUIRE_MPI=1 makes them fail. Models are tiny and each rank runs one thread, so that -n 3 on two cores
stays quick."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import rnnfast as rf
from rnnfast import distributed

ROOT = Path(__file__).resolve().parents[1]
FAULT_LIMIT_S = 30  # the bound on how long a failing job may take to end
RNNFAST = [sys.executable, "-m", "rnnfast"]


def words_text(n_words: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    vocab = "the cat sat on a mat and dog ran to it but we saw his big red hat".split()
    lines = [" ".join(rng.choice(vocab, rng.integers(4, 12))) for _ in range(n_words // 8)]
    return "\n".join(lines) + "\n"


def env_one_thread() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def launch(mpiexec, ranks: int, args: list[str], cwd, timeout: float = 90) -> subprocess.CompletedProcess:
    command = [*([mpiexec, "-n", str(ranks)] if ranks > 1 else []), *args]
    return subprocess.run(command, cwd=cwd, env=env_one_thread(), capture_output=True, text=True, timeout=timeout)


def weights(path) -> dict:
    return rf.load(path).model.state_dict()


def assert_same_training(got: dict, expected: dict) -> None:
    """Per tensor, the distance relative to the tensor's norm is at most 1e-6: float32 sums taken in another
    order (a batch split among ranks) differ in the last bits, and Adam carries such differences on."""
    assert got.keys() == expected.keys()
    for name in expected:
        distance = np.linalg.norm(got[name] - expected[name]) / np.linalg.norm(expected[name])
        assert distance <= 1e-6, (name, distance)


def assert_bitwise(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        assert np.array_equal(got[name], expected[name]), name


# ----- without MPI ------------------------------------------------------------------------------------------
def test_import_and_single_process_never_load_mpi():
    code = (
        "import sys, numpy as np, rnnfast as rf\n"
        "m = rf.LanguageModel(5, 4, 4)\n"
        "m.fit(np.arange(200) % 5, epochs=1, batch_size=4, seq_len=5, progress=False)\n"
        "rf.distributed.allreduce_gradients(m)\n"
        "print(rf.distributed.is_initialized(), rf.distributed.rank(), rf.distributed.size(), 'mpi4py' in sys.modules)"
    )
    env = {k: v for k, v in env_one_thread().items() if k not in distributed.SIZE_VARIABLES}
    env["PMI_SIZE"] = "1"  # mpiexec -n 1 is one process too
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0", "1", "False"]


def test_a_launch_of_several_ranks_without_mpi4py_says_what_to_install():
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"  # as if it were not installed
        "import rnnfast as rf\n"
        "rf.distributed.size()"
    )
    env = {**env_one_thread(), "PMI_SIZE": "2", "PMI_RANK": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DistributedError" in result.stderr and 'pip install "rnnfast[mpi]"' in result.stderr


def test_launched_size_reads_each_launcher():
    assert distributed.launched_size({}) == 1
    assert distributed.launched_size({"PMI_SIZE": "4"}) == 4
    assert distributed.launched_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert distributed.launched_size({"MV2_COMM_WORLD_SIZE": "2"}) == 2


@pytest.mark.parametrize("count", [0, 1, 5, 7, 64])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_shares_cover_every_item_once_in_order_and_differ_by_at_most_one(count, parts):
    shares = [distributed.share(count, part, parts) for part in range(parts)]
    assert list(range(count)) == [i for s in shares for i in range(count)[s]]
    sizes = [s.stop - s.start for s in shares]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_each_rank_reads_only_its_own_streams_of_a_token_file(tmp_path):
    from rnnfast.prepare import open_tokens, prepare
    from rnnfast.tasks.lm import LanguageModelTask

    (tmp_path / "text.txt").write_text(words_text(800, 1))
    prepare(tmp_path / "text.txt", tmp_path / "tokens.bin")
    ids, _ = open_tokens(tmp_path / "tokens.bin")
    task = LanguageModelTask(ids, None, seq_len=8, batch_size=5)
    batch = next(iter(task.train_batches(0, 0)))
    parts = [task.shard(batch, rank, 2) for rank in range(2)]
    # Still views of the memory map (nothing copied, nothing else read), of streams 0-2 and 3-4.
    assert all(np.shares_memory(part, ids) for part in parts)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), batch)
    assert [part.shape[1] for part in parts] == [3, 2]
    with pytest.raises(ValueError, match="batch_size: got 5 streams for 6 ranks"):
        task.shard(batch, 0, 6)


# ----- rnnfast train under mpiexec --------------------------------------------------------------------------
TRAIN = [
    "train",
    "--data",
    "text.txt",
    "--batch-size",
    "7",  # shares of 4 and 3 streams (2 ranks), 3, 2 and 2 (3 ranks): the loop weighs them by size
    "--seq-len",
    "16",
    "--embed",
    "8",
    "--hidden",
    "12",
    "--layers",
    "2",
    "--lr-decay",
    "0.8",
    "--eval-every",
    "15",
    "--no-progress",
    "--threads",
    "1",
]


@pytest.fixture
def text_dir(tmp_path):
    (tmp_path / "text.txt").write_text(words_text(1500, 0))
    return tmp_path


def test_lm_on_2_and_3_ranks_trains_the_weights_of_one_process(mpiexec, text_dir):
    runs = {}
    for name, ranks in (("one", 1), ("two", 2), ("two_again", 2), ("three", 3)):
        result = launch(mpiexec, ranks, [*RNNFAST, *TRAIN, "--epochs", "2", "--out", name], text_dir)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = result
    one = weights(text_dir / "one" / "last.rnnfast")
    assert_same_training(weights(text_dir / "two" / "last.rnnfast"), one)
    assert_same_training(weights(text_dir / "three" / "last.rnnfast"), one)
    assert_bitwise(weights(text_dir / "two_again" / "last.rnnfast"), weights(text_dir / "two" / "last.rnnfast"))
    records = {n: (text_dir / n / "metrics.jsonl").read_text().splitlines() for n in runs}
    steps = lambda lines: [json.loads(line)["step"] for line in lines]  # noqa: E731
    assert steps(records["two"]) == steps(records["three"]) == steps(records["one"])
    for name in ("two", "three"):  # rank 0 alone logs: one line per evaluation
        logged = re.findall(r"^step \d+", runs[name].stderr, re.M)
        assert len(logged) == len(records[name]), runs[name].stderr
        assert runs[name].stderr.count("parameters ->") == 1
        val = [json.loads(line)["val_loss"] for line in records[name]]
        assert val == pytest.approx([json.loads(line)["val_loss"] for line in records["one"]], rel=1e-5)


# rnnfast train, with a SIGTERM that rank 0 sends itself after a given step: a stop at a known step.
STOPPING_TRAIN = """
import os, signal, sys
import rnnfast as rf
from rnnfast import cli, train

stop_after, steps = int(sys.argv[1]), []
report = train._Reporter.step


def report_and_stop(self, loss, tokens_per_s):
    steps.append(loss)
    if len(steps) == stop_after and rf.distributed.rank() == 0:
        os.kill(os.getpid(), signal.SIGTERM)
    report(self, loss, tokens_per_s)


train._Reporter.step = report_and_stop
sys.exit(cli.main(sys.argv[2:]))
"""


def test_eval_sample_and_predict_under_mpiexec_answer_once_what_one_process_answers(mpiexec, text_dir):
    """Rank 0 alone prints: one JSON line (evaluation split among the ranks, then reduced), the samples in order
    (shared among the ranks, sample k seeded with seed + k) and the predictions."""
    rng = np.random.default_rng(3)
    words = "good bad film plot fine dull great poor".split()
    lines = [f"{'pos' if i % 2 else 'neg'}\t{' '.join(rng.choice(words, 5))}" for i in range(40)]
    (text_dir / "labels.tsv").write_text("\n".join(lines) + "\n")
    for args in (
        [*TRAIN, "--epochs", "1", "--out", "lm"],
        ["train", "--task", "classify", "--data", "labels.tsv", "--epochs", "1", "--hidden", "8", "--embed", "4"]
        + ["--no-progress", "--threads", "1", "--out", "classify"],
    ):
        trained = launch(mpiexec, 1, [*RNNFAST, *args], text_dir)
        assert trained.returncode == 0, trained.stderr[-3000:]
    commands = {
        "eval": ["eval", "lm/model.rnnfast", "--data", "text.txt", "--threads", "1"],
        "sample": ["sample", "lm/model.rnnfast", "-n", "40", "--num-samples", "3", "--seed", "4", "--threads", "1"],
        "predict": ["predict", "classify/model.rnnfast", "--data", "labels.tsv", "--threads", "1"],
    }
    for name, args in commands.items():
        one, two = (launch(mpiexec, ranks, [*RNNFAST, *args], text_dir) for ranks in (1, 2))
        assert one.returncode == two.returncode == 0, (name, two.stderr[-3000:])
        if name == "eval":
            assert len(two.stdout.splitlines()) == 1
            got, want = json.loads(two.stdout), json.loads(one.stdout)
            assert got.keys() == want.keys()
            assert got["loss"] == pytest.approx(want["loss"], rel=1e-6)
            assert got["accuracy"] == want["accuracy"]
        else:
            assert two.stdout == one.stdout, name
    assert one.stdout.count("\n") == len(lines) and set(one.stdout.split()) == {"pos", "neg"}


def test_a_checkpoint_of_2_ranks_resumes_on_1_and_3(mpiexec, text_dir):
    """Stopped mid-epoch on 2 ranks (the carried state of every stream saved), then finished on 1 and on 3
    ranks: both end where an uninterrupted single process ends, at the same step with the same learning rate."""
    epochs = ["--epochs", "2"]
    whole = launch(mpiexec, 1, [*RNNFAST, *TRAIN, *epochs, "--out", "whole"], text_dir)
    assert whole.returncode == 0, whole.stderr[-3000:]
    (text_dir / "stopping.py").write_text(STOPPING_TRAIN)
    cut = launch(mpiexec, 2, [sys.executable, "stopping.py", "30", *TRAIN, *epochs, "--out", "cut"], text_dir)
    assert cut.returncode == 130, cut.stderr[-3000:]
    saved = rf.load(text_dir / "cut" / "last.rnnfast")
    assert (saved.extra["step"], saved.extra["epoch"]) == (31, 0)  # the flag is read at the next step
    assert saved.arrays["h"].shape == saved.arrays["c"].shape == (2, 7, 12)  # every stream's state
    total = json.loads((text_dir / "whole" / "metrics.jsonl").read_text().splitlines()[-1])
    for ranks in (1, 3):
        out = f"cut{ranks}"
        shutil.copytree(text_dir / "cut", text_dir / out)
        result = launch(mpiexec, ranks, [*RNNFAST, *TRAIN, *epochs, "--out", out, "--resume"], text_dir)
        assert result.returncode == 0, result.stderr[-3000:]
        assert_same_training(weights(text_dir / out / "last.rnnfast"), weights(text_dir / "whole" / "last.rnnfast"))
        last = json.loads((text_dir / out / "metrics.jsonl").read_text().splitlines()[-1])
        assert (last["step"], last["epoch"], last["lr"]) == (total["step"], total["epoch"], pytest.approx(total["lr"]))


# ----- fit and a hand-written loop under mpiexec -----------------------------------------------------------
FIT_SCRIPT = """
import json, sys
import numpy as np
import rnnfast as rf

rng = np.random.default_rng(0)
lengths = rng.integers(3, 12, 90)
x = [rng.integers(1, 30, n) for n in lengths]
labels = [int(s[0] % 3) for s in x]
tags = [s % 4 for s in x]
series = np.sin(np.arange(400) / 7.0) + 0.1 * rng.standard_normal(400)
models = {
    "classify": rf.SequenceClassifier(3, vocab_size=30, embed_dim=8, hidden_size=12, pooling="mean", seed=1),
    "tag": rf.SequenceTagger(4, vocab_size=30, embed_dim=8, hidden_size=12, crf=True, seed=2),
    "forecast": rf.Forecaster(1, hidden_size=12, horizon=3, seed=3),
}
data = {"classify": (x, labels), "tag": (x, tags), "forecast": (series, None)}
options = {"forecast": {"window": 12}}
out = {}
for name, model in models.items():
    records = model.fit(*data[name], validation_split=0.2, epochs=3, batch_size=13, seed=5, progress=False,
                        **options.get(name, {}))
    out.update({f"{name}.{k}": v for k, v in model.state_dict().items()})
    out[f"{name}.records"] = np.array(json.dumps(records))
if rf.distributed.rank() == 0:
    np.savez(sys.argv[1], **out)
"""


def test_fit_of_every_task_on_2_and_3_ranks_trains_the_weights_of_one_process(mpiexec, tmp_path):
    script = tmp_path / "fit_tasks.py"
    script.write_text(FIT_SCRIPT)
    for ranks in (1, 2, 3):
        result = launch(mpiexec, ranks, [sys.executable, str(script), f"w{ranks}.npz"], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    one = np.load(tmp_path / "w1.npz")
    for ranks in (2, 3):
        got = np.load(tmp_path / f"w{ranks}.npz")
        params = [k for k in one.files if not k.endswith(".records")]
        assert_same_training({k: got[k] for k in params}, {k: one[k] for k in params})
        for task in ("classify", "tag", "forecast"):  # evaluation split among the ranks, then reduced
            mine, single = (json.loads(str(w[f"{task}.records"])) for w in (got, one))
            assert [r["step"] for r in mine] == [r["step"] for r in single]
            assert [r["val_loss"] for r in mine] == pytest.approx([r["val_loss"] for r in single], rel=1e-5)


def test_fit_starts_every_rank_from_rank_0s_weights(mpiexec, tmp_path):
    """Models built without a seed differ on each rank; training must not (the weight checksum would stop it)."""
    code = (
        "import numpy as np, rnnfast as rf\n"
        "m = rf.LanguageModel(20, 8, 16, 1)\n"
        "m.fit(np.arange(3000) % 20, validation_split=0.1, epochs=2, batch_size=4, seq_len=10, progress=False)\n"
    )
    result = launch(mpiexec, 2, [sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_ranks_on_one_machine_share_its_cores(mpiexec, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    code = "import rnnfast as rf; print(rf.get_num_threads(), rf.build_info()['threads_reason'])"
    result = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    from rnnfast._threads import default_threads

    # What this machine gives each of 2 ranks (its cores, or its container's quota, halved).
    expected = default_threads({"MPI_LOCALNRANKS": "2"})
    assert result.stdout.splitlines() == [f"{expected[0]} {expected[1]}"] * 2


def readme_loop() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    return next(b for b in blocks if "allreduce_gradients" in b)


def test_the_readme_loop_with_its_one_added_call_matches_one_process(mpiexec, tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    script = tmp_path / "loop.py"
    script.write_text(readme_loop())
    for ranks, where in ((1, "one"), (2, "two")):
        result = launch(mpiexec, ranks, [sys.executable, str(script)], tmp_path / where)
        assert result.returncode == 0, result.stderr[-3000:]
    assert_same_training(weights(tmp_path / "two" / "model.rnnfast"), weights(tmp_path / "one" / "model.rnnfast"))


# ----- faults -----------------------------------------------------------------------------------------------
FAULT_SCRIPT = """
import os, sys
import numpy as np
import rnnfast as rf

mode = sys.argv[1]
rank = rf.distributed.rank()
model = rf.LanguageModel(20, 8, 16, 1, seed=0)


def callback(record):
    if mode == "raise" and rank == 1:
        raise RuntimeError("the disk is full")
    if mode == "drift" and rank == 1:
        model.parameters().data[0] += 1e-3


open(f"ready.{rank}", "w").write(str(os.getpid()))
ids = np.random.default_rng(0).integers(0, 20, 20000)
model.fit(ids, validation_split=0.1, epochs=1000, batch_size=8, seq_len=20, callbacks=callback, progress=False)
"""


def run_fault(mpiexec, tmp_path, mode: str, act=None) -> tuple[subprocess.CompletedProcess, float]:
    script = tmp_path / "fault.py"
    script.write_text(textwrap.dedent(FAULT_SCRIPT))
    start = time.monotonic()
    proc = subprocess.Popen(
        [mpiexec, "-n", "2", sys.executable, str(script), mode],
        cwd=tmp_path,
        env=env_one_thread(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if act is not None:
        while not (tmp_path / "ready.1").exists() and time.monotonic() - start < FAULT_LIMIT_S:
            time.sleep(0.05)
        time.sleep(0.5)  # into training
        act(int((tmp_path / "ready.1").read_text()))
        start = time.monotonic()
    try:
        stdout, stderr = proc.communicate(timeout=FAULT_LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"mpiexec still ran {FAULT_LIMIT_S} s after the fault")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), time.monotonic() - start


def test_an_exception_on_one_rank_ends_the_job_naming_the_rank(mpiexec, tmp_path):
    result, seconds = run_fault(mpiexec, tmp_path, "raise")
    assert result.returncode != 0
    assert "rnnfast: rank 1 of 2: RuntimeError: the disk is full" in result.stderr.splitlines()
    assert seconds < FAULT_LIMIT_S


def test_a_killed_rank_ends_the_job(mpiexec, tmp_path):
    result, seconds = run_fault(mpiexec, tmp_path, "none", act=lambda pid: os.kill(pid, signal.SIGKILL))
    assert result.returncode != 0
    assert seconds < FAULT_LIMIT_S


def test_ranks_whose_weights_drift_apart_are_stopped_at_the_next_evaluation(mpiexec, tmp_path):
    result, seconds = run_fault(mpiexec, tmp_path, "drift")
    assert result.returncode != 0
    assert "weights of rank(s) 1 differ from rank 0's" in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_mpiexec_saves_once_and_every_rank_exits(mpiexec, text_dir, sig):
    proc = subprocess.Popen(
        [mpiexec, "-n", "2", *RNNFAST, *TRAIN, "--epochs", "1000", "--out", "run"],
        cwd=text_dir,
        env=env_one_thread(),
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = text_dir / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while not (metrics.exists() and metrics.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=FAULT_LIMIT_S)
    assert proc.returncode == 130, stderr[-3000:]
    said = re.findall(r"interrupted at step (\d+): saved", stderr)
    assert len(said) == 1, stderr[-3000:]
    assert rf.load(text_dir / "run" / "last.rnnfast").extra["step"] == int(said[0])
