"""Run the bvvtok CLI and SIGKILL it just before its N-th step that changes a folder: a crash at an exact moment.

    python tests/kill_at.py N ARGS...   run `bvvtok ARGS...`, killed before step N
    python tests/kill_at.py 0 ARGS...   not killed: each step is listed on stderr as `moment K: what`
    python tests/kill_at.py -N ARGS...  paused before step N: prints `paused` on stdout, goes on when stdin closes

With KILL_AT_NO_EXCHANGE=1 in the environment, folders are replaced as on a file system without
an atomic exchange (renamed aside, then the new one renamed in).

The steps are the renames and removals bvvtok itself makes (os.rename, os.replace, and the folder
exchange and removals of bvvtok.commit); between any two of them a killed command must leave a
folder that is the old one or the new one. Counting only bvvtok's own calls keeps the numbering the
same from run to run (libraries may rename caches of their own).
"""

import os
import signal
import sys
from collections.abc import Callable


def main() -> None:
    stop, args = int(sys.argv[1]), sys.argv[2:]
    count = 0

    def counted(name: str, function: Callable) -> Callable:
        def step(*a, **k):
            nonlocal count
            if name == "remove":
                a = (list(a[0]),)
            if sys._getframe(1).f_globals.get("__name__", "").startswith("bvvtok") and a != ([],):
                count += 1
                if stop == 0:
                    shown = " ".join(os.path.basename(str(x)) for x in a[:2]) if name != "remove" else ""
                    print(f"moment {count}: {name} {shown}", file=sys.stderr, flush=True)
                elif count == stop:
                    os.kill(os.getpid(), signal.SIGKILL)
                elif count == -stop:
                    print("paused", flush=True)
                    sys.stdin.read()
            return function(*a, **k)

        return step

    import bvvtok.commit as commit

    if os.environ.get("KILL_AT_NO_EXCHANGE"):
        commit._exchange = lambda a, b: False
    os.rename = counted("rename", os.rename)
    os.replace = counted("replace", os.replace)
    commit._exchange = counted("exchange", commit._exchange)
    commit.remove = counted("remove", commit.remove)
    sys.argv = ["bvvtok", *args]
    from bvvtok.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
