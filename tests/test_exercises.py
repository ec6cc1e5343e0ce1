"""
exercises.py: a student copy lints, imports and fails exactly its exercises' tests, in order; solutions paste back.

    python -m pytest tests/test_exercises.py -v

Exercise N's tests (exercises.EXERCISES) need exercise N and perhaps earlier ones, never a later one. So in a copy
with exercises N.. cut out (a student who has written 1..N-1), exercise N-1's tests pass and each of exercise N's
fails with the NotImplementedError of exercise N. In the copy with every exercise cut out, tests that touch no
exercise (INDEPENDENT, a selection) still pass. Skipped in a student copy: it has no solutions to cut out.
"""

import os
import re
import subprocess
import sys

import pytest

import exercises
from conftest import ENV, HERE

pytestmark = pytest.mark.skipif(any(exercises.is_stub(HERE, r) for r in exercises.regions(HERE)),
                                reason="a student copy: its solutions are cut out")
LAST = len(exercises.EXERCISES)
# Tests that reach no exercise code, from every kind of test file: they pass in any student copy. In test_rins.py
# these are the only two (test_bad_recursion_config's other two cases fail in expand, so exercise 1 grades them).
INDEPENDENT = ["test_rins.py::test_shorthand_expansion", "test_rins.py::test_bad_recursion_config_is_one_clear_line",
               "test_rins.py::test_state_norm_makes_injection_blind_to_the_state_scale",
               "tests/test_cli.py::test_configurator_overrides_and_errors", "tests/test_cli.py::test_check_rules",
               "tests/test_cli.py::test_every_mistake_gets_its_own_line",
               "tests/test_compare.py::test_paired_interval_equals_hand_computation",
               "tests/test_prepare.py::test_read_idx", "tests/test_sweep.py::test_sweep_goes_on_after_a_failure",
               "tests/test_teach.py::test_cosine_of_identical_states_is_one",
               "tests/test_teach.py::test_plan_bad_signature_exits_with_one_line",
               "tests/test_vision.py::test_held_out_templates_are_disjoint_from_training"]


