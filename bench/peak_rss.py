"""Run a command and print its peak resident memory (the child's ru_maxrss), for memory comparisons.

python bench/peak_rss.py -- rnnfast train --data ../shared/data/tinyshakespeare.txt --minutes 1
"""

from __future__ import annotations

import resource
import subprocess
import sys


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    code = subprocess.call(argv)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"peak RSS: {peak_kib / 1024:.1f} MiB (exit code {code})", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
