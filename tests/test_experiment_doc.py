"""docs/experiment.md shows a real report: the one `bvvtok experiment report` writes from the record of the
ablation-tiny run kept in docs/experiment/ablation-tiny/ (each cell's cell.json and metrics.csv), and its
intervals are those of the cells' own validation curves."""

import csv
import importlib.util
import math
import shutil
from pathlib import Path

import pytest
from scipy import stats

from bvvtok.experiment.runner import write_experiment_report

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "docs" / "experiment" / "ablation-tiny"
REPORT = ("results.csv", "summary.csv", "report.md", "curves.png", "final.png")


def load_script():
    spec = importlib.util.spec_from_file_location("experiment_doc", ROOT / "scripts" / "experiment_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory) -> Path:
    """The report written again from the kept record alone."""
    folder = tmp_path_factory.mktemp("ablation") / "ablation-tiny"
    shutil.copytree(RECORD, folder, ignore=shutil.ignore_patterns(*REPORT))
    write_experiment_report(folder)
    return folder


@pytest.mark.parametrize("name", REPORT)
def test_the_kept_report_is_what_the_record_gives(rewritten, name):
    assert (rewritten / name).read_bytes() == (RECORD / name).read_bytes(), "run python scripts/experiment_doc.py on the experiment"


def test_the_page_shows_the_report(rewritten):
    script = load_script()
    page = (ROOT / "docs" / "experiment.md").read_text(encoding="utf-8")
    report = (rewritten / "report.md").read_text(encoding="utf-8")
    assert page == script.page_with(page, report, "experiment/ablation-tiny")
    assert script.section(report, "experiment/ablation-tiny") in page
    for link in ("experiment/ablation-tiny/curves.png", "experiment/ablation-tiny/final.png"):
        assert f"]({link})" in page and (ROOT / "docs" / link).is_file()


def test_the_summary_is_the_cells_last_validation():
    """Each arm's mean and 95% interval of validation bits per byte, from the last row of its cells' metrics.csv."""
    last: dict[str, list[float]] = {}
    for metrics in sorted(RECORD.glob("cells/*/run/metrics.csv")):
        arm = metrics.parent.parent.name.rsplit("-s", 1)[0]
        with open(metrics, encoding="utf-8") as f:
            last.setdefault(arm, []).append(float(list(csv.DictReader(f))[-1]["val_bpb"]))
    with open(RECORD / "summary.csv", encoding="utf-8", newline="") as f:
        rows = {r["arm"]: r for r in csv.DictReader(f) if r["figure"] == "final_val_bpb" and not r["comparison"]}
    assert set(rows) == set(last) and len(last) == 5
    for arm, values in last.items():
        n, mean = len(values), sum(values) / len(values)
        half = stats.t.ppf(0.975, n - 1) * math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)
        assert int(rows[arm]["n"]) == n == 3
        assert float(rows[arm]["mean"]) == pytest.approx(mean, abs=1e-4)
        assert float(rows[arm]["ci95_low"]) == pytest.approx(mean - half, abs=1e-4)
        assert float(rows[arm]["ci95_high"]) == pytest.approx(mean + half, abs=1e-4)
