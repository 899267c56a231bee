"""Write requirements.lock: the exact version of every package gridcrew[dev,bench] needs, read from the venv.

The lock is the dependency closure of the installed project (runtime, dev/test and bench extras), walked through
the installed metadata, so a package installed by hand into the venv (a profiler, say) is not locked. The project
itself and pip/setuptools/wheel are left out. `make install` installs with `-c requirements.lock`.

Run with the venv's Python: `make lock` (= `.venv/bin/python tools/lock_deps.py`).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import platform
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "gridcrew"
EXTRAS = ("dev", "bench")
EXCLUDED = {"pip", "setuptools", "wheel", PROJECT}
ROOT = Path(__file__).resolve().parent.parent

HEADER = """\
# Exact versions of gridcrew's runtime, dev/test and bench dependencies ({extras}), used by `make install`
# as a constraint file (pip install -c requirements.lock). Generated from the installed .venv on {platform}
# (CPython {python}); do not edit by hand. Regenerate with:
#     make lock            (= .venv/bin/python tools/lock_deps.py)
# To move a pin: `.venv/bin/pip install -U <package>` (or change pyproject.toml and
# `.venv/bin/pip install -e '.[dev,bench]'` without -c), then `make lock`, `make audit`, `make test`.
"""


def closure(project: str, extras: tuple[str, ...]) -> dict[str, str]:
    """Canonical name -> installed version of every distribution `project[extras]` needs, transitively."""
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    found: dict[str, set[str]] = {}  # name -> extras already walked
    pending: list[tuple[str, frozenset[str]]] = [(canonicalize_name(project), frozenset(extras))]
    while pending:
        name, wanted = pending.pop()
        if name in found and wanted <= found[name]:
            continue
        dist = installed.get(name)
        if dist is None:
            raise SystemExit(f"{name} is required but not installed in {sys.prefix}: run `make install` first")
        walked = found.setdefault(name, set())
        walked |= wanted
        for line in dist.requires or []:
            req = Requirement(line)
            # A requirement counts when its marker holds for this interpreter with no extra or one we asked for.
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *sorted(walked))):
                pending.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {name: installed[name].version for name in found if name not in EXCLUDED}


def render(pins: dict[str, str]) -> str:
    header = HEADER.format(
        extras=", ".join(EXTRAS), platform=f"{platform.system()} {platform.machine()}",
        python=platform.python_version(),
    )
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "requirements.lock")
    args = parser.parse_args(argv)
    pins = closure(PROJECT, EXTRAS)
    text = render(pins)
    # Unchanged, the file keeps its mtime: `make` would otherwise reinstall the venv for nothing.
    changed = not args.output.exists() or args.output.read_text() != text
    if changed:
        args.output.write_text(text)
    print(f"{args.output}: {len(pins)} pins{'' if changed else ', unchanged'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
