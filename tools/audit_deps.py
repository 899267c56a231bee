"""Check every pin of requirements.lock against known security advisories (`make audit`).

Sources, in this order:

1. pip-audit (`pip-audit -r requirements.lock --no-deps --disable-pip`), with its PyPI service and then its OSV
   service, when it can audit every pin. Where PyPI's per-version JSON API does not answer, pip-audit skips every
   pin and still prints "No known vulnerabilities found" with exit 0: that is no audit, so a skipped pin sends
   us to the snapshot.
2. The snapshot committed in tools/advisories/: one OSV record per advisory (`<ID>.json`) and `index.json`,
   which says when it was taken and, for every pin, which release it looked at.

`--refresh` rebuilds the snapshot from https://pypi.org/pypi/<name>/json. That endpoint lists the advisories of
the package's latest release only, so the snapshot covers a pin only when the pin was the latest release on the
snapshot date; for an older pin it knows only the advisories still open on the latest release. The audit names
the pins it does not cover. Exit status: 0 no finding, 1 findings, 2 the audit could not run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
ADVISORIES = Path(__file__).resolve().parent / "advisories"
INDEX = "index.json"
PYPI_JSON = "https://pypi.org/pypi/{name}/json"
PIP_AUDIT_SERVICES = ("pypi", "osv")


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    fixed_in: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def __str__(self) -> str:
        fixed = f"fixed in {', '.join(self.fixed_in)}" if self.fixed_in else "no fixed release known"
        return f"{self.package} {self.version}: {self.id} ({fixed})"


@dataclass
class Report:
    source: str
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)  # what the source did not cover, why a source was not used


# --- requirements.lock -------------------------------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, str]:
    """Canonical name -> pinned version; every requirement line must be `name==version`."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip() or any(c in version for c in "<>=!~;,"):
            raise ValueError(f"{path}:{number}: not an exact pin `name==version`: {raw!r}")
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


# --- OSV range evaluation ----------------------------------------------------------------------------------------

# Events at one version: introduced first, so a range `introduced X, fixed X` affects nothing.
_EVENT_ORDER = {"introduced": 0, "last_affected": 1, "fixed": 2}


def _event_version(value: str) -> Version:
    return Version("0") if value == "0" else Version(value)


def in_range(version: Version, events: Iterable[Mapping[str, str]]) -> bool:
    """Whether `version` lies in an OSV ECOSYSTEM range: the events in version order, as the OSV spec evaluates them
    (introduced: affected from here; fixed: not from here; last_affected: not above here; limit: ignored)."""
    ordered: list[tuple[Version, int, str]] = []
    for event in events:
        for kind, value in event.items():
            if kind in _EVENT_ORDER:
                ordered.append((_event_version(value), _EVENT_ORDER[kind], kind))
    affected = False
    for at, _, kind in sorted(ordered):
        # introduced and fixed take effect at their version, last_affected just above it.
        reached = version > at if kind == "last_affected" else version >= at
        if reached:
            affected = kind == "introduced"
    return affected


