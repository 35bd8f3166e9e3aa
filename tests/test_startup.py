"""Start-up: the command line answers --help and argument errors without importing PyTorch,
torchvision, scikit-learn or matplotlib, and ``import ftcore`` loads them only when used.

Checked through ``sys.modules`` of a fresh interpreter, which is deterministic (times are not:
the benchmark prints those)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "sklearn", "matplotlib")


def modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running ``code``."""
    probe = (code + "\nimport json, sys\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, timeout=120)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["finetune", "--help"], ["continual", "--help"],
                                  ["finetune", "--strategy", "fulll"], ["shifts", "--jobs", "2"],
                                  ["finetune", "--optimizer", "adan"],
                                  ["finetune", "--jobs", "0"], ["--version"]])
def test_the_command_line_parses_without_heavy_imports(argv):
    code = ("import sys\nfrom ftcore.cli import build_parser\n"
            f"try:\n    build_parser().parse_args({argv!r})\nexcept SystemExit:\n    pass")
    loaded = modules_after(code)
    assert "ftcore" in loaded
    assert not loaded & set(HEAVY), f"{argv} imported {sorted(loaded & set(HEAVY))}"


def test_python_m_ftcore_help_answers_without_torch():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ftcore", "--help"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0 and "finetune" in done.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "ftcore" in imported and not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_import_ftcore_is_lazy_and_its_names_still_work():
    assert not modules_after("import ftcore") & set(HEAVY)
    loaded = modules_after("from ftcore import fit, SGD\nassert callable(fit) and SGD")
    assert "torch" in loaded and "sklearn" not in loaded  # scikit-learn only where it is used
    import ftcore

    assert set(ftcore.__all__) <= set(dir(ftcore))
    with pytest.raises(AttributeError, match="no attribute 'fitt'"):
        ftcore.fitt  # noqa: B018


def test_the_light_names_match_the_registries():
    from ftcore import names
    from ftcore.optim import OPTIMIZERS
    from ftcore.pretrained import PretrainConfig
    from ftcore.remedies import REMEDIES
    from ftcore.shifts import SEVERITIES, SHIFTS
    from ftcore.surgery import STRATEGIES
    from ftcore.transfer import TARGETS

    assert names.SHIFT_NAMES == tuple(SHIFTS)
    assert names.REMEDY_NAMES == tuple(REMEDIES)
    assert names.OPTIMIZER_NAMES == tuple(OPTIMIZERS)
    assert names.SEVERITIES == SEVERITIES and names.STRATEGIES == STRATEGIES
    from ftcore.transfer import _check_strategies
    from ftcore.unfreezing import strategy_stages

    _check_strategies(names.FINETUNE_STRATEGIES)  # every name the command line offers runs
    for strategy in names.STAGED_STRATEGIES:
        assert strategy_stages(__import__("ftcore").SmallCNN(), strategy, 10)
    assert names.TARGETS == TARGETS and names.PRETRAIN_EPOCHS == PretrainConfig().epochs


def test_training_with_ftcores_optimizers_never_loads_torchdynamo():
    """TorchDynamo (torch.compile's front end) costs ~2 s and ~100 MB in every process that
    imports it, each grid worker included; training with ftcore's optimizers, a schedule and
    early stopping must not import it (torch.optim's own optimizers do, on their first call)."""
    code = ("import sys, torch\nfrom ftcore.data import ImageSet\n"
            "from ftcore.models import SmallCNN\nfrom ftcore.train import fit\n"
            "data = ImageSet(torch.rand(20, 1, 28, 28), torch.arange(20) % 10, name='tiny',"
            " classes=tuple('0123456789'))\n"
            "for name in ('sgd', 'adam', 'adamw'):\n"
            "    fit(SmallCNN(), data, data, epochs=2, batch_size=8, optimizer=name, patience=1,"
            " lr_schedule='cosine', progress=False)\n"
            "ours = 'torch._dynamo' in sys.modules\n"
            "torch.optim.SGD(SmallCNN().parameters(), lr=0.1).zero_grad()\n"
            "print(ours, 'torch._dynamo' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]  # ours never, torch.optim's at once
