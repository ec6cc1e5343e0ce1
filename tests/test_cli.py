"""
The command line of train.py and sample.py: the configurator, --help, the validation table, compile='auto'.

    python -m pytest tests/test_cli.py -v
"""

import ast
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from configurator import _documented, check, configure
from conftest import HERE, cli, data_args


def defaults(script: str) -> dict:
    """A script's config keys and defaults: its leading literal assignments, read, not run."""
    out = {}
    for node in ast.parse(open(os.path.join(HERE, script)).read()).body:
        if isinstance(node, ast.Assign):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                break
    return out


def key_lines(help_text: str) -> dict[str, str]:
    """key -> its line in --help's output."""
    return {line.split()[0]: line for line in help_text.splitlines() if line.startswith("  ") and line.split()}


# -----------------------------------------------------------------------------
# configure(): config files and --key=value overrides

def test_configurator_overrides_and_errors(tmp_path):
    defaults = {"n_layer": 8, "learning_rate": 1e-3, "signature": "AB", "compile": False, "eval_r": [1]}
    cfg_file = tmp_path / "c.py"
    cfg_file.write_text("# a config\nn_layer = 4\nsignature = 'A^rB'\n")
    argv = [str(cfg_file), "--learning_rate=1", "--eval_r=[1,2,3]", "--compile=True"]
    changed = configure(defaults, argv, "train.py")
    assert defaults == {"n_layer": 4, "learning_rate": 1.0, "signature": "A^rB", "compile": True, "eval_r": [1, 2, 3]}
    assert set(changed) == {"n_layer", "signature", "learning_rate", "eval_r", "compile"}
    assert configure(defaults, ["--signature=(AB)^r"], "train.py") == {"signature": "(AB)^r"}
    bad = [(["--n_layers=4"], "unknown config key 'n_layers'"), (["--n_layer=4.5"], "must be of type int"),
           (["--compile=yes"], "must be of type bool"), (["--n_layer"], "--key=value"),
           (["missing.py"], "cannot read config file"),
           ([str(tmp_path / "typo.py")], "unknown config key 'n_layr'"), ([str(tmp_path / "syntax.py")], "line 1")]
    (tmp_path / "typo.py").write_text("n_layr = 4\n")
    (tmp_path / "syntax.py").write_text("n_layer = = 4\n")
    for argv, fragment in bad:
        with pytest.raises(SystemExit) as err:
            configure(dict(defaults), argv, "train.py")
        assert fragment in str(err.value) and "\n" not in str(err.value), (argv, str(err.value))
    with pytest.raises(SystemExit, match="allowed keys: compile, eval_r, learning_rate, n_layer, signature"):
        configure(dict(defaults), ["--nope=1"], "train.py")


# -----------------------------------------------------------------------------
# --help


@pytest.mark.parametrize("script, sections", [("train.py", ["I/O", "data", "model", "recursion", "training", "system"]),
                                              ("sample.py", ["checkpoint", "sampling", "system"])])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_key_with_default_type_and_comment(script, sections, flag):
    p = cli(script, flag)
    assert p.returncode == 0 and not p.stderr, p.stderr
    headers = [line.split()[0] for line in p.stdout.splitlines() if line and not line[0].isspace()]
    assert [h for h in headers if h in sections] == sections, headers
    lines, docs = key_lines(p.stdout), _documented(os.path.join(HERE, script))[1]
    for key, default in defaults(script).items():
        value, kind = lines[key].split()[1:3]
        assert value == (f"{default:g}" if isinstance(default, float) and default >= 1e6 else repr(default)), key
        assert kind == ("bool" if key == "compile" else type(default).__name__), key  # compile: 'bool or str'
        assert docs[key][1] and docs[key][1] in lines[key], f"{key} has no comment"
    assert headers.index(sections[0]) < headers.index(sections[-1])  # in source order


def test_help_shows_the_comments_from_the_source():
    lines = key_lines(cli("train.py", "--help").stdout)
    assert "learning rate at the last iteration" in lines["min_lr"] and "0.0001" in lines["min_lr"]
    assert "'auto' = on for CUDA" in lines["compile"] and "bool or str" in lines["compile"]
    assert "FLOPs" in lines["flop_budget"] and "1e+15" in lines["flop_budget"]
    assert "extra inference depths" in lines["eval_r"] and "[1]" in lines["eval_r"]
    sample = key_lines(cli("sample.py", "--help").stdout)
    assert "0 = the depth the model was trained with" in sample["r"]
    assert "0 = greedy" in sample["temperature"] and "0.8" in sample["temperature"]


def test_help_after_a_config_file_shows_its_values():
    p = cli("train.py", "config/arena_rins.py", "--n_head=2", "--help")
    assert p.returncode == 0, p.stderr
    lines = key_lines(p.stdout)
    assert lines["n_layer"].split()[1] == "4" and "[default: 8]" in lines["n_layer"]  # from the config file
    assert lines["n_head"].split()[1] == "2" and "[default: 4]" in lines["n_head"]  # from the override
    assert lines["signature"].split()[1] == "'A^rB'" and "[default: 'AB']" in lines["signature"]
    assert "[default" not in lines["seed"]  # untouched keys show no default


def test_malformed_argument_points_to_help():
    p = cli("train.py", "--n_layer")
    assert p.returncode != 0 and p.stderr.strip().count("\n") == 0 and "--help" in p.stderr, p.stderr


# -----------------------------------------------------------------------------
# The validation table: one line per mistake, before any data is read

