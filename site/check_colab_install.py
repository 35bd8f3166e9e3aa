"""Run the lessons' Colab install command in a fresh virtual environment (a maintainer's check).

Colab cannot be reached from here, so this does the next best thing: it takes the ``%pip install``
line of the first code cell of every lesson (they are all the same; ``tests/test_site_colab.py``
checks that), points its git URL at a local clone of this repository instead of GitHub, runs it in
a new virtual environment with nothing else installed, and then, from outside the repository,
imports the installed ftcore, loads the bundled MNIST subset and checks that
``FTCORE_DOWNLOAD=1`` (which the cell sets on Colab) is accepted. It installs the last commit
(git clones it), not uncommitted changes.

    python site/check_colab_install.py [--repo PATH] [--keep]

Slow (a fresh PyTorch and Jupyter: minutes), so CI does not run it; run it after changing the
package's dependencies or the Colab cell.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GITHUB = "git+https://github.com/ftcore-lessons/ftcore-lessons.git"

CHECK = """
import os, sys
import ftcore
from ftcore.data import load_dataset, sources
where = os.path.dirname(ftcore.__file__)
assert where.startswith(sys.prefix), f"ftcore imported from {where}, not the fresh environment"
train, val, test = load_dataset("mnist")
assert len(train) + len(val) + len(test) == 5000, (len(train), len(val), len(test))
assert tuple(train.images.shape[1:]) == (1, 28, 28), train.images.shape
os.environ["FTCORE_DOWNLOAD"] = "1"
assert sources.download_allowed(False)
print(f"ftcore {ftcore.__version__} from {where}: MNIST subset {len(train)}/{len(val)}/{len(test)}")
"""


def install_command(lesson: Path) -> str:
    """The requirement that the lesson's Colab cell installs, e.g. ``ftcore @ git+https://...``."""
    cells = json.loads(lesson.read_text(encoding="utf-8"))["cells"]
    source = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
    found = re.search(r'%pip install -q "([^"]+)"', source)
    if not found:
        raise SystemExit(f"{lesson}: the first code cell has no `%pip install -q \"...\"` line")
    return found.group(1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the clone to install from")
    parser.add_argument("--keep", action="store_true", help="keep the virtual environment")
    args = parser.parse_args(argv)
    lesson = sorted((args.repo / "lessons").glob("[0-9][0-9]_*.ipynb"))[0]
    requirement = install_command(lesson)
    if GITHUB not in requirement:
        raise SystemExit(f"{lesson}: expected the install from {GITHUB}, got {requirement!r}")
    local = requirement.replace(GITHUB, f"git+file://{args.repo.resolve()}")
    work = Path(tempfile.mkdtemp(prefix="ftcore-colab-"))
    start = time.monotonic()
    try:
        subprocess.run([sys.executable, "-m", "venv", work / "venv"], check=True)
        python = work / "venv" / "bin" / "python"
        # A current pip, as Colab has: the one bundled with Python 3.11.7 (23.2) refuses
        # `name @ git+file:///path` (a URL without a host), though it takes the cell's git+https.
        subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        print(f"== pip install -q {local!r}  (the Colab cell's command, from a local clone)")
        subprocess.run([python, "-m", "pip", "install", "-q", local], check=True)
        env = {"PATH": "/usr/bin:/bin", "FTCORE_DATA": str(work / "data"), "FTCORE_PROGRESS": "0",
               "HOME": str(work)}
        subprocess.run([python, "-c", CHECK], check=True, cwd=work, env=env)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"Colab install check passed in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
