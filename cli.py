"""Run bvvtok from a checkout without installing it: `python cli.py --help`."""

from bvvtok.cli import main

if __name__ == "__main__":
    main()
