"""The allocator setting: freed memory is reused (no page faults for the next batch), in
run_all's workers too, and it never changes a result.

Each check runs in a fresh interpreter: the setting is a process's, and this test process
must keep glibc's defaults. Page faults (``getrusage``) are counted, not timed, so the checks
are deterministic; the speed itself is the benchmark's."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from ftcore import allocator
from ftcore.parallel import run_all

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not GLIBC, reason="the settings exist on Linux with glibc only")

#: Six 12 MB tensors made and freed 20 times (a forward pass's activations, in miniature); the
#: minor page faults of 20 rounds after 5 rounds of warm-up.
FAULTS = """
import resource, torch
def rounds(n=20):
    for _ in range(n):
        tensors = [torch.ones(3_000_000) for _ in range(6)]
        del tensors
rounds(5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
"""


def in_fresh_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter on one thread; it prints one JSON object last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_glibc
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    # The contrast: glibc's starting setting, every block over 128 KiB mapped anew and handed
    # back when freed (its default then adapts to the process's history, so its count varies
    # from 0 to 350,000 here: no fixed baseline).
    returned = in_fresh_python(
        f"import ctypes\nctypes.CDLL(None).mallopt({allocator.M_MMAP_THRESHOLD}, 128 * 1024)\n"
        + FAULTS
        + "import json; print(json.dumps({'faults': faults}))")
    reused = in_fresh_python("from ftcore.allocator import reuse_freed_memory\n"
                             "took = reuse_freed_memory()\n" + FAULTS +
                             "import json; print(json.dumps({'faults': faults, 'took': took}))")
    assert reused["took"] is True
    assert returned["faults"] > 100_000, returned  # 72 MB, 18,000 pages, every round
    assert reused["faults"] < 1_000, reused        # reused: no new page after the warm-up


def _faults_in_this_process() -> int:
    namespace: dict = {}
    exec(FAULTS, namespace)
    return namespace["faults"]


@needs_glibc
def test_run_all_workers_reuse_freed_memory():
    # the same rounds in two worker processes: glibc's default faults in most processes (up to
    # 350,000 here, but not in every one: it adapts), reused memory in none
    faults = run_all(_faults_in_this_process, [{}, {}], n_jobs=2)
    assert all(count < 1_000 for count in faults), faults


def test_the_same_training_gives_the_same_weights_with_either_setting():
    # where memory comes from changes no result: the same run, bit for bit (same machine)
    code = ("import sys, json, torch\n"
            "from ftcore.allocator import reuse_freed_memory\n"
            "if sys.argv[-1] == 'reuse': reuse_freed_memory()\n"
            "from ftcore.data import ImageSet\n"
            "from ftcore.models import SmallCNN\n"
            "from ftcore.train import fit\n"
            "torch.set_num_threads(1)\n"
            "g = torch.Generator().manual_seed(0)\n"
            "train = ImageSet(torch.rand(400, 1, 28, 28, generator=g), torch.arange(400) % 10,\n"
            "                 tuple('0123456789'), 'random')\n"
            "torch.manual_seed(0)\n"
            "model = SmallCNN()\n"
            "fit(model, train, epochs=2, batch_size=50, seed=0, progress=False, device='cpu')\n"
            "print(json.dumps([p.double().sum().item() for p in model.parameters()]))")
    weights = []
    for setting in ("default", "reuse"):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run([sys.executable, "-c", code, setting], capture_output=True,
                              text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        weights.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert weights[0] == weights[1]


def test_without_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(allocator.ctypes, "CDLL", None)  # calling it would fail the test
    assert allocator.reuse_freed_memory() is False
