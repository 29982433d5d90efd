"""No Qt signal is connected straight to a method with optional parameters (issue 14, bug 1).

``button.clicked.connect(self.start)`` hands Qt's ``checked=False`` to ``start(steps=None)``: the *Train
now* button trained 0 steps that way. Signals carry arguments the slot may not expect; a method with
defaults takes them silently. Connect a lambda that passes what is meant instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

GUI = Path(__file__).resolve().parents[2] / "app" / "gui"


def _optional_params(fn: ast.FunctionDef) -> list[str]:
    args = fn.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    with_default = positional[len(positional) - len(args.defaults):] if args.defaults else []
    return [a for a in with_default if a != "self"]


def test_no_signal_feeds_an_optional_parameter():
    offenders = []
    for path in sorted(GUI.glob("*.py")):
        tree = ast.parse(path.read_text())
        for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
            methods = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}
            for call in [n for n in ast.walk(cls) if isinstance(n, ast.Call)]:
                if not (isinstance(call.func, ast.Attribute) and call.func.attr == "connect" and call.args):
                    continue
                target = call.args[0]
                if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                        and target.value.id == "self" and target.attr in methods):
                    optional = _optional_params(methods[target.attr])
                    if optional:
                        offenders.append(f"{path.name}:{call.lineno} connects self.{target.attr} "
                                         f"(optional {', '.join(optional)})")
    assert not offenders, "signals that would fill optional parameters:\n" + "\n".join(offenders)
