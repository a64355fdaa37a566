"""Running the CLI in-process and checking its one-line refusals (shared by the reliability probes)."""

from __future__ import annotations

import re

from s3prl_emoaware.cli.main import main


def run_cli(capsys, argv):
    """(exit status, stderr) of ``s3prl-emoaware ARGV`` run in-process."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *names: str) -> str:
    """Exit status 2, no traceback, exactly one ``s3prl-emoaware: error:`` line, holding every one of ``names``."""
    assert code == 2, err
    assert "Traceback" not in err
    # a progress bar may have left its line open: the error is what follows the marker, up to the line's end
    lines = re.findall(r"s3prl-emoaware: error: [^\r\n]*", err)
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]
