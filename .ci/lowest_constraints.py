"""Print pip constraints pinning every direct dependency to its lower bound: ``name==floor``, one a line.

``make lowest`` installs the project with these constraints in a separate virtualenv and runs the fast
tests, so a lower bound in pyproject.toml that the code has outgrown fails CI instead of a user's install.
Every dependency of ``[project] dependencies`` and the ``test`` extra with a ``>=`` bound is pinned to it;
one without a lower bound is left to the resolver. A bound that is not a real release fails the install.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def floors(pyproject: Path, extras: tuple[str, ...] = ("test",)) -> dict[str, str]:
    """``{name: lowest allowed version}`` of the direct dependencies that have a ``>=`` bound."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    out: dict[str, str] = {}
    for req in reqs:
        match = REQUIREMENT.match(req.split(";")[0])
        if not match:
            raise ValueError(f"cannot read the requirement {req!r}")
        name, _, spec = match.groups()
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if part.startswith(">="):
                out[name] = part[2:].strip()
    return out


def main() -> int:
    pyproject = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "pyproject.toml"
    for name, version in floors(pyproject).items():
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
