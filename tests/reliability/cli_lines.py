"""Running the CLI in-process and checking its one-line refusals (shared by the reliability probes)."""

from __future__ import annotations

from s3prl_emoaware.cli.main import main


def run_cli(capsys, argv):
    """(exit status, stderr) of ``s3prl-emoaware ARGV`` run in-process."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *names: str) -> str:
    """Exit status 2, no traceback, exactly one ``s3prl-emoaware: error:`` line, holding every one of ``names``."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("s3prl-emoaware: error:")]
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]
