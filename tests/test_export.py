"""`ftcore export`: the exercises as nbgrader and otter-grader assignments.

These tests read the files written; benchmarks/validate_exports.py (run by CI with the
`[instructor]` extra) hands them to the real tools.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from ftcore.exercises import EXERCISES
from ftcore.exercises.edition import CHECK, MarkerError
from ftcore.exercises.export import export

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return {tool: (root / tool, export(LESSONS, root / tool, tool))
            for tool in ("nbgrader", "otter")}


def _ids(lesson: str) -> list[str]:
    return [key for key in EXERCISES if key.startswith(f"{lesson}.")]


def test_nbgrader_has_one_assignment_per_lesson_with_solution_and_graded_test_cells(exported):
    out, written = exported["nbgrader"]
    assert (out / "nbgrader_config.py") in written
    for path in NOTEBOOKS:
        lesson = path.name[:2]
        nb = nbformat.read(out / "source" / f"lesson{lesson}" / path.name, as_version=4)
        meta = [cell.metadata.get("nbgrader") for cell in nb.cells]
        solutions = [c for c, m in zip(nb.cells, meta, strict=True) if m and m["solution"]]
        tests = [c for c, m in zip(nb.cells, meta, strict=True) if m and m["grade"]]
        assert len(solutions) == len(tests) == len(_ids(lesson))
        for key, solution, test in zip(_ids(lesson), solutions, tests, strict=True):
            assert solution.source.count("### BEGIN SOLUTION") == 1
            assert "### END SOLUTION" in solution.source and f"SOLUTION {key}" not in \
                solution.source
            assert re.fullmatch(rf'from ftcore.exercises import check\ncheck\("{key}", \w+\)',
                                test.source)
            assert test.metadata.nbgrader["points"] == 1 and test.metadata.nbgrader["locked"]
        ids = [m["grade_id"] for m in meta if m]
        assert len(ids) == len(set(ids))
        assert not any(c.source.startswith("# Colab only") for c in nb.cells)
        assert all(not c.get("outputs") for c in nb.cells)


def test_otter_master_notebooks_have_config_questions_solutions_and_tests(exported):
    out, _ = exported["otter"]
    for path in NOTEBOOKS:
        lesson = path.name[:2]
        folder = out / f"lesson{lesson}"
        assert (folder / "requirements.txt").read_text().startswith("ftcore")
        nb = nbformat.read(folder / path.name, as_version=4)
        raw = [c.source for c in nb.cells if c.cell_type == "raw"]
        assert raw[0].startswith("# ASSIGNMENT CONFIG") and f"name: lesson{lesson}" in raw[0]
        names = re.findall(r"# BEGIN QUESTION\nname: (\w+)\npoints: 1", "\n".join(raw))
        assert names == [f"ex{key.replace('.', '_')}" for key in _ids(lesson)]
        for marker in ("# BEGIN SOLUTION", "# END SOLUTION", "# BEGIN TESTS", "# END TESTS",
                       "# END QUESTION"):
            assert raw.count(marker) == len(names), marker
        tests = [c for c in nb.cells if c.cell_type == "code" and "check(" in c.source]
        # otter's tests are doctests expecting the master's output: what the lesson's passing
        # check printed when the lesson was executed.
        printed = [c.outputs[0].text for c in nbformat.read(path, as_version=4).cells
                   if c.cell_type == "code" and CHECK.search(c.source)]
        assert [test.outputs[0].text for test in tests] == printed
        assert all(text.startswith("✓ Exercise") for text in printed)


def test_an_export_never_overwrites_and_is_all_or_nothing(tmp_path, monkeypatch):
    out = tmp_path / "course"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="never overwrites"):
        export(LESSONS, out, "nbgrader")
    with pytest.raises(ValueError, match="inside"):
        export(LESSONS, LESSONS / "course", "otter")
    with pytest.raises(ValueError, match="format='moodle' is not one of 'nbgrader', 'otter'"):
        export(LESSONS, tmp_path / "x", "moodle")
    broken = tmp_path / "lessons"
    broken.mkdir()
    for path in NOTEBOOKS[:2]:
        (broken / path.name).write_text(path.read_text())
    last = broken / NOTEBOOKS[1].name
    last.write_text(last.read_text().replace("# END SOLUTION", "# end solution", 1))
    with pytest.raises(MarkerError, match=NOTEBOOKS[1].name):
        export(broken, tmp_path / "partial", "otter")
    assert not (tmp_path / "partial").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
