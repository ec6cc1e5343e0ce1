"""
nanoGPT-style configuration: a script's defaults are its globals; a bare argument names a config
file (plain Python assignments) and --key=value overrides one key. Unknown keys and values of the
wrong type are refused with one line naming the key and what is allowed; check() then applies the
script's table of allowed values. --help (or -h) lists every key with its current value, type and
the comment beside (or above) its default in the script, grouped under its '# --- name ---' lines.

    python train.py config/rins_small.py --batch_size=32 --eval_r=[1,2,3]
    python train.py config/rins_small.py --help
"""

import ast
import io
import re
import tokenize

SECTION = re.compile(r"#\s*---\s+([^-\s].*?)\s+---\s*(.*)$")  # "# --- I/O --- note" opens a group of keys


def _coerce(key: str, value, default, types: tuple, source: str, prog: str):
    """Accept `value` for `key` only if it has one of `types` (ints are fine for floats)."""
    if float in types and type(value) is int:
        return float(value)
    if type(value) not in types:
        hint = "; write True or False" if bool in types else ""
        raise SystemExit(f"{prog}: {key}={value!r} from {source} is of type {type(value).__name__}, "
                         f"but {key} must be of type {_type_name(types)} (default {default!r}){hint}")
    return value


def _type_name(types: tuple) -> str:
    return " or ".join(t.__name__ for t in types)


def _documented(path: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """The script's docstring, and key -> (section, comment) for its top-level assignments: the comment on the
    assignment's line, else the comment lines directly above it; the latest '# --- name ---' line names the section."""
    with open(path) as f:
        source = f.read()
    own_line, above = {}, {}  # line -> comment after code / comment alone on its line
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            alone = not tok.line[:tok.start[1]].strip()
            (above if alone else own_line)[tok.start[0]] = tok.string
    tree, docs = ast.parse(source), {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        section = next((" ".join(filter(None, m.groups())) for line in sorted(above, reverse=True)
                        if line < node.lineno and (m := SECTION.match(above[line]))), "")
        comment, line = own_line.get(node.lineno, ""), node.lineno - 1
        while not comment and line in above and not above[line].startswith("# --"):
            comment, line = " ".join(filter(None, (above[line], comment))), line - 1
        docs.setdefault(node.targets[0].id, (section, " ".join(comment.lstrip("# ").split())))
    return ast.get_docstring(tree) or "", docs


def _help(defaults: dict, keys: dict, types: dict, prog: str) -> str:
    """The script's docstring, then every key under its section: current value, type, comment, and the default
    where a config file or override changed it."""
    path = defaults.get("__file__")  # a globals() dict names its script; a plain dict (bench.py's) has no comments
    docstring, docs = _documented(path) if path else ("", {})
    lines = [docstring, f"\nusage: python {prog} [config_file.py ...] [--key=value ...] [--help]"]
    show = lambda v: f"{v:g}" if type(v) is float and abs(v) >= 1e6 else repr(v)  # noqa: E731 (1e+15, not 1000...0.0)
    for section in dict.fromkeys(docs.get(k, ("other",))[0] for k in keys):
        lines.append(f"\n{section}")
        for key in (k for k in keys if docs.get(k, ("other",))[0] == section):
            default = f"  [default: {show(keys[key])}]" if defaults[key] != keys[key] else ""
            lines.append(f"  {key:<27} {show(defaults[key]):<15} {_type_name(types.get(key, (type(keys[key]),))):<11} "
                         f"{docs.get(key, ('', ''))[1]}{default}")
    return "\n".join(lines).strip()


def configure(defaults: dict, argv: list[str], prog: str, types: dict | None = None) -> dict:
    """Apply config files and --key=value overrides to `defaults` (a globals() dict) in place; return the changed keys.
    `types` lets a key take more than its default's type, e.g. {"compile": (bool, str)} for True, False or 'auto'."""
    types = types or {}
    keys = {k: v for k, v in defaults.items() if not k.startswith("_") and isinstance(v, (int, float, bool, str, list))}
    allowed = ", ".join(sorted(keys))
    changed = {}
    for arg in argv:
        if arg in ("--help", "-h"):
            continue
        if not arg.startswith("--"):
            try:
                with open(arg) as f:
                    code = compile(f.read(), arg, "exec")
            except OSError as e:
                raise SystemExit(f"{prog}: cannot read config file '{arg}' ({e.strerror}); "
                                 "pass an existing file such as config/rins_small.py")
            except SyntaxError as e:
                raise SystemExit(f"{prog}: config file '{arg}' line {e.lineno}: {e.msg}; "
                                 "config files hold plain assignments like n_layer = 8")
            scope = {}
            try:
                exec(code, {}, scope)
            except Exception as e:
                raise SystemExit(f"{prog}: config file '{arg}' failed: {type(e).__name__}: {e}")
            updates = {k: (v, f"config file '{arg}'") for k, v in scope.items() if not k.startswith("_")}
        else:
            key, eq, raw = arg[2:].partition("=")
            if not eq:
                raise SystemExit(f"{prog}: argument '{arg}' must look like --key=value "
                                 f"(python {prog} --help lists the keys)")
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw  # a bare word is a string, e.g. --signature=A^rB
            updates = {key: (value, f"'{arg}'")}
        for key, (value, source) in updates.items():
            if key not in keys:
                raise SystemExit(f"{prog}: unknown config key '{key}' in {source}; allowed keys: {allowed} "
                                 f"(python {prog} --help explains each)")
            value = _coerce(key, value, keys[key], types.get(key, (type(keys[key]),)), source, prog)
            defaults[key] = changed[key] = value
    if "--help" in argv or "-h" in argv:  # after the config files, so their values show
        print(_help(defaults, keys, types, prog))
        raise SystemExit(0)
    return changed


def check(config: dict, rules: dict, prog: str) -> list[str]:
    """One line per key whose value breaks its rule: (">=", min), ("[)", (lo, hi)) for lo <= value < hi,
    ("in", choices), ("re", (pattern, meaning)) for strings, ("each >=", min) for a list of whole numbers."""
    assert set(rules) == set(config), f"config keys without a rule: {sorted(set(config) - set(rules))}"
    problems = []
    for key, (op, arg) in rules.items():
        value = config[key]
        if op == ">=":
            ok, allowed = value >= arg, f"{key} >= {arg}"
        elif op == "[)":
            ok, allowed = arg[0] <= value < arg[1], f"{arg[0]} <= {key} < {arg[1]}"
        elif op == "in":
            ok, allowed = value in arg, "one of " + ", ".join(map(str, arg))
        elif op == "re":
            ok, allowed = re.fullmatch(arg[0], value) is not None, arg[1]
        else:
            ok = all(type(v) is int and v >= arg for v in value)
            allowed = f"a list of whole numbers, each at least {arg}"
        if not ok:
            problems.append(f"{prog}: {key}={value!r} is not allowed; need {allowed}")
    return problems