def run(*argv, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def run_tests(directory, tmp_path, specs) -> dict[str, tuple[str, str]]:
    """pytest on the given node ids inside a copy; node id -> (outcome, failure text)."""
    xml = str(tmp_path / "junit.xml")
    run(sys.executable, "-m", "pytest", "-q", "--tb=line", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
        f"--junitxml={xml}", *specs, cwd=directory)
    got = exercises.results(xml)
    for spec in specs:
        assert any(exercises.graded_by(spec, node) for node in got), f"{spec}: no such test ran"
    return got


def named(text: str) -> int | None:
    """The exercise whose stub a failure reached first."""
    m = re.search(r"NotImplementedError: exercise (\d+)", text)
    return int(m[1]) if m else None


def student_copy(tmp_path, numbers=range(1, LAST + 1)) -> str:
    copy = str(tmp_path / "course")
    exercises.make(copy, list(numbers))
    return copy


def test_a_student_copy_lints_imports_and_its_check_fails_every_exercise(tmp_path):
    copy = student_copy(tmp_path)
    ruff = run(os.path.join(os.path.dirname(sys.executable), "ruff"), "check", ".", cwd=copy)
    assert ruff.returncode == 0, ruff.stdout  # make test lints first, so it would stop here
    imports = run(sys.executable, "-c", "import model, plan, diagnose, siglip, bench, bench_inference, compare, "
                  "exercises, py_compile; [py_compile.compile(f, doraise=True) for f in ('train.py', 'sample.py', "
                  "'prepare.py')]", cwd=copy)
    assert imports.returncode == 0, imports.stderr  # the scripts compile (importing them would run them)
    plan = run("make", "--no-print-directory", "-n", "test", cwd=copy).stdout.splitlines()
    assert len(plan) == 2 and "ruff check" in plan[0] and "pytest" in plan[1], plan  # .venv linked: no rebuild
    check = run(sys.executable, "exercises.py", "check", cwd=copy)
    rows = check.stdout.splitlines()
    assert check.returncode == 1 and rows[-1].startswith(f"0 of {LAST} exercise(s) pass"), check.stdout
    for e, row in zip(exercises.EXERCISES, rows[1:-1]):
        assert row.split()[0] == str(e.number) and e.name in row and " 0/" in row, row
        assert row.endswith("exercise 1 is not written yet" if e.number == 1 else "needs exercise 1 first"), row


def check_in_order(tmp_path, number: int, others: list[str]) -> None:
    """In a copy with exercises number.. cut out, each of exercise number's tests fails naming it and the others
    pass."""
    todo = exercises.BY_NUMBER[number].tests
    got = run_tests(student_copy(tmp_path, range(number, LAST + 1)), tmp_path, others + todo)
    for node, (outcome, text) in got.items():
        if any(exercises.graded_by(spec, node) for spec in todo):
            assert outcome == "failed" and named(text) == number, (node, outcome, text[-2000:])
        else:
            assert outcome == "passed", (node, text[-2000:])


def test_tests_that_touch_no_exercise_pass_in_a_student_copy_and_exercise_1s_fail(tmp_path):
    check_in_order(tmp_path, 1, INDEPENDENT)


@pytest.mark.parametrize("number", [e.number for e in exercises.EXERCISES[1:]])
def test_in_order_each_exercise_fails_naming_itself_until_it_is_written(tmp_path, number):
    """A student who has written exercises 1..number-1: exercise number-1's tests pass (they need no later
    exercise), and each of exercise number's fails naming it."""
    check_in_order(tmp_path, number, exercises.BY_NUMBER[number - 1].tests)


def test_solve_pastes_the_solutions_back(tmp_path):
    copy = student_copy(tmp_path)
    files = exercises.repository_files(HERE)
    same = lambda path: open(os.path.join(copy, path), "rb").read() == open(os.path.join(HERE, path), "rb").read()
    assert sorted(p for p in files if not same(p)) == ["diagnose.py", "model.py", "train.py"]
    exercises.solve(copy, [1, 2])
    assert [r.number for r in exercises.regions(copy) if not exercises.is_stub(copy, r)] == [1, 2]
    exercises.solve(copy, list(range(1, LAST + 1)))
    assert all(same(p) for p in files)  # the repository again, byte for byte: every test passes as it does here
    for argv, message in ((["make", copy], "is not empty"), (["solve", copy, "9"], "numbered 1 to"),
                          (["solve", str(tmp_path / "nowhere")], "is not a directory")):
        with pytest.raises(SystemExit, match=message):
            exercises.main(argv)
    again = student_copy(tmp_path / "again")
    p = run(sys.executable, "exercises.py", "solve", copy, cwd=again)  # a student copy has no solutions to give
    assert p.returncode == 1 and "holds no solutions" in p.stderr, p.stderr


def test_every_spec_test_is_graded_once_or_touches_no_exercise():
    """Each test of test_rins.py belongs to exactly one exercise, or to INDEPENDENT; every grading id exists."""
    files = sorted({spec.split("::")[0] for e in exercises.EXERCISES for spec in e.tests})
    collected = run(sys.executable, "-m", "pytest", "--collect-only", "-q", *files, cwd=HERE).stdout.splitlines()
    nodes = [line for line in collected if "::" in line]
    specs = [spec for e in exercises.EXERCISES for spec in e.tests]
    assert all(any(exercises.graded_by(spec, node) for node in nodes) for spec in specs)
    for node in (n for n in nodes if n.startswith("test_rins.py::")):
        owners = [e.number for e in exercises.EXERCISES if any(exercises.graded_by(s, node) for s in e.tests)]
        free = any(exercises.graded_by(spec, node) for spec in INDEPENDENT)
        assert len(owners) == 1 or not owners and free, (node, owners)


def test_unpaired_or_unknown_markers_are_one_line(tmp_path):
    cases = {"    # exercise 1: x\n": "never closed", "# end of exercise 1\n": "does not close",
             "# exercise 1: x\n# exercise 2: y\n": "starts inside", "# exercise 9: x\n# end of exercise 9\n": "unknown"}
    for i, (text, message) in enumerate(cases.items()):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "a.py").write_text(text)
        with pytest.raises(SystemExit, match=message) as e:
            exercises.regions(str(tmp_path / str(i)))
        assert "\n" not in str(e.value)
