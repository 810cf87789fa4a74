"""The check every command-line error test shares: `morec` exits non-zero with one line, no traceback."""

import pytest

from morec.cli import main


def error_of(argv, capsys) -> str:
    """Run `morec argv`, expect it to fail, and return its one-line message."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code not in (0, None)
    message = exc.value.code if isinstance(exc.value.code, str) else capsys.readouterr().err
    assert "Traceback" not in message and len(message.strip().splitlines()) == 1
    return message.strip()
