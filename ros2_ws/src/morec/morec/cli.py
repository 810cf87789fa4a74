"""`morec`, the command line of morec-stack. `morec up` starts ROS 2 nodes (morec.runner) without importing the
learning stack, so a robot computer with only the nodes' dependencies runs it, and starts at once; every other
command is in morec.commands (`morec --help` lists them)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["up"]:
        from .runner import main as up

        return up(argv[1:])
    from .commands import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
