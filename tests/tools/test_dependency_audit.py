"""Specification of the dependency audit (tools/audit_deps.py): how an OSV record's ranges decide whether a pinned
release is affected, and that no advisory of the committed snapshot applies to requirements.lock. Offline: the
snapshot is read from the repository, pip-audit is never started."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _load_audit_deps() -> ModuleType:
    # tools/ is not an installed package, and `pytest` (unlike `python -m pytest`) leaves the checkout off sys.path.
    path = Path(__file__).resolve().parents[2] / "tools" / "audit_deps.py"
    spec = importlib.util.spec_from_file_location("audit_deps", path)
    assert spec and spec.loader
    module = sys.modules.setdefault("audit_deps", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


audit_deps = _load_audit_deps()
Snapshot, audit_snapshot, read_lock = audit_deps.Snapshot, audit_deps.audit_snapshot, audit_deps.read_lock
fixed_versions, matching_affected = audit_deps.fixed_versions, audit_deps.matching_affected
is_affected = audit_deps.is_affected


def osv(*affected: dict[str, Any], id: str = "GHSA-test-0001", **fields: Any) -> dict[str, Any]:
    return {"id": id, "aliases": ["CVE-2099-0001"], "affected": list(affected), **fields}


def pypi(name: str, *events: dict[str, str], versions: tuple[str, ...] = (), kind: str = "ECOSYSTEM") -> dict:
    entry: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": name}, "versions": list(versions)}
    if events:
        entry["ranges"] = [{"type": kind, "events": list(events)}]
    return entry


# --- range evaluation --------------------------------------------------------------------------------------------


def test_introduced_fixed_affects_from_introduced_up_to_but_not_including_fixed() -> None:
    record = osv(pypi("demo", {"introduced": "1.0"}, {"fixed": "1.4.2"}))
    assert [v for v in ["0.9", "1.0", "1.0.0", "1.4.1", "1.4.2rc1", "1.4.2", "1.5", "2.0"] if is_affected(
        record, "demo", v)] == ["1.0", "1.0.0", "1.4.1", "1.4.2rc1"]


def test_introduced_zero_means_every_release_before_the_fix() -> None:
    record = osv(pypi("demo", {"introduced": "0"}, {"fixed": "2.0"}))
    assert is_affected(record, "demo", "0.0.1")
    assert is_affected(record, "demo", "1.99")
    assert not is_affected(record, "demo", "2.0")


def test_several_intervals_in_one_range_leave_the_gaps_between_them_unaffected() -> None:
    record = osv(pypi("demo", {"introduced": "0"}, {"fixed": "1.26.17"}, {"introduced": "2.0.0"}, {"fixed": "2.0.6"}))
    assert is_affected(record, "demo", "1.26.16")
    assert not is_affected(record, "demo", "1.26.17")
    assert not is_affected(record, "demo", "1.30")
    assert is_affected(record, "demo", "2.0.5")
    assert not is_affected(record, "demo", "2.0.6")


def test_events_are_evaluated_in_version_order_whatever_order_the_record_lists_them() -> None:
    record = osv(pypi("demo", {"fixed": "2.0.6"}, {"introduced": "2.0.0"}, {"fixed": "1.26.17"}, {"introduced": "0"}))
    assert is_affected(record, "demo", "1.0")
    assert not is_affected(record, "demo", "1.30")
    assert is_affected(record, "demo", "2.0.1")


def test_last_affected_includes_that_release_and_nothing_after_it() -> None:
    record = osv(pypi("demo", {"introduced": "2.0"}, {"last_affected": "2.3.1"}))
    assert not is_affected(record, "demo", "1.9")
    assert is_affected(record, "demo", "2.3.1")
    assert not is_affected(record, "demo", "2.3.1.post1")
    assert not is_affected(record, "demo", "2.3.2")


def test_an_explicit_versions_list_affects_exactly_those_releases() -> None:
    record = osv(pypi("demo", versions=("3.0.0", "3.1")))
    assert is_affected(record, "demo", "3.0.0")
    assert is_affected(record, "demo", "3.0")  # PEP 440: 3.0 and 3.0.0 are one release
    assert is_affected(record, "demo", "3.1.0")
    assert not is_affected(record, "demo", "3.0.1")


def test_a_version_outside_every_range_and_list_is_not_affected() -> None:
    record = osv(
        pypi("demo", {"introduced": "1.0"}, {"fixed": "1.1"}),
        pypi("demo", {"introduced": "3.0"}, {"last_affected": "3.2"}, versions=("5.0",)),
    )
    assert [v for v in ["0.5", "1.0", "1.5", "3.1", "4.0", "5.0", "6.0"] if is_affected(record, "demo", v)] == [
        "1.0", "3.1", "5.0",
    ]


def test_only_the_named_pypi_package_is_affected_with_its_name_normalised() -> None:
    record = osv(pypi("PyYAML", {"introduced": "0"}, {"fixed": "5.4"}))
    assert is_affected(record, "pyyaml", "5.3.1")
    assert not is_affected(record, "yaml", "5.3.1")
    npm = osv({"package": {"ecosystem": "npm", "name": "pyyaml"}, "ranges": [
        {"type": "SEMVER", "events": [{"introduced": "0"}]}]})
    assert not is_affected(npm, "pyyaml", "5.3.1")


def test_git_ranges_and_withdrawn_records_affect_nothing() -> None:
    git = osv(pypi("demo", {"introduced": "0"}, {"fixed": "74ea7cf7a6a27a4eeb2ae24e162bcc942a6706d5"}, kind="GIT"))
    assert not is_affected(git, "demo", "1.0")
    withdrawn = osv(pypi("demo", {"introduced": "0"}), withdrawn="2099-01-01T00:00:00Z")
    assert not is_affected(withdrawn, "demo", "1.0")


def test_the_fixed_releases_named_are_those_above_the_pin() -> None:
    record = osv(pypi("demo", {"introduced": "0"}, {"fixed": "1.26.17"}, {"introduced": "2.0.0"}, {"fixed": "2.0.6"}))
    assert fixed_versions(matching_affected(record, "demo", "1.26.4"), "1.26.4") == ("1.26.17", "2.0.6")
    assert fixed_versions(matching_affected(record, "demo", "2.0.1"), "2.0.1") == ("2.0.6",)


# --- the command ----------------------------------------------------------------------------------------------


def test_a_finding_is_printed_as_package_version_id_fixed_in_and_fails_the_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("# header\nDemo_Pkg==1.0\nother==2.0\n")
    advisories = tmp_path / "advisories"
    advisories.mkdir()
    (advisories / "GHSA-test-0001.json").write_text(
        json.dumps(osv(pypi("demo-pkg", {"introduced": "0"}, {"fixed": "1.1"})))
    )
    index = {"snapshot_date": "2099-01-01T00:00:00Z", "source": "test", "packages": {
        "demo-pkg": {"locked": "1.0", "latest": "1.0", "covered": True},
        "other": {"locked": "2.0", "latest": "2.1", "covered": False},
    }}
    (advisories / "index.json").write_text(json.dumps(index))

    status = audit_deps.main(["--lock", str(lock), "--source", "snapshot", "--advisories", str(advisories)])

    out = capsys.readouterr().out
    assert status == 1
    assert "taken 2099-01-01T00:00:00Z" in out
    assert "demo-pkg 1.0: GHSA-test-0001 (fixed in 1.1)" in out
    assert "covers 1 of 2 pins" in out and "other 2.0: latest release on the snapshot date was 2.1" in out


def test_a_pip_audit_run_that_skipped_pins_is_no_audit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # What pip-audit answers where PyPI's per-version API is missing: every pin skipped, exit 0.
    skipped = {"dependencies": [{"name": "absl-py", "skip_reason": "Dependency not found on PyPI"}], "fixes": []}
    monkeypatch.setattr(audit_deps.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout=json.dumps(skipped), stderr="No known vulnerabilities found"))
    outcome = audit_deps.run_pip_audit(tmp_path / "requirements.lock", "pypi")
    assert isinstance(outcome, str) and "audited 0 of 1 pins" in outcome


def test_a_pip_audit_run_that_audited_every_pin_gives_its_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    audited = {"dependencies": [
        {"name": "flask", "version": "0.5", "vulns": [{"id": "PYSEC-2019-179", "fix_versions": ["1.0"]}]},
        {"name": "six", "version": "1.17.0", "vulns": []},
    ], "fixes": []}
    monkeypatch.setattr(audit_deps.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, stdout=json.dumps(audited), stderr=""))
    outcome = audit_deps.run_pip_audit(Path("requirements.lock"), "pypi")
    assert isinstance(outcome, audit_deps.Report)
    assert [str(f) for f in outcome.findings] == ["flask 0.5: PYSEC-2019-179 (fixed in 1.0)"]


# --- requirements.lock against the committed snapshot -------------------------------------------------------------


def test_the_committed_snapshot_was_taken_for_the_current_lock() -> None:
    pins, snapshot = read_lock(audit_deps.LOCK), Snapshot.load()
    stale = [f"{name} {version}" for name, version in pins.items()
             if snapshot.index["packages"].get(name, {}).get("locked") != version]
    assert not stale, f"pins changed since the snapshot; run `.venv/bin/python tools/audit_deps.py --refresh`: {stale}"


def test_no_advisory_of_the_committed_snapshot_applies_to_requirements_lock() -> None:
    report = audit_snapshot(read_lock(audit_deps.LOCK), Snapshot.load())
    assert report.findings == [], "\n".join(map(str, report.findings))
