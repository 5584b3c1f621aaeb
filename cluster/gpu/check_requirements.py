"""Check that every requirement of ``lanepipe[EXTRA,...]`` (its own and, one level down, those its requirements'
extras add, e.g. ``ray[default,serve]``) is installed in a version that satisfies it, without any index: the GPU
install trial on a machine that can reach nothing (``cluster/gpu/device_calls.sh`` B).

    python3 cluster/gpu/check_requirements.py gpu          # exit 1 when something is missing or too old
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def project_requirements(extras: set[str]) -> list[Requirement]:
    """The project's requirements with ``extras`` (self-references such as ``lanepipe[sam2]`` expanded)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name, optional = project["name"], project.get("optional-dependencies", {})
    reqs = [Requirement(r) for r in project["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in map(Requirement, optional.get(extra, [])):
            if r.name == name:
                todo.extend(r.extras)
            else:
                reqs.append(r)
    return reqs


def extra_requirements(req: Requirement) -> list[Requirement]:
    """What ``req``'s extras add (from the installed distribution's metadata); none when it is not installed."""
    try:
        declared = metadata.requires(req.name) or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for line in declared:
        r = Requirement(line)
        if r.marker is not None and any(r.marker.evaluate({"extra": e}) for e in req.extras) \
                and not r.marker.evaluate({"extra": ""}):
            r.marker = None  # it applies here: keep name, extras and versions
            out.append(r)
    return out


def check(reqs: list[Requirement]) -> list[tuple[str, str, str]]:
    """``(requirement, installed version or '-', 'ok' | 'missing' | 'version')`` per requirement."""
    rows, seen = [], set()
    for r in [*reqs, *(x for q in reqs for x in extra_requirements(q))]:
        if str(r) in seen or (r.marker is not None and not r.marker.evaluate({"extra": ""})):
            continue
        seen.add(str(r))
        try:
            version = metadata.version(r.name)
        except metadata.PackageNotFoundError:
            rows.append((str(r), "-", "missing"))
            continue
        rows.append((str(r), version, "ok" if r.specifier.contains(version, prereleases=True) else "version"))
    return rows


def main() -> int:
    extras = {e for arg in sys.argv[1:] for e in arg.split(",") if e}
    rows = check(project_requirements(extras))
    for req, version, state in rows:
        sys.stdout.write(f"{state:8} {version:14} {req}\n")
    bad = [r for r in rows if r[2] != "ok"]
    name = f"lanepipe[{','.join(sorted(extras))}]"
    sys.stdout.write(f"{name}: {len(rows) - len(bad)}/{len(rows)} requirements satisfied\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
