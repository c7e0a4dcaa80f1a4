"""Put a finished experiment's record and report into the docs: docs/experiment.md shows a real report.

    python scripts/experiment_doc.py artifacts/ablation

copies what the report is made from (the experiment's manifest and spec, each cell's cell.json and
metrics.csv; no weights) to docs/experiment/NAME/, writes the report there from that copy, and puts
its report.md into docs/experiment.md between the report markers. tests/test_experiment_doc.py
writes the report again from the copy and checks that the page shows it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "experiment.md"
BEGIN, END = "<!-- report: begin -->", "<!-- report: end -->"
RECORD = ("bvvtok.json", "spec.toml")  # the experiment's own files the report needs
CELL_RECORD = ("cell.json", "run/metrics.csv")  # and each cell's


def copy_record(experiment: Path, to: Path) -> None:
    """The files a report is written from, and nothing else (no weights, no substrates)."""
    if to.exists():
        shutil.rmtree(to)
    to.mkdir(parents=True)
    for name in RECORD:
        shutil.copyfile(experiment / name, to / name)
    for cell in sorted((experiment / "cells").iterdir()):
        for name in CELL_RECORD:
            if (cell / name).is_file():
                (to / "cells" / cell.name / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cell / name, to / "cells" / cell.name / name)


def section(report: str, folder: str) -> str:
    """report.md as the page shows it: its title one level down, its links pointing into `folder` (from docs/)."""
    text = re.sub(r"^# ", "### ", report, flags=re.MULTILINE)
    text = re.sub(r"^## ", "#### ", text, flags=re.MULTILINE)
    return re.sub(r"\]\(([\w.-]+\.(?:png|csv))\)", rf"]({folder}/\1)", text)


def page_with(page: str, report: str, folder: str) -> str:
    before, rest = page.split(BEGIN)
    _, after = rest.split(END)
    return f"{before}{BEGIN}\n{section(report, folder).strip()}\n{END}{after}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path, help="a finished experiment folder")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bvvtok.experiment.runner import write_experiment_report

    name = json.loads((args.experiment / "bvvtok.json").read_text(encoding="utf-8"))["experiment"]["name"]
    to = ROOT / "docs" / "experiment" / name
    copy_record(args.experiment, to)
    write_experiment_report(to)
    page = page_with(PAGE.read_text(encoding="utf-8"), (to / "report.md").read_text(encoding="utf-8"), f"experiment/{name}")
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {to.relative_to(ROOT)} and the report in {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
