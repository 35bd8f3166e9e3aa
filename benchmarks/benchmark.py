"""Speed and memory of ftcore, measured against plain PyTorch in one run.

    python benchmarks/benchmark.py               # everything (~3 min on 2 CPU cores)
    python benchmarks/benchmark.py --no-lessons  # skip executing the lessons

Prints ratios, not just times: both sides of each comparison run in the same process,
interleaved, and the median of several repeats is kept, so a busy machine slows both alike.
Targets (from the foundation issue) are printed next to each ratio:

* ``fit`` throughput >= 0.9x a plain hand-written PyTorch loop (same model, data, batches);
* ``ftcore.optim.SGD.step`` within 1.5x of ``torch.optim.SGD.step``;
* pre-training: >= 97% held-out test accuracy in <= 30 s; its peak memory;
* every lesson executes in <= 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ftcore.data import load_dataset, make_loader
from ftcore.models import SmallCNN
from ftcore.optim import SGD
from ftcore.train import fit

HERE = Path(__file__).resolve().parent
EPOCHS, BATCH, REPEATS, FIT_REPEATS = 2, 64, 3, 5


def plain_loop(model, loader, epochs: int) -> None:
    """The loop a PyTorch user writes by hand: no history, no checks, no progress bar."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()


def bench_fit(train) -> tuple[float, float]:
    """Images per second of ``fit`` and of the plain loop (same model, same batches),
    interleaved so that a busy machine slows both alike."""
    # Warm up both first: the first optimizer a process builds imports torch._dynamo (~2 s),
    # a one-time import cost that is not throughput.
    fit(SmallCNN(), train, epochs=1, progress=False, device="cpu")
    plain_loop(SmallCNN(), make_loader(train, batch_size=BATCH), 1)
    fit_times, plain_times = [], []
    for i in range(FIT_REPEATS):
        torch.manual_seed(i)
        model = SmallCNN()
        start = time.perf_counter()
        fit(model, train, epochs=EPOCHS, batch_size=BATCH, seed=i, progress=False, device="cpu")
        fit_times.append(time.perf_counter() - start)

        torch.manual_seed(i)
        model = SmallCNN()
        loader = make_loader(train, batch_size=BATCH, seed=i)
        start = time.perf_counter()
        plain_loop(model, loader, EPOCHS)
        plain_times.append(time.perf_counter() - start)
    n = EPOCHS * len(train)
    return n / statistics.median(fit_times), n / statistics.median(plain_times)


def bench_sgd(steps: int = 300) -> tuple[float, float]:
    """Microseconds per ``step()`` on SmallCNN's parameters, momentum and weight decay on."""
    results = {}
    for name, cls in (("ftcore", SGD), ("torch", torch.optim.SGD)):
        model = SmallCNN()
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt = cls(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        opt.step()  # create the momentum buffers outside the timing
        results[name] = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            results[name].append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(results["ftcore"]), statistics.median(results["torch"])


def bench_pretraining() -> tuple[float, float, float]:
    """(seconds, test accuracy, peak MiB) of pre-training in a fresh process."""
    code = ("import time, json, resource; from ftcore.pretrained import pretrain, PretrainConfig;"
            "from ftcore.train import evaluate; from ftcore.data import load_dataset;"
            "test = load_dataset('mnist').test; t = time.perf_counter();"
            "m, h = pretrain(PretrainConfig(), progress=False); s = time.perf_counter() - t;"
            "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024;"
            "print(json.dumps([s, evaluate(m, test)['accuracy'], peak]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={**os.environ, "FTCORE_PROGRESS": "0"}).stdout
    seconds, accuracy, peak = json.loads(out.strip().splitlines()[-1])
    return seconds, accuracy, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="ftcore speed and memory vs plain PyTorch")
    parser.add_argument("--no-lessons", action="store_true", help="skip executing lessons")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU\n")
    train = load_dataset("mnist").train
    failures = []

    def report(label: str, text: str, ok: bool) -> None:
        print(f"{label:<42} {text:<44} {'ok' if ok else 'MISSED'}", flush=True)
        if not ok:
            failures.append(label)

    fit_ips, plain_ips = bench_fit(train)
    report("fit throughput / plain loop", f"{fit_ips / plain_ips:.2f}x  ({fit_ips:,.0f} vs "
           f"{plain_ips:,.0f} images/s; target >= 0.9x)", fit_ips / plain_ips >= 0.9)
    ours, theirs = bench_sgd()
    report("ftcore SGD step / torch.optim.SGD step", f"{ours / theirs:.2f}x  ({ours:.0f} vs "
           f"{theirs:.0f} us/step; target <= 1.5x)", ours / theirs <= 1.5)
    seconds, accuracy, peak = bench_pretraining()
    report("pre-training (bundled MNIST subset)", f"{seconds:.1f} s, test accuracy "
           f"{accuracy:.3f} (target >= 0.97 in <= 30 s)", seconds <= 30 and accuracy >= 0.97)
    report("pre-training peak memory", f"{peak:,.0f} MiB", True)
    if not args.no_lessons:
        sys.path.insert(0, str(HERE))
        from execute_lessons import LESSONS, run_isolated

        for path in sorted(LESSONS.glob("[0-9][0-9]_*.ipynb")):
            lesson_seconds, mib = run_isolated(path, write=False)
            report(f"lesson {path.stem[:38]}", f"{lesson_seconds:.1f} s / 60 s, peak "
                   f"{mib:,.0f} MiB (of Binder's 2,048)", lesson_seconds <= 60 and mib < 1500)
    print("\nall targets met" if not failures else f"\ntargets missed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
