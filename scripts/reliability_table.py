#!/usr/bin/env python
"""Run the reliability suite and render its probes as docs/reliability.md.

    PYTHONPATH=. python scripts/reliability_table.py [-o docs/reliability.md] [-- extra pytest args]

Every test under tests/reliability/ names its probe (``@pytest.mark.probe(area, probe, behaviour)``);
tests/reliability/conftest.py writes each one's outcome to the JSON file named by ``RELIABILITY_REPORT``,
and this script turns that file into a table (area | probe | behaviour | passes), written atomically.
The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from s3prl_emoaware.utils.atomic import atomic_write_text  # noqa: E402

_MARK = {"passed": "yes", "failed": "**no**", "skipped": "skipped", "xfailed": "**no** (xfail)", "not run": "not run"}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(report: dict, command: str) -> str:
    tests = sorted(report["tests"], key=lambda t: (t["area"], t["probe"], t["nodeid"]))
    passed = sum(t["outcome"] == "passed" for t in tests)
    lines = [
        "# Reliability probes",
        "",
        "Bad inputs and faults (issue 18) planted on generated data by `tests/reliability/`; each row is one",
        "test and what it asserts. Regenerate with:",
        "",
        "```",
        command,
        "```",
        "",
        f"{len(tests)} probes, {passed} pass.",
        "",
        "| area | probe | behaviour | passes |",
        "|---|---|---|---|",
    ]
    for t in tests:
        lines.append(
            f"| {_cell(t['area'])} | {_cell(t['probe'])} | {_cell(t['behaviour'])} | {_MARK.get(t['outcome'], t['outcome'])} |"
        )
    failing = [t for t in tests if t["outcome"] != "passed"]
    if failing:
        lines += ["", "## Not passing", ""]
        lines += [f"- `{t['nodeid']}` ({t['outcome']}): {_cell(t['reason'])}" for t in failing]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(REPO_ROOT / "docs" / "reliability.md"))
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "reliability.json"
        env = os.environ.copy()
        env["RELIABILITY_REPORT"] = str(report_path)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MPLBACKEND", "Agg")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/reliability", *args.pytest_args]
        rc = subprocess.call(cmd, cwd=REPO_ROOT, env=env)
        if not report_path.exists():
            print(
                f"reliability_table: pytest wrote no report (exit {rc}); {args.output} left unchanged", file=sys.stderr
            )
            return rc or 1
        report = json.loads(report_path.read_text())
    command = "PYTHONPATH=. python scripts/reliability_table.py"
    if args.pytest_args:
        command += " -- " + " ".join(shlex.quote(a) for a in args.pytest_args)
    atomic_write_text(args.output, render(report, command))
    tests = report["tests"]
    print(f"{args.output}: {len(tests)} probes, {sum(t['outcome'] == 'passed' for t in tests)} pass")
    return rc


if __name__ == "__main__":
    sys.exit(main())