def _same_version(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def matching_affected(record: Mapping[str, Any], package: str, version: str) -> list[Mapping[str, Any]]:
    """The `affected[]` entries of an OSV record that put PyPI `package` at `version` in scope (none: unaffected)."""
    if record.get("withdrawn"):
        return []
    name = canonicalize_name(package)
    parsed = Version(version)
    hits = []
    for affected in record.get("affected", []):
        pkg = affected.get("package", {})
        if pkg.get("ecosystem") != "PyPI" or canonicalize_name(pkg.get("name", "")) != name:
            continue
        listed = any(_same_version(version, v) for v in affected.get("versions", []))
        ranged = any(
            in_range(parsed, r.get("events", [])) for r in affected.get("ranges", []) if r.get("type") == "ECOSYSTEM"
        )
        if listed or ranged:
            hits.append(affected)
    return hits


def is_affected(record: Mapping[str, Any], package: str, version: str) -> bool:
    return bool(matching_affected(record, package, version))


def fixed_versions(affected: Iterable[Mapping[str, Any]], version: str) -> tuple[str, ...]:
    """Releases above `version` that fix it: the ranges' `fixed` events, else what the source listed as fixed_in."""
    fixed: set[str] = set()
    for entry in affected:
        for r in entry.get("ranges", []):
            if r.get("type") == "ECOSYSTEM":  # GIT ranges name commits, not releases
                fixed |= {e["fixed"] for e in r.get("events", []) if "fixed" in e and _is_later(e["fixed"], version)}
        fixed |= {v for v in entry.get("database_specific", {}).get("fixed_in", []) if _is_later(v, version)}
    return tuple(sorted(fixed, key=Version))


# --- the committed snapshot --------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    directory: Path
    index: dict[str, Any]
    records: list[dict[str, Any]]

    @classmethod
    def load(cls, directory: Path = ADVISORIES) -> Snapshot:
        index = json.loads((directory / INDEX).read_text())
        records = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json")) if p.name != INDEX]
        return cls(directory, index, records)

    @property
    def taken(self) -> datetime:
        return datetime.strptime(self.index["snapshot_date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    def coverage_gap(self, package: str, version: str) -> str | None:
        """Why the snapshot does not know every advisory of this pin, or None when it does."""
        entry = self.index.get("packages", {}).get(package)
        if entry is None or not _same_version(entry.get("locked", ""), version):
            return f"{package} {version}: not in the snapshot (the lock changed since; run --refresh)"
        if entry.get("error"):
            return f"{package} {version}: PyPI did not answer on the snapshot date ({entry['error']})"
        if not entry.get("covered"):
            return (
                f"{package} {version}: latest release on the snapshot date was {entry.get('latest')}; only advisories "
                "still open on it are known"
            )
        return None


def audit_snapshot(pins: Mapping[str, str], snapshot: Snapshot) -> Report:
    findings = []
    for package, version in sorted(pins.items()):
        for record in snapshot.records:
            hits = matching_affected(record, package, version)
            if hits:
                fixed, aliases = fixed_versions(hits, version), tuple(record.get("aliases", []))
                findings.append(Finding(package, version, record["id"], fixed, aliases))
    gaps = [gap for package, version in sorted(pins.items()) if (gap := snapshot.coverage_gap(package, version))]
    age = (datetime.now(UTC) - snapshot.taken).days
    notes = [
        f"the snapshot is {age} days old: advisories published since are not in it (--refresh)",
        f"it covers {len(pins) - len(gaps)} of {len(pins)} pins completely (as PyPI's data stood that day)",
    ]
    if gaps:
        notes.append(f"{len(gaps)} pins not covered completely:")
        notes += [f"  {gap}" for gap in gaps]
    where = snapshot.directory.resolve()
    shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
    source = f"advisory snapshot {shown}/ taken {snapshot.index['snapshot_date']} from {snapshot.index.get('source')}"
    return Report(source, findings, notes)


def _is_later(candidate: str, than: str) -> bool:
    try:
        return Version(candidate) > Version(than)
    except InvalidVersion:
        return False


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.load(answer)


def refresh_snapshot(pins: Mapping[str, str], directory: Path = ADVISORIES, timeout: float = 20) -> Snapshot:
    """Rebuild the snapshot from PyPI's project JSON, which lists the advisories of the latest release only: each
    record says exactly that (versions: [latest]); a fixed release above it becomes a range."""
    taken = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    packages: dict[str, dict[str, Any]] = {}
    records: dict[str, dict[str, Any]] = {}
    for package, version in sorted(pins.items()):
        try:
            project = _get_json(PYPI_JSON.format(name=package), timeout)
        except (urllib.error.URLError, TimeoutError, ValueError) as error:
            packages[package] = {"locked": version, "error": str(error)}
            continue
        latest = project["info"]["version"]
        vulns = [v for v in project.get("vulnerabilities") or [] if not v.get("withdrawn")]
        packages[package] = {
            "locked": version, "latest": latest, "covered": _same_version(version, latest),
            "advisories": sorted(v["id"] for v in vulns),
        }
        for vuln in vulns:
            fixed_in = list(vuln.get("fixed_in") or [])
            later_fixes = sorted((f for f in fixed_in if _is_later(f, latest)), key=Version)
            affected: dict[str, Any] = {
                "package": {"ecosystem": "PyPI", "name": package},
                "versions": [latest],
                "database_specific": {"fixed_in": fixed_in},
            }
            if later_fixes:
                events = [{"introduced": latest}, {"fixed": later_fixes[0]}]
                affected["ranges"] = [{"type": "ECOSYSTEM", "events": events}]
            record = records.setdefault(vuln["id"], {
                "schema_version": "1.6.0", "id": vuln["id"], "modified": taken,
                "aliases": vuln.get("aliases") or [], "summary": vuln.get("summary") or "",
                "details": vuln.get("details") or "",
                "references": [{"type": "ADVISORY", "url": vuln["link"]}] if vuln.get("link") else [],
                "affected": [],
            })
            record["affected"].append(affected)
    if all("error" in entry for entry in packages.values()):
        raise RuntimeError(f"PyPI answered for none of {len(pins)} pins; the snapshot is left as it was")
    index = {
        "snapshot_date": taken,
        "source": "https://pypi.org/pypi/<name>/json (`vulnerabilities`: advisories of the latest release only)",
        "lock": "requirements.lock",
        "packages": packages,
    }
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.json"):
        old.unlink()
    for record in records.values():
        (directory / f"{record['id']}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    (directory / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return Snapshot(directory, index, list(records.values()))


# --- pip-audit ---------------------------------------------------------------------------------------------------


def run_pip_audit(lock: Path, service: str, timeout: float = 15) -> Report | str:
    """pip-audit's verdict on the lock, or why it cannot give one (not installed, unreachable, pins skipped)."""
    if importlib.util.find_spec("pip_audit") is None:
        return "pip-audit is not installed"
    command = [
        sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip", "--format", "json",
        "--progress-spinner", "off", "--vulnerability-service", service, "--timeout", str(timeout),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return f"pip-audit ({service}) timed out"
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"pip-audit ({service}) failed: {last[:200]}"
    dependencies = result.get("dependencies", [])
    skipped = [d for d in dependencies if "skip_reason" in d]
    if skipped or not dependencies:
        reason = skipped[0]["skip_reason"] if skipped else "no dependency audited"
        audited = len(dependencies) - len(skipped)
        return f"pip-audit ({service}) audited {audited} of {len(dependencies)} pins ({reason})"
    findings = [
        Finding(canonicalize_name(d["name"]), d["version"], v["id"], tuple(v.get("fix_versions", [])),
                tuple(v.get("aliases", [])))
        for d in dependencies for v in d.get("vulns", [])
    ]
    return Report(f"pip-audit, {service} service (live data)", findings)


# --- command line ------------------------------------------------------------------------------------------------


def audit(lock: Path, source: str, advisories: Path) -> Report:
    """The report of the first source that can audit every pin (see the module docstring)."""
    pins = read_lock(lock)
    unused: list[str] = []
    if source in ("auto", "pip-audit"):
        for service in PIP_AUDIT_SERVICES:
            outcome = run_pip_audit(lock, service)
            if isinstance(outcome, Report):
                return outcome
            unused.append(outcome)
        if source == "pip-audit":
            raise RuntimeError("; ".join(unused))
    report = audit_snapshot(pins, Snapshot.load(advisories))
    report.notes[:0] = [f"not used: {reason}" for reason in unused]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--source", choices=("auto", "pip-audit", "snapshot"), default="auto",
                        help="auto: pip-audit when it can audit every pin, else the snapshot (default)")
    parser.add_argument("--advisories", type=Path, default=ADVISORIES, help="the snapshot directory")
    parser.add_argument("--refresh", action="store_true",
                        help="rebuild the snapshot from PyPI's project JSON first (needs https://pypi.org)")
    args = parser.parse_args(argv)
    try:
        if args.refresh:
            snapshot = refresh_snapshot(read_lock(args.lock), args.advisories)
            print(f"snapshot rebuilt: {len(snapshot.records)} advisories, {snapshot.index['snapshot_date']}")
        report = audit(args.lock, args.source, args.advisories)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"audit failed: {error}", file=sys.stderr)
        return 2
    print(f"source: {report.source}")
    for note in report.notes:
        print(note)
    if not report.findings:
        print("no known advisory applies to requirements.lock")
        return 0
    print(f"{len(report.findings)} known advisories apply:")
    for finding in report.findings:
        print(f"  {finding}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
