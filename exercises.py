"""
Exercises: the central pieces of RINS, cut out of a copy of this repository for students to write again and graded
by the tests that specify them (test_rins.py, the paper as tests, and a few tests of the tools built on them).
docs/teaching.md lists what each one teaches and the order in which to read the files.

    python exercises.py make DIR [N ...]    # DIR: a copy of the repository with exercises N (default: all) cut out
    python exercises.py check [DIR] [N]     # run exercise N's tests (default: every exercise's) in DIR (default: .)
    python exercises.py solve DIR [N ...]   # paste this repository's solutions to N (default: all) back into DIR

In the source an exercise is the code between the comment lines `# exercise N: ...` and `# end of exercise N` (one
exercise may have such a pair in several places). `make` keeps the two lines and puts between them a stub that
raises NotImplementedError naming the exercise and its tests. Exercise N's tests need exercise N and perhaps earlier
ones, never a later one: a student working in order sees each check fail with its own exercise's name until it is
written. Other tests that run the model (training end to end, golden logs, the CLIs) fail in a student copy too,
each naming the exercise it reached first; tests that touch no exercise pass.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from collections import namedtuple

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN, END = re.compile(r"( *)# exercise (\d+): \S"), re.compile(r"( *)# end of exercise (\d+)$")
Exercise = namedtuple("Exercise", "number name teaches tests")  # tests: pytest node ids from the repository root
Region = namedtuple("Region", "path number begin end indent")  # begin, end: the marker lines' indices


def tests(path: str, *names: str) -> list[str]:
    return [f"{path}::{name}" for name in names]


def params(name: str, *ids: str) -> list[str]:  # some of a parametrized test's cases
    return [f"{name}[{i}]" for i in ids]


SPEC, FLOPS = "test_rins.py", "test_flops_match_flop_counter_for_every_variant"
EXERCISES = [
    Exercise(1, "the signature -> layers of a plan",
             "Plan.expand: letters are slices of the physical blocks, split by the partition; at degree d each "
             "letter runs the degree d-1 plan of its slice. The plan is a list of block indices, built once.",
             tests(SPEC, "test_plans_match_paper_table",
                   *params("test_bad_recursion_config_is_one_clear_line", "kw10-divisible", "kw12-divisible by 8"))),
    Exercise(2, "the loop over the plan",
             "PlanModel.run_plan: the prelude once, the unit r times, the coda once, calling the same modules "
             "again; round boundaries are where injection, adapters and truncated backprop act.",
             tests(SPEC, "test_r_override_errors", "test_r1_is_the_baseline_bit_for_bit",
                   "test_shared_plan_equals_unrolled_copy", "test_zero_init_adapters_change_nothing_then_train",
                   "test_truncated_backprop_reaches_only_the_last_rounds", "test_causality",
                   "test_initial_loss_is_log_vocab", *params("test_tiny_model_overfits_one_batch", "baseline",
                                                             "rins_r2"),
                   "test_vit_r1_is_the_baseline_bit_for_bit", "test_vit_shared_plan_equals_unrolled_copy")),
    Exercise(3, "the FLOP count of a plan",
             "Plan.flops: cost follows execution, every application of every block, attention over the full "
             "T x T square, backward twice the forward, rounds without gradient forward only.",
             tests(SPEC, *params(FLOPS, "baseline", "rins_r2", "rins_r3", "rao", "ab2", "blockwise", "reverse",
                                 "degree2", "latent_lite", "per_count"),
                   "test_flops_match_flop_counter_for_more_signatures",
                   "test_no_grad_rounds_cost_a_third_in_linear_layers",
                   *params("test_vit_flops_match_flop_counter", "baseline", "rins_r2", "rao"),
                   "test_siglip_flops_match_flop_counter")),
    Exercise(4, "stochastic rounds and compute matching",
             "Plan._round_distribution and train.py: the training depth is drawn per step (binomial, or "
             "Poisson with a log-normal rate), its expectation is the cost per token, and a FLOP budget divided by "
             "that cost is the run's length: deeper plans see fewer tokens.",
             tests(SPEC, "test_parameter_count_identical_across_signatures", "test_stochastic_rounds_mean",
                   "test_poisson_rounds_mean_and_cap",
                   "test_adapter_fraction_of_rins_stoch_adapters_config_under_one_percent",
                   "test_latent_noise_state_is_fresh_each_call_and_injection_keeps_the_input",
                   *params("test_tiny_model_overfits_one_batch", "stoch_adapters", "latent"),
                   *params(FLOPS, "latent", "stoch", "stoch_adapters"), "test_expected_flops_under_sampled_rounds",
                   "test_every_config_file_counts_its_flops_exactly",
                   *params("test_vit_flops_match_flop_counter", "stoch_adapters"),
                   "test_compute_matched_runs_land_within_one_percent_of_budget")),
    Exercise(5, "a KV cache per application",
             "KVCache.extend and GPT.new_caches: a block run r times owns r caches, one per application, since each "
             "round sees a different stream; kv_share lets later rounds read one round's keys and values.",
             tests(SPEC, "test_cached_generation_equals_recomputation", "test_cache_has_one_entry_per_application",
                   "test_kv_share_changes_only_later_rounds",
                   "test_kv_share_first_keeps_round_one_and_stores_one_round", "test_kv_cache_bytes_per_token",
                   "test_kv_share_errors_are_one_line")
             + tests("tests/test_inference.py", "test_cached_loss_equals_the_parallel_forward",
                     "test_shared_kv_changes_the_loss_at_r2_and_saves_memory", "test_shared_kv_is_exact_at_r1")),
    Exercise(6, "the logit lens",
             "diagnose.lens_loss: the model's own final norm and head read the stream after any application, so "
             "each round's progress is a loss.",
             tests("tests/test_teach.py", "test_lens_after_the_last_application_is_the_model_loss",
                   "test_diagnose_compares_each_round_with_the_previous_one", "test_diagnose_a_trained_checkpoint")),
]
BY_NUMBER = {e.number: e for e in EXERCISES}
SKIP = {".git", ".venv", "data", "runs", "__pycache__", ".pytest_cache"}  # never copied (without git to ask)


def fail(msg: str):
    raise SystemExit(f"exercises.py: {msg}")


# --- regions and stubs ---
def regions(root: str) -> list[Region]:
    """Every exercise region in root's top-level Python files, in file order; one line of error if the markers are
    unpaired, nested, or name an exercise this file does not list."""
    found = []
    for name in sorted(f for f in os.listdir(root) if f.endswith(".py") and f != "exercises.py"):
        begin = None
        with open(os.path.join(root, name)) as f:
            lines = f.read().splitlines()
        for i, line in enumerate(lines):
            b, e = BEGIN.match(line), END.match(line)
            where = f"{name} line {i + 1}"
            if b and begin:
                fail(f"{where}: exercise {b[2]} starts inside exercise {begin[2]}")
            if b:
                begin = (i, b[1], b[2])
            elif e and (begin is None or e[2] != begin[2] or e[1] != begin[1]):
                fail(f"{where}: '# end of exercise {e[2]}' does not close an '# exercise {e[2]}: ...' line at its "
                     "indentation")
            elif e:
                found.append(Region(name, int(e[2]), begin[0], i, begin[1]))
                begin = None
        if begin:
            fail(f"{name} line {begin[0] + 1}: exercise {begin[2]} is never closed by '# end of exercise {begin[2]}'")
    unknown = sorted({r.number for r in found} - set(BY_NUMBER))
    missing = sorted(set(BY_NUMBER) - {r.number for r in found})
    if unknown or missing:
        fail(f"regions in {root} do not match EXERCISES: unknown {unknown}, without a region {missing}")
    return found


def stub(number: int, indent: str) -> list[str]:
    """The lines that replace exercise `number` in a student copy: a NotImplementedError naming the exercise and the
    tests that grade it, as string pieces that keep every line within 120 characters."""
    e, files = BY_NUMBER[number], {}
    for test in e.tests:  # {path: {function: [case, ...], or [] for all its cases}}
        path, name = test.split("::")
        function, _, case = name.partition("[")
        files.setdefault(path, {}).setdefault(function, []).append(case[:-1])
    name = lambda function, cases: function + (f"[{', '.join(cases)}]" if all(cases) else "")
    graded = "; ".join(f"{path}: {', '.join(name(f, c) for f, c in functions.items())}"
                       for path, functions in files.items())
    message = f"exercise {number} ({e.name}) is yours to write; graded by {graded} (python exercises.py check {number})"
    head = f"{indent}raise NotImplementedError("
    pieces, width = [""], 116 - len(head)  # room for the quotes and the closing parenthesis
    for word in message.split(" "):
        if pieces[-1] and len(pieces[-1]) + len(word) > width:
            pieces.append("")
        pieces[-1] += word + " "
    pieces[-1] = pieces[-1][:-1]
    return [(head if i == 0 else " " * len(head)) + f'"{p}"' + (")" if i == len(pieces) - 1 else "")
            for i, p in enumerate(pieces)]


def read_lines(root: str, path: str) -> list[str]:
    with open(os.path.join(root, path)) as f:
        return f.read().splitlines()


def is_stub(root: str, region: Region) -> bool:
    return read_lines(root, region.path)[region.begin + 1:region.end] == stub(region.number, region.indent)


def replace_bodies(root: str, new_body) -> None:
    """Rewrite each region of root for which new_body(region) gives lines, bottom up so indices stay valid."""
    for region in sorted(regions(root), key=lambda r: (r.path, -r.begin)):
        body = new_body(region)
        if body is not None:
            lines = read_lines(root, region.path)
            lines[region.begin + 1:region.end] = body
            with open(os.path.join(root, region.path), "w") as f:
                f.write("\n".join(lines) + "\n")


# --- the three commands ---
def repository_files(root: str) -> list[str]:
    """What git tracks or would track (nothing it ignores); without git, every file outside SKIP and out*/."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                                capture_output=True, check=True).stdout.decode()
        return [p for p in listed.split("\0") if p and os.path.isfile(os.path.join(root, p))]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in SKIP and not (d == root and x.startswith("out"))]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names if not n.endswith(".pyc")]
        return files


