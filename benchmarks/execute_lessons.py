"""Execute lessons top to bottom, in place, the way they are committed.

    python benchmarks/execute_lessons.py                 # every lessons/NN_*.ipynb
    python benchmarks/execute_lessons.py lessons/02_*.ipynb
    python benchmarks/execute_lessons.py --check         # run, report, but do not write

Progress bars are switched off (``FTCORE_PROGRESS=0``) so the stored outputs hold no widget
state. Each notebook runs in its own kernel; the script prints its time (from the kernel's
start to its shutdown, as a student's "Run All" plus the kernel's start) and the peak memory of
the kernel and of the worker processes it starts (Linux's /proc), and fails if a lesson raises
or takes longer than ``--limit`` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LESSONS = Path(__file__).resolve().parents[1] / "lessons"


def execute(path: Path, write: bool = True, timeout: int = 600) -> float:
    """Run one notebook in a fresh kernel (started from this process), optionally writing it
    back. Returns the seconds from starting the kernel to its shutdown after the last cell:
    what running the notebook costs, without this script's own start (Python, nbclient)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    if write:
        nbformat.write(nb, path)
    return seconds


def run_isolated(path: Path, write: bool) -> tuple[float, float]:
    """Execute ``path`` in a child process; return (seconds, peak memory of the lesson, MiB).

    The seconds are :func:`execute`'s: from the kernel's start to its shutdown.

    The memory is the peak, sampled every 0.2 s (at each new high of their anonymous memory),
    of the summed proportional set size (PSS: shared pages split among the processes sharing
    them) of the kernel and every process it starts, such as a lesson's ``JOBS`` worker
    processes: what the lesson costs a machine, not only its kernel (a kernel's own peak RSS
    would miss the workers).
    """
    env = {**os.environ, "FTCORE_PROGRESS": "0", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from execute_lessons import execute; from pathlib import Path; "
            "s = execute(Path(sys.argv[2]), write=sys.argv[3] == '1'); "
            "Path(sys.argv[4]).write_text(repr(s))")
    timing = tempfile.NamedTemporaryFile(suffix=".seconds", delete=False)
    timing.close()
    child = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), str(path),
                              "1" if write else "0", timing.name], env=env)
    peak = top_anon = 0.0
    try:
        while child.poll() is None:
            # PSS costs a walk of each process's page tables (~25 ms per GB, on the cores the
            # lesson runs on), so it is read only when the processes' anonymous memory, a
            # counter that is free to read, reaches a new high: that is where the peak is
            processes = _descendants(child.pid)
            anon = sum(_anon_mib(pid) for pid in processes)
            if anon > top_anon * 1.01:
                top_anon = anon
                peak = max(peak, sum(_pss_mib(pid) for pid in processes))
            time.sleep(0.2)
    finally:  # stopped early (an error, Ctrl-C): leave no kernel or worker running
        if child.poll() is None:
            for pid in [*_descendants(child.pid), child.pid]:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            child.wait()
        seconds = Path(timing.name).read_text()
        os.unlink(timing.name)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return float(seconds), peak


def _descendants(root: int) -> list[int]:
    """The processes below ``root`` (its children, theirs, ...), from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:  # field 4 of /proc/PID/stat, after the ")" that ends the command's name
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text()
                                          .rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass  # the process ended while we looked
    found, todo = [], [root]
    while todo:
        above = todo.pop()
        children = [pid for pid, parent in parents.items() if parent == above]
        found += children
        todo += children
    return found


def _anon_mib(pid: int) -> float:
    """Resident anonymous memory of ``pid`` (``RssAnon`` in /proc/PID/status: no page walk)."""
    return _proc_mib(f"/proc/{pid}/status", "RssAnon:")


def _pss_mib(pid: int) -> float:
    return _proc_mib(f"/proc/{pid}/smaps_rollup", "Pss:")


def _proc_mib(path: str, field: str) -> float:
    """The kB figure of ``field`` in the /proc file ``path``, in MiB (0 if the process ended)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="do not write outputs back")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds allowed per lesson")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill`: clean up as Ctrl-C does
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