NEWLY_CHECKED = {
    "--min_lr=-0.001": "min_lr=-0.001 is not allowed; need min_lr >= 0",
    "--dropout=1.0": "dropout=1.0 is not allowed; need 0 <= dropout < 1",
    "--grad_clip=-1": "grad_clip=-1.0 is not allowed; need grad_clip >= 0",
    "--stochastic_p=1.5": "stochastic_p=1.5 is not allowed; need 0 <= stochastic_p < 1",
    "--beta2=1": "beta2=1.0 is not allowed; need 0 <= beta2 < 1",
    "--weight_decay=-0.1": "weight_decay=-0.1 is not allowed; need weight_decay >= 0",
    "--warmup_iters=-1": "warmup_iters=-1 is not allowed; need warmup_iters >= 0",
    "--patch_size=0": "patch_size=0 is not allowed; need patch_size >= 1",
    "--task=vision": "task='vision' is not allowed; need one of lm, vit, siglip",
    "--compile=yes": "compile='yes' is not allowed; need one of auto, True, False, model",
    "--rins_tower=left": "rins_tower='left' is not allowed; need one of image, text, both",
    # the model's own settings, as a new user with no data prepared tries them
    "--signature=BA": "bad signature 'BA': letters must first appear in alphabetical order (found BA); use capital",
    "--n_layer=7": "signature 'AB' at degree 1 cuts 7 layers into slices 1:1; use n_layer divisible by 2",
    "--n_head=5": "n_embd=256 must be divisible by n_head=5",
}


@pytest.fixture(scope="module")
def bad_runs():
    with ThreadPoolExecutor(2) as pool:
        futures = {arg: pool.submit(cli, "train.py", "--data_dir=/nonexistent", arg) for arg in NEWLY_CHECKED}
        return {arg: f.result() for arg, f in futures.items()}


@pytest.mark.parametrize("arg", list(NEWLY_CHECKED))
def test_bad_value_is_one_line_before_any_data(bad_runs, arg):
    p = bad_runs[arg]
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().startswith(f"train.py: {NEWLY_CHECKED[arg]}")  # not "no prepared dataset at ..."
    assert len(p.stderr.strip().splitlines()) == 1


def test_every_mistake_gets_its_own_line():
    p = cli("train.py", "--data_dir=/nonexistent", "--min_lr=-1", "--beta1=1.5", "--eval_r=[0]")
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [  # in the order of train.py's defaults
        "train.py: eval_r=[0] is not allowed; need a list of whole numbers, each at least 1",
        "train.py: min_lr=-1.0 is not allowed; need min_lr >= 0",
        "train.py: beta1=1.5 is not allowed; need 0 <= beta1 < 1"]


def test_sample_validates_before_loading_the_checkpoint():
    p = cli("sample.py", "--out_dir=/nonexistent", "--top_k=0")
    assert p.returncode != 0 and p.stderr.strip() == "sample.py: top_k=0 is not allowed; need top_k >= 1", p.stderr


def test_check_rules():
    rules = {"a": (">=", 1), "b": ("[)", (0, 1)), "c": ("in", ("x", "y")), "d": ("re", (r"\d+", "digits")),
             "e": ("each >=", 1)}
    assert check({"a": 1, "b": 0.0, "c": "x", "d": "12", "e": [1, 3]}, rules, "t") == []
    bad = check({"a": 0, "b": 1.0, "c": "z", "d": "1a", "e": [1, 2.5]}, rules, "t")
    assert bad == ["t: a=0 is not allowed; need a >= 1", "t: b=1.0 is not allowed; need 0 <= b < 1",
                   "t: c='z' is not allowed; need one of x, y", "t: d='1a' is not allowed; need digits",
                   "t: e=[1, 2.5] is not allowed; need a list of whole numbers, each at least 1"]
    with pytest.raises(AssertionError, match="without a rule"):
        check({"a": 1, "new_key": 2}, {"a": (">=", 1)}, "t")


def test_train_py_has_a_rule_for_every_key():
    source = open(os.path.join(HERE, "train.py")).read()
    table = next(n.value for n in ast.parse(source).body if isinstance(n, ast.Assign) and n.targets[0].id == "CHECKS")
    assert {k.value for k in table.keys} == set(defaults("train.py"))


# -----------------------------------------------------------------------------
# compile: 'auto' (on for CUDA only), True (each block), False or 'model' (the whole forward)


def test_compile_takes_auto_true_or_false():
    for value, expected in (("auto", "auto"), ("True", True), ("False", False)):
        cfg = {"compile": "auto"}
        configure(cfg, [f"--compile={value}"], "train.py", types={"compile": (bool, str)})
        assert cfg["compile"] == expected
    with pytest.raises(SystemExit, match="must be of type bool or str"):
        configure({"compile": "auto"}, ["--compile=1"], "train.py", types={"compile": (bool, str)})
    with pytest.raises(SystemExit, match="must be of type str"):  # without `types`, a str key stays a str
        configure({"compile": "auto"}, ["--compile=True"], "train.py")


@pytest.mark.parametrize("value, what", [("auto", None), ("True", "each block"), ("False", None),
                                         ("model", "the whole model")])
def test_compile_auto_is_off_on_cpu(char_data, value, what):
    p = cli("train.py", *data_args(char_data), "--device=cpu", "--dry_run=True", f"--compile={value}",
            "--n_layer=2", "--n_embd=16", "--n_head=2", "--block_size=16")
    assert p.returncode == 0, p.stderr
    compiling = [line for line in p.stdout.splitlines() if line.startswith("compiling")]
    assert compiling == ([f"compiling {what} (takes a minute)..."] if what else []), p.stdout