def make(dst: str, numbers: list[int]) -> None:
    if os.path.exists(dst) and os.listdir(dst):
        fail(f"{dst} exists and is not empty; give a new directory (a student copy is never overwritten)")
    if any(is_stub(HERE, r) for r in regions(HERE)):
        fail(f"{HERE} is a student copy; make student copies from the repository that holds the solutions")
    files = repository_files(HERE)
    for path in files:
        os.makedirs(os.path.dirname(os.path.join(dst, path)), exist_ok=True)
        shutil.copy2(os.path.join(HERE, path), os.path.join(dst, path))  # mtimes too: make sees .venv up to date
    replace_bodies(dst, lambda r: stub(r.number, r.indent) if r.number in numbers else None)
    cut = dict.fromkeys(r.path for r in regions(dst) if r.number in numbers)
    print(f"wrote {dst}: {len(files)} files, exercises {', '.join(map(str, numbers))} cut out of {', '.join(cut)}")
    venv = os.path.join(HERE, ".venv")
    if os.path.isdir(venv):
        os.symlink(os.path.realpath(venv), os.path.join(dst, ".venv"))
        print(f"{dst}/.venv links to {os.path.realpath(venv)} (delete the link before handing the copy out; "
              "make test there builds its own)")
    print(f"next: cd {dst} && python exercises.py check")


