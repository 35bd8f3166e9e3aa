"""``python -m ftcore``, end to end on the bundled data at tiny sizes: each command's table and
figure, every ``--help``, and argparse-style errors (exit status 2, no traceback)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import nbformat
import pytest
import torch
from matplotlib.image import imread

import ftcore.exercises.edition
from ftcore.cli import COMMANDS, FINETUNE_ADAM_LR, FINETUNE_LR, main, seed_list
from ftcore.data import load_dataset
from ftcore.exercises import Exercise
from ftcore.pretrained import PretrainConfig, pretrained_cnn
from ftcore.shifts import evaluate_shifts
from ftcore.surgery import STRATEGIES
from ftcore.transfer import train_and_score

TINY = ("--pretrain-epochs", "1")  # start from the 1-epoch model the session fixture caches
CUDA = torch.cuda.is_available()


def run(*argv) -> tuple[int, str, str]:
    """``main(argv)`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exit:
            status = exit.code
    return status, out.getvalue(), err.getvalue()


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the table whose header line starts with ``header`` (split on 2+ spaces)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        if not set(line) <= {"-", " "}:
            rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(path).shape
    assert height > 100 and width > 100


@pytest.fixture(scope="session")
def cli_data(tmp_path_factory, repo_data, mnist) -> tuple[Path, str]:
    """A data root with the subset and UCI caches and a 1-epoch model cached by
    ``ftcore pretrain --epochs 1`` (run once per session; its output is returned too)."""
    root = tmp_path_factory.mktemp("cli-data")
    (root / "cache").mkdir()
    shutil.copyfile(repo_data / "cache" / "mnist-subset.pt", root / "cache" / "mnist-subset.pt")
    load_dataset("uci-digits", root=root)
    status, out, err = run("pretrain", "--epochs", 1, "--data-root", root,
                           "--figure", root / "pretrain.png")
    assert status == 0, err
    return root, out


@pytest.fixture
def root(mnist_root, cli_data) -> Path:
    """The test's own data root, holding copies of the session's caches and model."""
    for folder in ("cache", "pretrained"):
        shutil.copytree(cli_data[0] / folder, mnist_root / folder, dirs_exist_ok=True)
    return mnist_root


# --- the experiments --------------------------------------------------------------------------

def test_pretrain_prints_each_epoch_caches_and_reuses_the_model(cli_data, root):
    session_root, out = cli_data
    rows = table_rows(out, "epoch")
    assert rows[0] == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
    assert [r[0] for r in rows[1:]] == ["1"]  # --epochs 1
    assert "on 1000 held-out images" in out and "trained and cached" in out
    checkpoint = Path(out.rsplit("trained and cached: ", 1)[1].splitlines()[0])
    assert checkpoint.parent == session_root / "pretrained" and checkpoint.exists()
    assert_png(session_root / "pretrain.png")

    status, again, _ = run("pretrain", "--epochs", 1, "--no-figure")  # in the test's root
    assert status == 0 and "loaded from the cache" in again
    assert re.search(r"test accuracy \S+", again)[0] == re.search(r"test accuracy \S+", out)[0]
    assert table_rows(again, "epoch") == rows


def test_pretrain_on_some_digits(root, tmp_path):
    status, out, err = run("pretrain", "--classes", 7, 3, "--epochs", 1,
                           "--figure", tmp_path / "curves.png")
    assert status == 0, err
    assert "digits 3, 7" in out and "on 200 held-out images" in out  # 100 test images each
    assert_png(tmp_path / "curves.png")


def test_finetune_table_has_a_row_per_strategy_and_a_column_per_budget(root, tmp_path):
    status, out, err = run("finetune", "--target", "uci-digits", "mnist-5-9",
                           "--strategy", "scratch", "full", "--labels-per-class", 1, 3,
                           "--seeds", 2, "--steps", 2, *TINY, "--figure", tmp_path / "ft.png")
    assert status == 0, err
    for target in ("uci-digits", "mnist-5-9"):
        assert f"{target}: test accuracy, mean ± std over 2 seed(s)" in out
        section = out.split(f"{target}: ")[1]
        header, *rows = table_rows(section, "strategy")
        assert header == ["strategy", "1", "3"]
        assert [r[0] for r in rows] == ["scratch", "full"]
        cells = [cell for row in rows for cell in row[1:]]
        assert all(re.fullmatch(r"[01]\.\d{3} ± 0\.\d{3}", cell) for cell in cells), cells
    assert_png(tmp_path / "ft.png")


def test_finetune_runs_the_staged_strategies_with_auto_rates(root, tmp_path):
    status, out, err = run("finetune", "--target", "uci-digits", "--strategy", "full",
                           "lp_ft", "gradual", "--labels-per-class", 2, "--seeds", 1,
                           "--steps", 4, "--lr", "auto", *TINY, "--no-figure")
    assert status == 0, err
    header, *rows = table_rows(out, "strategy")
    assert header == ["strategy", "2"] and [r[0] for r in rows] == ["full", "lp_ft", "gradual"]
    chosen = out.split("learning rates chosen by the range test")[1]
    header, *rows = table_rows(chosen, "strategy")
    assert [r[0] for r in rows] == ["full", "lp_ft", "gradual"]
    stages = {r[0]: r[1].split("/") for r in rows}
    assert [len(stages[s]) for s in ("full", "lp_ft", "gradual")] == [1, 2, 4]
    assert all(0 < float(rate) < 1 for rates in stages.values() for rate in rates)


@pytest.mark.parametrize("argv, message", [
    (["--lr", "fast"], "argument --lr: 'fast' is not a number"),
    (["--strategy", "lpft"], "argument --strategy: invalid choice: 'lpft'"),
])
def test_finetune_refuses_bad_rates_and_strategies(argv, message):
    status, _, err = run("finetune", *argv)
    assert status == 2 and message in err


@pytest.mark.parametrize(("extra", "rates"), [
    (["--optimizer", "adamw"], "adam defaults"),
    (["--optimizer", "adam", "--lr", "0.01"], 0.01),
    ([], "sgd defaults"),
])
def test_finetune_optimizer_and_its_default_rates(root, monkeypatch, extra, rates):
    import ftcore.transfer

    calls = []
    grid = ftcore.transfer.strategy_grid
    monkeypatch.setattr(ftcore.transfer, "strategy_grid",
                        lambda *a, **k: calls.append(k) or grid(*a, **k))
    strategies = ("scratch", "feature_extraction")
    status, out, err = run("finetune", "--target", "uci-digits", "--strategy", *strategies,
                           "--labels-per-class", 1, "--seeds", 1, "--steps", 2, *TINY,
                           "--no-figure", *extra)
    assert status == 0, err
    optimizer = extra[1] if extra else "sgd"
    table = {"adam defaults": FINETUNE_ADAM_LR, "sgd defaults": FINETUNE_LR}.get(rates)
    expected = {s: table[s] for s in strategies} if table else rates
    assert calls and all(k["optimizer"] == optimizer and k["lr"] == expected for k in calls)
    assert f"over 1 seed(s), {optimizer}; columns" in out
    assert FINETUNE_ADAM_LR["full"] < FINETUNE_ADAM_LR["feature_extraction"]  # the head alone
    assert set(FINETUNE_ADAM_LR) == set(STRATEGIES)
    assert set(FINETUNE_LR) == set(STRATEGIES) | {"lp_ft", "gradual"}


def test_finetune_refuses_adam_for_the_staged_strategies():
    status, _, err = run("finetune", "--strategy", "full", "lp_ft", "--optimizer", "adamw")
    assert status == 2 and "--strategy lp_ft trains each stage with SGD" in err
    assert "Traceback" not in err


def test_seeds_is_a_count_or_a_list():
    assert seed_list(Namespace(seeds=[3], seed=5)) == [5, 6, 7]
    assert seed_list(Namespace(seeds=[4, 7], seed=5)) == [4, 7]
    with pytest.raises(ValueError, match="number of repeats"):
        seed_list(Namespace(seeds=[0], seed=0))


def test_shifts_table_matches_the_library(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the figure's default place
    status, out, err = run("shifts", "--shift", "rotation", "noise", "--severity", 1, 5,
                           "--images", 50, "--device", "cpu", *TINY)
    assert status == 0, err
    header, *rows = table_rows(out, "shift")
    assert header == ["shift", "1", "5"] and [r[0] for r in rows] == ["rotation", "noise"]
    data = load_dataset("mnist").test.subset(torch.arange(50))
    expected = evaluate_shifts(pretrained_cnn(PretrainConfig(epochs=1)), data,
                               ["rotation", "noise"], [1, 5])
    assert f"on 50 mnist test images (clean: {expected[0]['accuracy']:.3f})" in out
    assert [cell for row in rows for cell in row[1:]] == [f"{r['accuracy']:.3f}"
                                                          for r in expected[1:]]
    assert_png(tmp_path / "ftcore-shifts.png")


@pytest.mark.parametrize("scenario, options, tasks", [
    ("split-class", (), "5 tasks (0/1, 2/3, 4/5, 6/7, 8/9)"),
    ("permuted", ("--permuted-tasks", 2), "2 tasks (original, permutation 1)"),
])
def test_continual_table_has_a_row_per_remedy(root, tmp_path, scenario, options, tasks):
    status, out, err = run("continual", "--scenario", scenario, *options, "--remedy", "naive",
                           "replay", "--first-epochs", 1, "--epochs", 1,
                           "--figure", tmp_path / "R.png")
    assert status == 0, err
    assert tasks in out
    header, *rows = table_rows(out, "remedy")
    assert header == ["remedy", "average_accuracy", "forgetting", "backward_transfer",
                      "plasticity", "seconds", "memory"]
    assert [r[0] for r in rows] == ["naive", "replay"]
    assert rows[0][-1] == "0" and int(rows[1][-1]) > 0  # only replay stores images
    assert_png(tmp_path / "R.png")


def test_repeated_values_count_once_and_no_figure_saves_none(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run("shifts", "--shift", "blur", "blur", "--severity", 1, 1,
                         "--images", 10, "--no-figure", *TINY)
    assert status == 0 and "figure saved" not in out
    assert [row[0] for row in table_rows(out, "shift")] == ["shift", "blur"]
    assert table_rows(out, "shift")[0] == ["shift", "1"]
    assert not list(tmp_path.glob("*.png"))


# --- the instructors' commands ----------------------------------------------------------------

@pytest.fixture
def lessons(tmp_path, monkeypatch) -> Path:
    """A lessons folder with one notebook whose exercise 99.1 has a marked solution."""
    monkeypatch.setitem(ftcore.exercises.EXERCISES, "99.1",
                        Exercise("99.1", "double", "multiply by two", lambda answer: None))
    folder = tmp_path / "lessons"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercises"),
        nbformat.v4.new_code_cell("def double(x):\n    # BEGIN SOLUTION 99.1\n    return 2 * x\n"
                                  "    # END SOLUTION"),
        nbformat.v4.new_code_cell('check("99.1", double)')])
    nbformat.write(nb, folder / "99_demo.ipynb")
    return folder


def test_student_edition_writes_stubs_and_refuses_to_overwrite(lessons, tmp_path):
    out_dir = tmp_path / "student"
    status, out, err = run("student-edition", "--lessons", lessons, "--out", out_dir)
    assert status == 0, err
    assert "1 lesson(s)" in out and "99_demo.ipynb" in out
    source = nbformat.read(out_dir / "99_demo.ipynb", as_version=4).cells[1].source
    assert "return 2 * x" not in source and "NotImplementedError" in source

    status, _, err = run("student-edition", "--lessons", lessons, "--out", out_dir)
    assert status == 2 and "ftcore student-edition: error:" in err
    assert "99_demo.ipynb" in err and "--force" in err and "Traceback" not in err
    assert run("student-edition", "--lessons", lessons, "--out", out_dir, "--force")[0] == 0
    status, _, err = run("student-edition", "--lessons", lessons, "--out", lessons)
    assert status == 2 and "the lessons with their solutions" in err
    status, _, err = run("student-edition", "--lessons", lessons, "--out", lessons / "student")
    assert status == 2 and "lies inside" in err and not (lessons / "student").exists()


def test_check_refuses_to_save_over_the_submissions_and_leaves_them_alone(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    submission = subs / "10_student.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("work")]),
                   submission)
    before = submission.read_bytes()
    status, _, err = run("check", "--exercises-only", "--save-to", subs, submission)
    assert status == 2 and "holds the input" in err and "Traceback" not in err
    assert submission.read_bytes() == before


def test_export_writes_each_format_once_and_refuses_to_overwrite(lessons, tmp_path):
    for tool, notebook in (("nbgrader", "source/lesson99/99_demo.ipynb"),
                           ("otter", "lesson99/99_demo.ipynb")):
        out_dir = tmp_path / tool
        status, out, err = run("export", "--format", tool, "--lessons", lessons, "--out",
                               out_dir)
        assert status == 0, err
        assert notebook in out and (out_dir / notebook).exists()
        cells = nbformat.read(out_dir / notebook, as_version=4).cells
        assert len({cell.id for cell in cells}) == len(cells)  # no cell twice
        assert sum(cell.source == "## Exercises" for cell in cells) == 1
        status, _, err = run("export", "--format", tool, "--lessons", lessons, "--out", out_dir)
        assert status == 2 and "not empty" in err and "never overwrites" in err
    status, _, err = run("export", "--format", "otter", "--lessons", lessons, "--out",
                         lessons / "otter")
    assert status == 2 and "lies inside" in err


@pytest.mark.parametrize("statuses, exit_status", [
    (["passed", "passed"], 0), (["passed", "incorrect"], 1), ([], 1)])
def test_check_exit_status_says_whether_every_exercise_passed(lessons, monkeypatch, statuses,
                                                              exit_status):
    records = [{"notebook": "99_demo.ipynb", "exercise": f"99.{i}", "status": s,
                "message": "" if s == "passed" else "the result is not doubled"}
               for i, s in enumerate(statuses, start=1)]
    calls = []
    monkeypatch.setattr(ftcore.exercises.edition, "grade",
                        lambda paths, **options: calls.append(options) or records)
    status, out, _ = run("check", lessons / "99_demo.ipynb", "--exercises-only", "--save-to",
                         lessons / "executed")
    assert calls == [dict(timeout=600, exercises_only=True, save_to=lessons / "executed")]
    assert status == exit_status
    assert f"{statuses.count('passed')} of {len(statuses)} exercise checks passed" in out
    if statuses:
        header, *rows = table_rows(out, "notebook")
        assert header == ["notebook", "exercise", "status", "message"]
        assert [r[2] for r in rows] == statuses


# --- help and errors --------------------------------------------------------------------------

OPTIONS = {
    "pretrain": ["--classes", "--epochs", "--retrain"],
    "finetune": ["--target", "--strategy", "--labels-per-class", "--seeds", "--steps",
                 "--optimizer", "--lr"],
    "shifts": ["--shift", "--severity", "--images", "--pretrain-epochs"],
    "continual": ["--scenario", "--remedy", "--epochs", "--first-epochs"],
    "student-edition": ["--out", "--lessons", "--force"],
    "check": ["NOTEBOOK", "--timeout", "--exercises-only", "--save-to"],
    "export": ["--format", "--out", "--lessons"],
}
COMMON = ["--seed", "--device", "--source", "--download", "--figure", "--no-progress"]


def test_help_lists_every_command():
    status, out, _ = run("--help")
    assert status == 0
    assert all(re.search(rf"^\s+{name}\s", out, re.MULTILINE) for name in COMMANDS)
    assert set(OPTIONS) == set(COMMANDS)


@pytest.mark.parametrize("command", list(OPTIONS))
def test_each_command_has_help_with_an_example(command):
    status, out, _ = run(command, "--help")
    assert status == 0
    assert f"example:\n  python -m ftcore {command}" in out
    experiment = COMMANDS[command].experiment
    for option in OPTIONS[command] + COMMON * experiment:
        assert option in out, option


@pytest.mark.parametrize("argv, problem", [
    (["finetune", "--strategy", "fulll"], "invalid choice: 'fulll'"),
    (["finetune", "--labels-per-class", "0"], "--labels-per-class: 0 must be a whole number"),
    (["finetune", "--seeds", "0"], "--seeds 0"),
    (["finetune", "--optimizer", "adan"], "--optimizer: invalid choice: 'adan'"),
    (["finetune", "--target", "uci-digits", "--labels-per-class", "500", *TINY], "has only"),
    (["shifts", "--severity", "9"], "--severity: invalid choice: 9"),
    (["shifts", "--shift", "wobble"], "--shift: invalid choice: 'wobble'"),
    (["shifts", "--images", "5000", *TINY], "more than the 1000 test images"),
    (["continual", "--remedy", "magic"], "--remedy: invalid choice: 'magic'"),
    (["continual", "--scenario", "permuted", "--permuted-tasks", "1"], "at least 2 tasks"),
    (["pretrain", "--classes", "3"], "at least two distinct digits"),
    (["pretrain", "--figure", "curves.txt"], "--figure: 'curves.txt' must end in one of"),
    pytest.param(["shifts", "--device", "cuda"], "finds no cuda device",
                 marks=pytest.mark.skipif(CUDA, reason="this machine has CUDA")),
    (["pretrain", "--source", "full", "--epochs", "1"], "add --download"),
    (["check", "missing.ipynb"], "no such notebook: missing.ipynb"),
])
def test_bad_arguments_are_argparse_errors(root, argv, problem):
    status, out, err = run(*argv)
    assert status == 2
    assert f"ftcore {argv[0]}: error:" in err and problem in err
    assert "Traceback" not in err and out == ""


def test_interrupting_a_command_ends_it_without_a_traceback(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ftcore.exercises.edition, "write_student_edition", interrupted)
    status, _, err = run("student-edition", "--out", tmp_path / "student")
    assert status == 130 and err == "ftcore student-edition: interrupted\n"


def test_a_command_is_required():
    status, _, err = run()
    assert status == 2 and "ftcore: error:" in err and "COMMAND" in err


def test_python_dash_m_ftcore_check_grades_a_real_notebook(tmp_path):
    path = tmp_path / "submitted.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from ftcore.exercises import check\ndef accuracy(*args):\n    return 2.0\n"
        "check('03.1', accuracy)")]), path)
    done = subprocess.run([sys.executable, "-m", "ftcore", "check", path.name, "--timeout", "60"],
                          cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # the kernel ran the check, which did not pass
    rows = [row[:3] for row in table_rows(done.stdout, "notebook")[1:]]
    assert rows == [["submitted.ipynb", "03.1", "incorrect"],
                    ["submitted.ipynb", "03.2", "missing"], ["submitted.ipynb", "03.3", "missing"]]
    assert "0 of 3 exercise checks passed" in done.stdout


# --- the device reaches the lower modules the CLI calls ---------------------------------------

@pytest.mark.skipif(CUDA, reason="needs a machine without CUDA")
def test_device_is_passed_on_by_train_and_score_and_evaluate_shifts(mnist_small):
    from helpers import tiny_cnn

    train, val = mnist_small
    for call in (lambda: train_and_score(tiny_cnn(), train, val, steps=1, device="cuda"),
                 lambda: evaluate_shifts(tiny_cnn(), val, ["blur"], [1], device="cuda")):
        with pytest.raises((AssertionError, RuntimeError, ValueError)):
            call()
    assert 0 <= train_and_score(tiny_cnn(), train, val, steps=1, device="cpu")["test_acc"] <= 1
