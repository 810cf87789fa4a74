"""`morec up` is the process runner behind the CLI (the runner itself is tested in test_runner.py)."""

import subprocess
import sys

from morec.cli import main


def test_up_runs_the_named_config_through_the_runner(capsys):
    assert main(["up", "no_such_config", "--domain-id", "7"]) == 2
    out = capsys.readouterr().out
    assert "[runner] error: no config" in out and "no_such_config.yaml" in out


def test_up_does_not_import_the_learning_stack():
    """A robot computer runs `morec up` with the nodes' dependencies only (no torch), and it starts at once."""
    check = ("import sys; from morec.cli import main; code = main(['up', 'no_such_config']); "
             "assert code == 2 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
