"""Validate `ftcore export` with the real tools, nbgrader and otter-grader (`.[instructor]`).

    python benchmarks/validate_exports.py                 # every lesson (the maintainer's run)
    python benchmarks/validate_exports.py --lessons 01    # one lesson (what CI runs)

For each lesson, in a temporary folder:

* nbgrader: `nbgrader generate_assignment` succeeds; `nbgrader validate` passes on the solution
  (source) notebook; `nbgrader validate --invert` finds that no test passes on the released
  student notebook (every exercise fails);
* otter: `otter assign` writes the student notebook and the autograder zip (Gradescope's);
  `otter run` scores the solutions full marks and the untouched student notebook zero.

Exits 1 if any validation fails (or a tool is missing), printing each result and its time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftcore.exercises import EXERCISES  # noqa: E402
from ftcore.exercises.export import export  # noqa: E402

BIN = Path(sys.executable).parent
#: The tools' own subprocesses (alembic, the kernel's `python`) come from this environment.
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def run(*argv: str, cwd: Path) -> str:
    """Run a tool; its output (stdout and stderr); raise with that output if it fails."""
    done = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=cwd, env=ENV, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited with {done.returncode}:\n{done.stdout}")
    return done.stdout


def validate_nbgrader(course: Path, lessons: list[str]) -> Iterator[tuple[str, bool, str]]:
    for lesson in lessons:
        name = f"lesson{lesson}"
        try:
            run("nbgrader", "generate_assignment", name, "--force", cwd=course)
            source = sorted((course / "source" / name).glob("*.ipynb"))
            released = sorted((course / "release" / name).glob("*.ipynb"))
            ok = bool(released) and len(released) == len(source)
            yield (f"nbgrader generate_assignment {name}", ok,
                            f"{len(released)} student notebook(s)")
            out = run("nbgrader", "validate", *map(str, source), cwd=course)
            passed = out.count("Success! Your notebook passes all the tests.")
            yield (f"nbgrader validate (solutions) {name}", passed == len(source),
                            "passes every test" if passed == len(source) else out[-2000:])
            out = run("nbgrader", "validate", "--invert", *map(str, released), cwd=course)
            failed = out.count("Success! The notebook does not pass any tests.")
            yield (f"nbgrader validate --invert (student) {name}",
                            failed == len(released),
                            "every exercise fails" if failed == len(released) else out[-2000:])
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            yield (f"nbgrader {name}", False, str(error)[-2000:])


def _score(results_json: Path) -> tuple[float, float]:
    """(score, max score) summed over the questions of an `otter run` results.json."""
    tests = json.loads(results_json.read_text())["tests"]
    graded = [t for t in tests if t.get("max_score") is not None]
    return (sum(t.get("score") or 0 for t in graded), sum(t["max_score"] for t in graded))


def validate_otter(root: Path, lessons: list[str]) -> Iterator[tuple[str, bool, str]]:
    for lesson in lessons:
        folder = root / f"lesson{lesson}"
        expected = sum(key.startswith(f"{lesson}.") for key in EXERCISES)
        try:
            (master,) = folder.glob("*.ipynb")
            # `otter run` on the solutions below is a stricter form of assign's own test run
            run("otter", "assign", "--no-run-tests", master.name, "dist", cwd=folder)
            zips = list((folder / "dist" / "autograder").glob("*.zip"))
            student = folder / "dist" / "student" / master.name
            yield (f"otter assign lesson{lesson}", len(zips) == 1 and student.exists(),
                            f"{student.relative_to(root)}, {zips[0].name if zips else 'no zip'}")
            for what, notebook, want in (("solutions", folder / "dist" / "autograder" /
                                          master.name, expected), ("student", student, 0)):
                out = folder / f"run-{what}"
                out.mkdir()
                run("otter", "run", "-a", str(zips[0]), "-o", str(out), str(notebook),
                    cwd=folder)
                score, top = _score(out / "results.json")
                yield (f"otter run ({what}) lesson{lesson}",
                                score == want and top == expected,
                                f"{score:g} of {top:g} points (want {want})")
        except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as error:
            yield (f"otter lesson{lesson}", False, str(error)[-2000:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="+", metavar="NN",
                        help="lesson numbers to validate (default: every lesson)")
    parser.add_argument("--tools", nargs="+", choices=["nbgrader", "otter"],
                        default=["nbgrader", "otter"])
    args = parser.parse_args(argv)
    lessons = args.lessons or sorted({key[:2] for key in EXERCISES})
    missing = [tool for tool in args.tools if not (BIN / tool).exists()]
    if missing:
        print(f"validate_exports: {', '.join(missing)} not installed in {BIN}: "
              f"pip install -e '.[instructor]'")
        return 1
    results = []
    with tempfile.TemporaryDirectory(prefix="ftcore-exports-") as tmp:
        for tool, validate in (("nbgrader", validate_nbgrader), ("otter", validate_otter)):
            if tool not in args.tools:
                continue
            start = time.perf_counter()
            export(ROOT / "lessons", Path(tmp) / tool, tool)
            for name, ok, detail in validate(Path(tmp) / tool, lessons):
                results.append(ok)
                print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
            print(f"     ({tool}: {time.perf_counter() - start:.0f} s)", flush=True)
    print(f"export validations: {sum(results)} of {len(results)} ok")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
