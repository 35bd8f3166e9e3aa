"""Execute lessons top to bottom, in place, the way they are committed.

    python benchmarks/execute_lessons.py                 # every lessons/NN_*.ipynb
    python benchmarks/execute_lessons.py lessons/02_*.ipynb
    python benchmarks/execute_lessons.py --check         # run, report, but do not write

Progress bars are switched off (``FTCORE_PROGRESS=0``) so the stored outputs hold no widget
state. Each notebook runs in its own kernel; the script prints its wall time and the peak
memory of its kernel, and fails if a lesson raises or takes longer than ``--limit`` seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

LESSONS = Path(__file__).resolve().parents[1] / "lessons"


def execute(path: Path, write: bool = True, timeout: int = 600) -> None:
    """Run one notebook in a fresh kernel (this process), optionally writing it back."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    if write:
        nbformat.write(nb, path)


def run_isolated(path: Path, write: bool) -> tuple[float, float]:
    """Execute ``path`` in a child process; return (seconds, peak memory of its kernel, MiB)."""
    env = {**os.environ, "FTCORE_PROGRESS": "0", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    # The child runs the kernel as its own child, so its RUSAGE_CHILDREN is the kernel's peak.
    code = ("import sys, resource; sys.path.insert(0, sys.argv[1]); "
            "from execute_lessons import execute; from pathlib import Path; "
            "execute(Path(sys.argv[2]), write=sys.argv[3] == '1'); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(path),
                           "1" if write else "0"], check=True, env=env, stdout=subprocess.PIPE,
                          text=True)
    seconds = time.perf_counter() - start
    return seconds, int(done.stdout.split()[-1]) / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="do not write outputs back")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds allowed per lesson")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    slow = []
    for path in notebooks:
        seconds, mib = run_isolated(path.resolve(), write=not args.check)
        print(f"{path.name:<55} {seconds:6.1f} s   peak memory {mib:7.0f} MiB", flush=True)
        if seconds > args.limit:
            slow.append(path.name)
    if slow:
        print(f"over the {args.limit:.0f} s limit: {', '.join(slow)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
