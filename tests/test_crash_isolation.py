"""The property suite again, in a child process: a crash inside rnnfast (segfault, abort, a sanitizer halting the
process) then shows up as one failed test with the child's last output, instead of killing this pytest run.

The child runs the same derandomized cases at a reduced budget (``RNNFAST_PROPERTY_SCALE``) to keep the suite
quick; the direct run in tests/test_properties.py covers the full budget.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD_SCALE = "0.5"


def run_pytest_in_child(test_path: Path, *args: str, env: dict | None = None) -> tuple[int, str]:
    """Exit status and combined output of ``python -m pytest test_path``, run from tests/: `python -m` puts its
    working directory first on sys.path, and the repository root would shadow the installed package."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_path), "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO / "tests",
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    return result.returncode, result.stdout + result.stderr


def crash_report(status: int, output: str) -> str | None:
    """A description of how the child died, or None if it exited normally."""
    if status >= 0:
        return None
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = f"signal {-status}"
    return f"the child was killed by {name}; its last output:\n{output[-4000:]}"


def test_property_suite_passes_in_a_child_process():
    status, output = run_pytest_in_child(
        REPO / "tests" / "test_properties.py", "-s", env={"RNNFAST_PROPERTY_SCALE": CHILD_SCALE}
    )
    crash = crash_report(status, output)
    assert crash is None, crash
    assert status == 0, output[-4000:]
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) >= 10, output[-2000:]
    tried = re.search(r"property cases tried: (\d+)", output)
    assert tried and int(tried.group(1)) >= 1000, output[-2000:]


def test_a_crashing_test_is_reported_not_fatal(tmp_path):
    """The harness itself: a test that aborts the interpreter is seen as a crash with the signal's name."""
    crashing = tmp_path / "test_crash.py"
    crashing.write_text("import os\n\ndef test_abort():\n    os.abort()\n")
    status, output = run_pytest_in_child(crashing, "-p", "no:faulthandler")
    report = crash_report(status, output)
    assert report is not None and "SIGABRT" in report