def solve(dst: str, numbers: list[int]) -> None:
    ours, theirs = ([r for r in regions(root) if r.number in numbers] for root in (HERE, dst))
    if [(r.path, r.number) for r in ours] != [(r.path, r.number) for r in theirs]:
        fail(f"{dst} does not have this repository's regions of exercises {numbers}; was it made by exercises.py?")
    if any(is_stub(HERE, r) for r in ours):
        fail(f"{HERE} holds no solutions (it is a student copy); run solve from the repository they were cut from")
    bodies = {(t.path, t.begin): read_lines(HERE, o.path)[o.begin + 1:o.end] for o, t in zip(ours, theirs)}
    replace_bodies(dst, lambda r: bodies.get((r.path, r.begin)))
    print(f"pasted the solutions to exercises {', '.join(map(str, numbers))} into {dst}")


def results(junit_xml: str) -> dict[str, tuple[str, str]]:
    """node id -> ('passed' | 'failed' | 'skipped', the failure's text) from pytest's junit XML (xunit1 family)."""
    out = {}
    for case in ET.parse(junit_xml).iter("testcase"):
        node = f"{case.get('file')}::{case.get('name')}"
        bad = [c for c in case if c.tag in ("failure", "error")]
        if bad:
            out[node] = ("failed", "\n".join(f"{c.get('message', '')}\n{c.text or ''}" for c in bad))
        else:
            out[node] = ("skipped" if case.find("skipped") is not None else "passed", "")
    return out


