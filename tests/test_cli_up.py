"""`morec up` is the process runner behind the CLI (the runner itself is tested in test_runner.py)."""

from morec.cli import main


def test_up_runs_the_named_config_through_the_runner(capsys):
    assert main(["up", "no_such_config", "--domain-id", "7"]) == 2
    out = capsys.readouterr().out
    assert "[runner] error: no config" in out and "no_such_config.yaml" in out
