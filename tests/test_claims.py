"""The robustness harness (benchmarks/claims.py): its parameter rules, how it counts assert
cells, and its exit status, on tiny notebooks built here (never the real lessons)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "claims.py"
_spec = importlib.util.spec_from_file_location("claims", _PATH)
claims = sys.modules["claims"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(claims)
Config = claims.Config

DEFINED = {"SEED": "0", "SEEDS": "(0, 1, 2)", "PRETRAIN_SEED": "0", "THREADS": "1", "N": "5"}


def test_a_configuration_sets_seed_seeds_and_pretrain_seed_but_keeps_threads():
    assert claims.lesson_parameters(Config(seed=2, pretrain_seed=1), DEFINED) == {
        "SEED": 2, "SEEDS": (20, 21, 22), "PRETRAIN_SEED": 1}


def test_seed_zero_keeps_the_committed_seeds_and_threads_is_set_only_when_named():
    assert claims.lesson_parameters(Config(threads=2), DEFINED) == {
        "SEED": 0, "SEEDS": (0, 1, 2), "PRETRAIN_SEED": 0, "THREADS": 2}


def test_only_the_parameters_a_lesson_defines_are_passed():
    assert claims.lesson_parameters(Config(3, 1, 2), {"SEED": "0", "STEPS": "50"}) == {"SEED": 3}
    seeds = claims.lesson_parameters(Config(seed=4), {"SEEDS": "(0, 1, 2, 3, 4)"})["SEEDS"]
    assert seeds == (40, 41, 42, 43, 44)


def test_seeds_that_are_not_a_literal_tuple_are_refused():
    with pytest.raises(ValueError, match="SEEDS = tuple.*literal tuple"):
        claims.lesson_parameters(Config(), {"SEEDS": "tuple(range(3))"})


def test_the_default_configurations_are_issue_12s():
    names = [c.name for c in claims.CONFIGS]
    assert names == ["seed=0", "seed=1", "seed=2", "seed=3", "seed=4",
                     "seed=0,pretrain_seed=1", "seed=1,pretrain_seed=1", "seed=0,threads=2"]
    assert [c.label for c in claims.CONFIGS][-3:] == ["s0 p1", "s1 p1", "s0 t2"]


def test_parse_config_reads_key_value_pairs():
    assert claims.parse_config("seed=1,pretrain_seed=1") == Config(1, 1)
    assert claims.parse_config("threads=2") == Config(threads=2)
    assert claims.parse_config(" seed=3 ").name == "seed=3"


@pytest.mark.parametrize("text, message", [
    ("sed=1", "'sed=1' is not key=value with a key among 'seed', 'pretrain_seed', 'threads'"),
    ("seed", "is not key=value"),
    ("seed=x", "seed='x' is not an integer"),
    ("threads=0", "threads=0 is out of range"),
    ("seed=1,seed=2", "names 'seed' twice"),
])
def test_parse_config_names_the_bad_item(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        claims.parse_config(text)


def _error(ename, evalue, line):
    return new_output("error", ename=ename, evalue=evalue,
                      traceback=["\x1b[0;31mTraceback\x1b[0m",
                                 f"\x1b[0;32m----> 2\x1b[0m {line}\n"])


def _executed(source, *outputs, ran=True):
    cell = new_code_cell(source, execution_count=1 if ran else None)
    cell.outputs = list(outputs)
    return cell


def test_score_counts_assert_cells_and_names_each_failure_by_the_lessons_index():
    injected = _executed("SEED = 1")
    injected.metadata["tags"] = ["injected-parameters"]
    nb = new_notebook(cells=[
        new_markdown_cell("we assert nothing here"),                                   # 0
        _executed("SEED = 0"),                                                         # 1
        injected,                                                                      # -
        _executed("x = 2\nassert x > 1"),                                              # 2 held
        _executed("y = 0\nassert y > 1", _error("AssertionError", "", "assert y > 1")),  # 3
        _executed("assert 0, 'too few'", _error("AssertionError", "too few\nmore", "")),  # 4
        _executed('print("assert")'),                                   # 5: no assert here
        _executed("z = w + 1", _error("NameError", "name 'w' is not defined", "")),    # 6
        _executed("%time 1\nassert True"),                                             # 7 held
        _executed(""),                                                                 # 8: empty
    ])
    s = claims.score(nb)
    assert (s.total, s.held, s.errors) == (4, 2, 3)
    assert s.failures[0].startswith("cell 3 (id ") and s.failures[0].endswith(
        "AssertionError at: assert y > 1")
    assert s.failures[1].endswith("AssertionError: too few")
    assert s.failures[2].startswith("cell 6") and s.failures[2].endswith(
        "NameError: name 'w' is not defined")


def test_cells_a_timed_out_lesson_never_ran_count_as_failed():
    nb = new_notebook(cells=[_executed("assert True"), _executed("assert True", ran=False)])
    assert claims.score(nb).held == 2                      # finished: an unrun cell is not news
    nb.metadata["claims"] = {"stopped": "the lesson timed out"}
    s = claims.score(nb)
    assert (s.held, s.total) == (1, 2)
    assert s.failures == [f"cell 1 (id {nb.cells[1].id}): not run (the lesson timed out)"]


def _lesson(folder: Path, *sources) -> Path:
    params = new_code_cell("SEED = 0  # the draw\nTHREADS = 1")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, *map(new_code_cell, sources)],
                      metadata={"kernelspec": {"name": "python3", "language": "python",
                                               "display_name": "Python 3"}})
    path = folder / "00_tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_failing_assert_is_counted_named_and_makes_the_exit_status_1(tmp_path, capsys):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    path = _lesson(lessons, "assert SEED < 3, f'SEED = {SEED} is too large'",
                   "assert isinstance(SEED, int)", "print('done')")
    before = path.read_bytes()
    status = claims.main([str(path), "--config", "seed=1", "--config", "seed=5",
                          "--out", str(tmp_path / "out"), "--jobs", "2"])
    printed = capsys.readouterr().out
    assert status == 1
    row = next(line for line in printed.splitlines() if line.startswith("00_tiny "))
    assert row.split()[1:] == ["2/2", "1/2", "!"]
    assert "FAILED 00_tiny [seed=5] cell 1 (id " in printed
    assert "AssertionError: SEED = 5 is too large" in printed
    assert "print('done')" in (tmp_path / "out" / "00_tiny" / "seed=5.ipynb").read_text()
    assert path.read_bytes() == before and sorted(lessons.iterdir()) == [path]  # untouched
    assert claims.main([str(path), "--config", "seed=2", "--out", str(tmp_path / "o2")]) == 0


def test_a_lesson_over_its_time_is_stopped_and_fails(tmp_path, capsys):
    path = _lesson(tmp_path, "import time\ntime.sleep(60)", "assert True")
    status = claims.main([str(path), "--config", "seed=0", "--timeout", "2",
                          "--out", str(tmp_path / "out")])
    assert status == 1
    assert "not run (the lesson timed out)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--config", "seed=-1"], "seed=-1 is out of range"),
    (["--jobs", "0"], "--jobs 0"),
    (["missing.ipynb"], "not a notebook: "),
    (["--out", str(claims.LESSONS / "x")], "is inside lessons/"),
])
def test_bad_options_are_refused_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        claims.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_lesson_without_parameters_runs_once_and_is_named(tmp_path, capsys):
    path = tmp_path / "00_plain.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("SEED = 0\nassert SEED == 0")]), path)
    assert claims.main([str(path), "--config", "seed=1", "--config", "seed=2",
                        "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "1 runs (1 lessons x 2 configurations)" in printed
    assert "00_plain seed=1 (= seed=2): 1/1 assert cells held" in printed
    assert "note: 00_plain: its parameters cell defines no SEED, THREADS" in printed
