"""Check the versions pyproject.toml declares: install ftcore into throwaway venvs, run the tests.

A maintainer's tool, run by hand before changing a dependency floor (it downloads PyTorch, so it
is not part of CI). Each SPEC is a Python version and, after a colon, pip requirements to pin:

    python benchmarks/check_versions.py \\
        "3.11: torch==2.2.0 torchvision==0.17.0 numpy==1.24.4" \\
        "3.10: torch torchvision" "3.13: torch torchvision"

For each spec it creates a venv under --venvs (default: a temporary folder), installs
``ftcore[dev]`` together with the pins (one pip resolve, so the pins win or the install fails),
runs the unit tests (``pytest tests``) and prints one row of a matrix: Python, torch,
torchvision, numpy as installed, and the result. Interpreters are found on PATH
(``python3.11``) or in ~/.pyenv/versions (tried first). Declare in pyproject.toml only what passed.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTED = ("torch", "torchvision", "numpy")


def find_python(version: str) -> str:
    """The interpreter for ``version`` ('3.11'): the newest in ~/.pyenv/versions, else on PATH."""
    found = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")))
    candidates = found[::-1] + [shutil.which(f"python{version}") or ""]
    for python in filter(None, candidates):
        # a pyenv shim on PATH exists but fails when that version is not selected: try it
        if subprocess.run([python, "--version"], capture_output=True).returncode == 0:
            return python
    raise SystemExit(
        f"error: no Python {version} found (looked in ~/.pyenv/versions and for "
        f"python{version} on PATH). Install it, e.g. `pyenv install {version}`."
    )


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """'3.11: torch==2.2.0 numpy==1.24.4' -> ('3.11', ['torch==2.2.0', 'numpy==1.24.4'])."""
    version, _, pins = spec.partition(":")
    version = version.strip()
    if not version.replace(".", "").isdigit() or version.count(".") != 1:
        raise SystemExit(
            f"error: spec {spec!r} does not start with a Python version such as '3.11'. "
            "Write it as 'VERSION: REQUIREMENT ...', e.g. '3.11: torch==2.2.0'."
        )
    return version, pins.split()


def run(cmd: list[str], log, timeout: float, env=None) -> int:
    """Run ``cmd``, appending its output to ``log``; the exit status (124 on a timeout)."""
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    try:
        return subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=ROOT
        ).returncode
    except subprocess.TimeoutExpired:
        log.write(f"\n(timed out after {timeout:.0f} s)\n")
        return 124


def installed_versions(python: str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m\n"
        f"for n in {REPORTED!r}:\n"
        "    try: print(n, m.version(n))\n"
        "    except m.PackageNotFoundError: print(n, '-')\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def pytest_summary(log_path: Path) -> str:
    """The last line of pytest's output ('120 passed in 80.1s'), or '' when there is none."""
    lines = [ln.strip("= \n") for ln in log_path.read_text(errors="replace").splitlines()]
    hits = [ln for ln in lines if " passed" in ln or " failed" in ln or " error" in ln]
    return hits[-1] if hits else ""


def check(spec: str, venvs: Path, args) -> dict:
    version, pins = parse_spec(spec)
    python = find_python(version)
    name = "py" + version + "-" + ("-".join(p.replace("==", "") for p in pins) or "latest")
    venv = venvs / name
    log_path = venvs / f"{name}.log"
    row = {"spec": spec, "python": version, "log": str(log_path)}
    started = time.time()
    with open(log_path, "w") as log:
        vpy = str(venv / "bin" / "python")
        reuse = args.reuse and Path(vpy).exists()
        if venv.exists() and not reuse:
            shutil.rmtree(venv)
        status = 0 if reuse else run([python, "-m", "venv", str(venv)], log, 300)
        if status == 0 and not reuse:
            run([vpy, "-m", "pip", "install", "-q", "--upgrade", "pip"], log, 600)
            install = [vpy, "-m", "pip", "install", "-q", f"{ROOT}[dev]", *pins]
            status = run(install, log, args.install_timeout)
        if status != 0:
            row.update(installed_versions(vpy) if Path(vpy).exists() else {})
            row["result"] = "install failed" if status != 124 else "install timed out"
            return row
        row.update(installed_versions(vpy))
        row["python"] = subprocess.run(
            [vpy, "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True,
        ).stdout.strip()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FTCORE_TEST_THREADS": str(args.threads)}
        # test paths among --pytest-args replace the whole suite (e.g. tests/test_train.py)
        paths = [a for a in args.pytest_args if a.startswith("tests")] or ["tests"]
        options = [a for a in args.pytest_args if not a.startswith("tests")]
        status = run([vpy, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", *options],
                     log, args.test_timeout, env=env)
    summary = pytest_summary(log_path)
    row["result"] = ("pass: " if status == 0 else "FAIL: ") + (summary or f"exit {status}")
    row["minutes"] = f"{(time.time() - started) / 60:.0f}"
    if not args.keep:
        shutil.rmtree(venv, ignore_errors=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Install ftcore with pinned versions in throwaway venvs and run its tests.",
        epilog='example: %(prog)s "3.11: torch==2.2.0 torchvision==0.17.0 numpy==1.24.4"',
    )
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="'PYTHON: REQUIREMENT ...'")
    parser.add_argument("--venvs", type=Path, default=None,
                        help="folder for the venvs and logs (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the venvs afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a kept venv of the same spec (no install; implies --keep)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the tests")
    parser.add_argument("--install-timeout", type=float, default=3600, help="seconds")
    parser.add_argument("--test-timeout", type=float, default=3600, help="seconds")
    parser.add_argument("--pytest-args", nargs=argparse.REMAINDER, default=[],
                        help="passed on to pytest (put last), e.g. --pytest-args -x -k train")
    args = parser.parse_args(argv)
    args.keep = args.keep or args.reuse
    for spec in args.specs:
        parse_spec(spec)  # every spec checked before the first (slow) install
    venvs = args.venvs or Path(tempfile.mkdtemp(prefix="ftcore-versions-"))
    venvs.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.specs:
        print(f"checking {spec!r} (log in {venvs})", flush=True)
        rows.append(check(spec, venvs, args))
        print(f"  -> {rows[-1]['result']}", flush=True)
    print("\n| python | torch | torchvision | numpy | result |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = [r.get("python", "?")] + [r.get(n, "-") for n in REPORTED] + [r["result"]]
        print("| " + " | ".join(cells) + " |")
    return 0 if all(r["result"].startswith("pass") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
