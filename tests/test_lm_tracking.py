"""`train --track tensorboard|wandb`: the curves of metrics.csv in TensorBoard's event files and in an offline W&B run,
continued by --resume, replaced by --force, refused in one line when the package is missing."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_user_error, invoke

from bvvtok.lm.config import resolve_config
from bvvtok.lm.metrics import read_metrics
from bvvtok.lm.train import train
from bvvtok.lm.tracking import values
from bvvtok.output import foreign_entries

MODEL = dict(d_model=32, n_layer=2, n_head=4, context=32)
TRAIN = dict(steps=6, batch_size=8, lr=1e-2, warmup=2, eval_every=3, eval_windows=8)
FLAGS = ["--device", "cpu", "--d-model", "32", "--n-layer", "2", "--n-head", "4", "--context", "32", "--steps", "6",
         "--lr", "1e-2", "--warmup", "2", "--eval-every", "3", "--eval-windows", "8"]  # fmt: skip


@pytest.fixture(autouse=True)
def environment(tmp_path, monkeypatch):
    """A private token cache, and wandb offline with its own files under tmp_path (the run's go in the run folder)."""
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    for name in ("WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "c.jsonl"
    lines = (json.dumps({"text": f"the cat saw the dog {i}. "}) + "\n" for i in range(300))
    path.write_text("".join(lines), encoding="utf-8")
    return path


def run(substrate: Path, corpus: Path, out: Path, track, **kwargs):
    config = resolve_config("tiny", None, dict(MODEL), dict(TRAIN, checkpoint_every=3))
    return train(substrate, [corpus], out, config, device="cpu", track=track, **kwargs)


def logged(out: Path) -> dict[str, dict[int, float]]:
    """metrics.csv as {column: {step: value}}, the empty cells left out."""
    found: dict[str, dict[int, float]] = {}
    for row in read_metrics(out / "metrics.csv"):
        for name, value in values(row).items():
            found.setdefault(name, {})[row.step] = value
    return found


def tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """The scalars TensorBoard shows for `folder`, as {tag: {step: value}} (a step twice would be lost: checked)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    found = {}
    for tag in events.Tags()["scalars"]:
        points = events.Scalars(tag)
        assert len({p.step for p in points}) == len(points), tag
        found[tag] = {p.step: p.value for p in points}
    return found


def wandb_records(path: Path):
    """The records of a .wandb file, read with wandb's protobufs: LevelDB's log format (32 KiB blocks of
    chunks: crc, length, type; FULL or FIRST..LAST) after a 7-byte W&B header."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, record = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        length, kind = struct.unpack("<HB", data[position + 4 : position + 7])
        if block - position % block < 7 or kind == 0:  # a block's zero padding
            position += block - position % block
            continue
        record += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL, LAST
            parsed = wandb_internal_pb2.Record()
            parsed.ParseFromString(record)
            record = b""
            yield parsed


def wandb_run(folder: Path) -> tuple[dict, dict[str, dict[int, float]]]:
    """An offline run folder's run record (id, name, project, config) and its history as {key: {step: value}}."""
    (path,) = folder.glob("run-*.wandb")
    info, history = {}, {}
    for record in wandb_records(path):
        if record.WhichOneof("record_type") == "run":
            config = {item.key: json.loads(item.value_json) for item in record.run.config.update}
            info = dict(id=record.run.run_id, name=record.run.display_name, project=record.run.project, config=config)
        elif record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):  # wandb's own: _step, _runtime, _timestamp
                    history.setdefault(key, {})[record.history.step.num] = json.loads(item.value_json)
    return info, history


def assert_same(found: dict[str, dict[int, float]], expected: dict[str, dict[int, float]]) -> None:
    """The same columns and steps, the values as metrics.csv rounds them."""
    assert {k: sorted(v) for k, v in found.items()} == {k: sorted(v) for k, v in expected.items()}
    for name, points in expected.items():
        assert found[name] == pytest.approx(points, rel=1e-5, abs=1e-6), name


def test_tensorboard_shows_what_metrics_csv_holds(char_substrate, corpus, tmp_path):
    out = tmp_path / "run"
    run(char_substrate, corpus, out, ["tensorboard"])
    expected = logged(out)
    assert sorted(expected) == ["lr", "tokens_per_s", "train_loss", "val_bpb", "val_loss"]
    assert sorted(expected["val_loss"]) == [0, 3, 6] and sorted(expected["train_loss"]) == list(range(1, 7))
    assert_same(tensorboard_scalars(out / "tensorboard"), expected)
    assert foreign_entries(out) == [] and not (out / "wandb").exists()


def test_wandb_offline_run_holds_what_metrics_csv_holds(char_substrate, corpus, tmp_path):
    out = tmp_path / "run"
    run(char_substrate, corpus, out, "wandb")  # one name as a string: not its letters
    (folder,) = (out / "wandb").glob("offline-run-*")
    info, history = wandb_run(folder)
    assert info["id"] == (out / "wandb" / "run_id.txt").read_text() and folder.name.endswith(info["id"])
    assert (info["name"], info["project"]) == ("run", "bvvtok")
    assert info["config"]["train"]["steps"] == 6 and info["config"]["model"]["d_model"] == 32  # config.json
    assert_same(history, logged(out))
    assert foreign_entries(out) == [] and not (out / "tensorboard").exists()


def test_wandb_follows_the_users_settings(char_substrate, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    out = tmp_path / "run"
    run(char_substrate, corpus, out, ["wandb"])
    (folder,) = (tmp_path / "elsewhere" / "wandb").glob("offline-run-*")
    info, _ = wandb_run(folder)
    assert info["project"] == "mine"
    assert sorted(p.name for p in (out / "wandb").iterdir()) == ["run_id.txt"]  # the id stays with the run


class Killed(Exception):
    pass


def test_resume_continues_the_curves_and_force_replaces_them(char_substrate, corpus, tmp_path):
    out = tmp_path / "run"

    def kill_at_step_5(kind, info):
        if kind == "step" and info["row"].step == 5:
            raise Killed  # after the checkpoint of step 3; steps 4-5 are logged, then lost

    with pytest.raises(Killed):
        run(char_substrate, corpus, out, ["tensorboard", "wandb"], on_event=kill_at_step_5)
    run_id = (out / "wandb" / "run_id.txt").read_text()
    assert sorted(tensorboard_scalars(out / "tensorboard")["train_loss"]) == [1, 2, 3, 4]  # the killed run's step 5: not logged
    run(char_substrate, corpus, out, ["tensorboard", "wandb"], resume=True)

    # TensorBoard: one curve, the killed run's steps 4 and 5 replaced by the resumed run's (tokens/s differ)
    assert len(list((out / "tensorboard").iterdir())) == 2
    assert_same(tensorboard_scalars(out / "tensorboard"), logged(out))
    # wandb: the same run, continued from the checkpoint
    killed, resumed = sorted((out / "wandb").glob("offline-run-*"))
    assert (out / "wandb" / "run_id.txt").read_text() == run_id
    assert wandb_run(killed)[0]["id"] == wandb_run(resumed)[0]["id"] == run_id
    assert sorted(wandb_run(resumed)[1]["train_loss"]) == [4, 5, 6]

    replaced = invoke("train", "--substrate", char_substrate, "--corpus", corpus, "--out", out, *FLAGS, "--force",
                      "--track", "tensorboard")  # fmt: skip
    assert replaced.exit_code == 0, replaced.output
    assert len(list((out / "tensorboard").iterdir())) == 1 and not (out / "wandb").exists()
    assert_same(tensorboard_scalars(out / "tensorboard"), logged(out))
    (out / "tensorboard" / "notes.txt").write_text("mine", encoding="utf-8")
    assert foreign_entries(out) == ["tensorboard/notes.txt"]  # what the user adds there is still the user's


@pytest.mark.parametrize("name, module", [("tensorboard", "torch.utils.tensorboard"), ("wandb", "wandb")])
def test_a_missing_package_is_refused_before_training(char_substrate, corpus, tmp_path, monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    out = tmp_path / "run"
    result = invoke("train", "--substrate", char_substrate, "--corpus", corpus, "--out", out, *FLAGS, "--track", name)
    assert_user_error(result, f"--track {name} needs the {name} package: pip install 'bvvtok[{name}]'")
    assert not out.exists()


def test_an_unknown_tracker_is_refused(char_substrate, corpus, tmp_path):
    result = invoke("train", "--substrate", char_substrate, "--corpus", corpus, "--out", tmp_path / "run", *FLAGS,
                    "--track", "tensorboard", "--track", "mlflow")  # fmt: skip
    assert_user_error(result, "--track mlflow: choose tensorboard or wandb")


def test_wandb_that_cannot_start_is_a_one_line_error(char_substrate, corpus, tmp_path, monkeypatch):
    import wandb

    def init(**kwargs):
        raise wandb.errors.UsageError("No API key configured")

    monkeypatch.setattr(wandb, "init", init)
    result = invoke("train", "--substrate", char_substrate, "--corpus", corpus, "--out", tmp_path / "run", *FLAGS,
                    "--track", "wandb")  # fmt: skip
    assert_user_error(result, "--track wandb: wandb could not start the run (No API key configured)",
                      "WANDB_MODE=offline")  # fmt: skip


def test_only_rank_0_logs(char_substrate, corpus, tmp_path):
    out = tmp_path / "run"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "bvvtok"]
    args = ["train", "--substrate", char_substrate, "--corpus", corpus, "--out", out, *FLAGS,
            "--track", "tensorboard", "--track", "wandb"]  # fmt: skip
    done = subprocess.run([*launcher, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((out / "tensorboard").iterdir())) == 1 and len(list((out / "wandb").glob("offline-run-*"))) == 1
    assert_same(tensorboard_scalars(out / "tensorboard"), logged(out))


def test_a_named_sources_figures_are_logged_under_their_metrics_csv_columns():
    from bvvtok.lm.metrics import Row
    from bvvtok.lm.tracking import values

    row = Row(8, 2.0, 1.5, 1e-3, 100.0, 2.5, {"en": (1.2, 2.0), "zh": (1.9, None)})
    assert values(row) == {"train_loss": 2.0, "val_loss": 1.5, "lr": 1e-3, "tokens_per_s": 100.0, "val_bpb": 2.5,
                           "val_loss_en": 1.2, "val_bpb_en": 2.0, "val_loss_zh": 1.9}  # fmt: skip
