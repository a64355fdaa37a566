"""The reliability suite: every test here is marked ``reliability``; each names its probe.

Every test carries ``@pytest.mark.probe(area=..., probe=..., behaviour=...)``: ``probe`` says what is
planted, ``behaviour`` what must happen (the message, the exit code, the files left). A parametrized test
may put ``{name}`` fields of its parameters (or ``{id}``, the parameter id) in those strings, or give
each ``pytest.param`` its own ``probe`` mark.

With ``RELIABILITY_REPORT=<path>`` set, the session writes one JSON record per test to ``<path>``
(area, probe, behaviour, outcome, and for a failure its first message line);
``scripts/reliability_table.py`` renders that file as docs/reliability.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPORT_ENV = "RELIABILITY_REPORT"
_HERE = Path(__file__).resolve().parent
_records: dict = {}


class _Fields(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def _probe_fields(item) -> dict:
    mark = item.get_closest_marker("probe")
    fields = {"area": "", "probe": "", "behaviour": ""}
    if mark is None:
        fields["probe"] = f"{item.name} (no probe mark)"
        return fields
    fields.update({k: str(v) for k, v in mark.kwargs.items() if k in fields})
    for key, value in zip(("area", "probe", "behaviour"), mark.args):
        fields[key] = str(value)
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        values = _Fields({k: v for k, v in callspec.params.items()})
        values["id"] = callspec.id
        fields = {k: v.format_map(values) if "{" in v else v for k, v in fields.items()}
    return fields


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.reliability)


def _first_line(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr or "")
    if isinstance(report.longrepr, tuple):  # skip: (path, line, reason)
        text = str(report.longrepr[2])
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def pytest_runtest_logreport(report):
    record = _records.get(report.nodeid)
    if record is None:
        return
    if report.failed and record["outcome"] != "failed":
        record["outcome"] = "failed"
        record["reason"] = f"{report.when}: {_first_line(report)}"
    elif report.skipped and record["outcome"] == "not run":
        xfail = hasattr(report, "wasxfail")
        record["outcome"] = "xfailed" if xfail else "skipped"
        record["reason"] = report.wasxfail if xfail else _first_line(report)
    elif report.when == "call" and report.passed and record["outcome"] == "not run":
        record["outcome"] = "passed"


def pytest_runtest_protocol(item, nextitem):
    if os.environ.get(REPORT_ENV) and _HERE in Path(str(item.path)).resolve().parents:
        _records[item.nodeid] = {"nodeid": item.nodeid, **_probe_fields(item), "outcome": "not run", "reason": ""}
    return None


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get(REPORT_ENV)
    if not target or not _records:
        return
    from s3prl_emoaware.utils.atomic import atomic_write_json

    atomic_write_json(target, {"exitstatus": int(exitstatus), "tests": list(_records.values())})
