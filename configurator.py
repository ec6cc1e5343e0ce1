"""
nanoGPT-style configuration: a script's defaults are its globals; a bare argument names a config
file (plain Python assignments) and --key=value overrides one key. Unknown keys and values of the
wrong type are refused with one line naming the key and what is allowed.

    python train.py config/rins_small.py --batch_size=32 --eval_r=[1,2,3]
"""

import ast


def _coerce(key: str, value, default, source: str, prog: str):
    """Accept `value` for `key` only if it has the default's type (ints are fine for floats)."""
    expected = type(default)
    if expected is float and type(value) is int:
        return float(value)
    if type(value) is not expected:
        hint = "; write True or False" if expected is bool else ""
        raise SystemExit(f"{prog}: {key}={value!r} from {source} is of type {type(value).__name__}, "
                         f"but {key} must be of type {expected.__name__} (default {default!r}){hint}")
    return value


def configure(defaults: dict, argv: list[str], prog: str) -> dict:
    """Apply config files and --key=value overrides to `defaults` (a globals() dict) in place; return the changed keys."""
    keys = {k: v for k, v in defaults.items() if not k.startswith("_") and isinstance(v, (int, float, bool, str, list))}
    allowed = ", ".join(sorted(keys))
    changed = {}
    for arg in argv:
        if not arg.startswith("--"):
            try:
                with open(arg) as f:
                    code = compile(f.read(), arg, "exec")
            except OSError as e:
                raise SystemExit(f"{prog}: cannot read config file '{arg}' ({e.strerror}); pass an existing file such as config/rins_small.py")
            except SyntaxError as e:
                raise SystemExit(f"{prog}: config file '{arg}' line {e.lineno}: {e.msg}; config files hold plain assignments like n_layer = 8")
            scope = {}
            try:
                exec(code, {}, scope)
            except Exception as e:
                raise SystemExit(f"{prog}: config file '{arg}' failed: {type(e).__name__}: {e}")
            updates = {k: (v, f"config file '{arg}'") for k, v in scope.items() if not k.startswith("_")}
        else:
            key, eq, raw = arg[2:].partition("=")
            if not eq:
                raise SystemExit(f"{prog}: argument '{arg}' must look like --key=value")
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw  # a bare word is a string, e.g. --signature=A^rB
            updates = {key: (value, f"'{arg}'")}
        for key, (value, source) in updates.items():
            if key not in keys:
                raise SystemExit(f"{prog}: unknown config key '{key}' in {source}; allowed keys: {allowed}")
            value = _coerce(key, value, keys[key], source, prog)
            defaults[key] = changed[key] = value
    return changed
