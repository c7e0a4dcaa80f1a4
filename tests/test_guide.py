"""docs/guide.md shows what its walkthrough prints: run it for real (scripts/guide.py) and compare."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_guide_script():
    spec = importlib.util.spec_from_file_location("guide", ROOT / "scripts" / "guide.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


guide = load_guide_script()
SHOWN = guide.GUIDE.read_text(encoding="utf-8")


def test_the_walkthrough_prints_what_the_guide_shows(tmp_path):
    if not Path("/usr/share/games/fortunes/fortunes").is_file():
        pytest.skip("Debian's fortunes (the walkthrough's corpus) are not installed; make setup installs them")
    now = guide.walkthrough(SHOWN, tmp_path)
    diff = guide.differences(SHOWN, now)
    assert not diff, "docs/guide.md differs from a fresh run; run python scripts/guide.py:\n" + "\n".join(diff)
    assert not list(tmp_path.glob("*.png")), "the walkthrough writes its pictures under artifacts/"
    assert [made.name for made, _ in guide.pictures(now, tmp_path)] == ["substrate-map.png", "frozen-vs-unfrozen.png"]


def test_every_walkthrough_block_has_commands_and_every_command_its_output():
    found = [c for block in guide.BLOCK.findall(SHOWN) for c in guide.commands(block)]
    assert len(found) >= 15
    silent = [c.text for c in found if not c.output.strip()]
    assert not silent, f"commands shown without their output (run python scripts/guide.py): {silent}"


@pytest.mark.parametrize(
    "shown, now, same",
    [
        ("│ time            │ 7.3 s        │", "│ time            │ 12.0 s       │", True),
        ("step 200/200 ━━━ loss 8.079  83 tok/s 0:00:00", "step 200/200 ━━━ loss 8.079  1,204 tok/s 0:00:01", True),
        ("│ tokens/s        │ 501 (mean over steps) │", "│ tokens/s        │ 742 (mean over steps) │", True),
        ("validation loss 5.7337, 4.3183 bits", "validation loss 5.7402, 4.3190 bits", True),  # another CPU's rounding
        ("validation loss 5.7337, 4.3183 bits", "validation loss 5.9337, 4.3183 bits", False),  # a real change
        ("ids: [104, 55661, 32]", "ids: [104, 55662, 32]", False),  # ids are exact
        ("36,713,984 parameters", "36,713,985 parameters", False),
    ],
)
def test_masks_and_slack_forgive_only_time_speed_and_rounding(shown, now, same):
    assert guide.same_line(shown, now) is same