def graded_by(spec: str, node: str) -> bool:
    return node == spec or node.startswith(spec + "[")


def first_line(number: int, node: str, text: str) -> str:
    named = re.search(r"NotImplementedError: exercise (\d+)", text)
    if named and int(named[1]) == number:
        why = f"exercise {number} is not written yet"
    elif named:
        why = f"needs exercise {named[1]} first"
    else:
        why = next((line.strip() for line in text.splitlines() if line.strip()), "failed")
    line = f"{node.split('::')[1]}: {why}"
    return line if len(line) <= 100 else line[:97] + "..."


def check(directory: str, number: int | None) -> int:
    chosen = [BY_NUMBER[number]] if number else EXERCISES
    python = os.path.join(directory, ".venv", "bin", "python")
    if not os.path.exists(python):  # a copy made where no .venv existed: build one, as make test would
        print(f"{directory} has no .venv: building it with `make .venv/.installed` (once; pip, several minutes)")
        if subprocess.run(["make", ".venv/.installed"], cwd=directory).returncode:
            fail(f"could not build {directory}/.venv (above)")
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "junit.xml")
        env = os.environ | {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run([python, "-m", "pytest", "-q", "--tb=line", "-p", "no:cacheprovider", "-o",
                               "junit_family=xunit1", f"--junitxml={xml}", *(t for e in chosen for t in e.tests)],
                              cwd=directory, env=env, capture_output=True, text=True)
        if proc.returncode not in (0, 1) or not os.path.exists(xml):
            print(proc.stdout[-3000:] + proc.stderr[-3000:])
            fail(f"pytest could not run the tests in {directory} (above)")
        found = results(xml)
    print(f"{'exercise':<44}{'passed':>8}  first failure")
    done, first = 0, None
    for e in chosen:
        mine = {node: r for node, r in found.items() if any(graded_by(t, node) for t in e.tests)}
        ok = sum(outcome == "passed" for outcome, _ in mine.values())
        failed = [node for node, (outcome, _) in mine.items() if outcome != "passed"]
        done += ok == len(mine) > 0
        first = first or (failed[0] if failed else None)
        print(f"{e.number:>2}  {e.name:<40}{f'{ok}/{len(mine)}':>8}  "
              + (first_line(e.number, failed[0], found[failed[0]][1]) if failed else "-"))
    print(f"{done} of {len(chosen)} exercise(s) pass all their tests"
          + (f"; the first failure in full: .venv/bin/python -m pytest '{first}'" if first else ""))
    return 0 if done == len(chosen) else 1


def main(argv: list[str]) -> int:
    listing = "\n".join(textwrap.fill(f"{e.number}. {e.name}: {e.teaches}", 116, initial_indent="  ",
                                       subsequent_indent="     ") for e in EXERCISES)
    p = argparse.ArgumentParser(prog="exercises.py", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description=__doc__.split("\n\n")[0].strip(), epilog="exercises:\n" + listing)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="write a student copy of this repository to DIR")
    m.add_argument("dir")
    m.add_argument("numbers", nargs="*", type=int, help="the exercises to cut out (default: all)")
    c = sub.add_parser("check", help="run the tests of exercise N (default: all) in DIR (default: .)")
    c.add_argument("dir", nargs="?", default=".")
    c.add_argument("number", nargs="?", type=int)
    s = sub.add_parser("solve", help="paste this repository's solutions back into the student copy DIR")
    s.add_argument("dir")
    s.add_argument("numbers", nargs="*", type=int, help="the exercises to solve (default: all)")
    args = p.parse_args(argv)
    if args.command == "check" and args.number is None and args.dir.isdigit():  # `check 2`: in the copy here
        args.dir, args.number = ".", int(args.dir)
    numbers = [args.number] if args.command == "check" else args.numbers
    if any(n is not None and n not in BY_NUMBER for n in numbers):
        fail(f"exercises are numbered 1 to {len(EXERCISES)}, got {numbers}")
    if args.command != "make" and not os.path.isdir(args.dir):
        fail(f"{args.dir} is not a directory")
    if args.command == "check":
        return check(args.dir, args.number)
    (make if args.command == "make" else solve)(args.dir, sorted(set(numbers)) or list(BY_NUMBER))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
