"""Nothing lost, nothing silently wrong: training's output folder, checkpoints and input
data under faults (clip_ref.run_folder, clip_ref.train, clip_ref.captions).

Every case is a tiny run of the toy preset (eight steps of 16 pairs, in-process) or of
the command line, so the whole file takes well under a minute.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

import clip_ref
from clip_ref.captions import CSVCaptions
from clip_ref.run_folder import DamagedCheckpointError, RunFolderError
from clip_ref.toy import PRESETS, train_toy
from clip_ref.training_run import DivergedError, ResumeMismatchError

ROOT = Path(__file__).resolve().parents[1]
TINY = PRESETS["tiny"]  # 8 steps, checkpoints at 4 and 8, 256 pairs


def _weights(out: Path) -> dict:
    return torch.load(out / "model.pt", weights_only=True)


def _log(out: Path) -> list:
    lines = (out / "log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]


def _same_run(out: Path, reference: Path) -> None:
    ours, theirs = _weights(out), _weights(reference)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert _log(out) == _log(reference)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted tiny run, for the resumed ones to equal."""
    out = tmp_path_factory.mktemp("reference")
    torch.set_num_threads(1)
    train_toy(TINY, out, progress=False)
    return out


def _stopped(out: Path, at: int = 6) -> Path:
    torch.set_num_threads(1)
    assert train_toy(TINY, out, progress=False, stop_at=at) == {"stopped_at": at}
    return out


# -- checkpoints are verified and kept -----------------------------------------------


def _flip(path: Path, where: float = 0.6, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * where)
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(bytes(data))


def test_flipped_bytes_fall_back_to_the_previous_checkpoint_and_resume_exactly(
    reference, tmp_path
):
    out = _stopped(tmp_path, at=6)  # checkpoints at steps 4 (kept) and 6 (newest)
    assert torch.load(out / "checkpoint.prev.pt", weights_only=True)["step"] == 4
    _flip(out / "checkpoint.pt")
    with pytest.warns(
        UserWarning, match=r"checkpoint\.pt.*previous checkpoint.*step 4"
    ):
        train_toy(TINY, out, progress=False, resume=True)
    _same_run(out, reference)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty", "garbage"])
def test_a_damaged_checkpoint_without_a_good_one_is_an_error_naming_it(
    tmp_path, damage
):
    out = _stopped(tmp_path, at=3)  # one checkpoint only
    path = out / "checkpoint.pt"
    data = path.read_bytes()
    if damage == "flipped":
        _flip(path)
    else:
        damaged = {
            "truncated": data[: len(data) // 2],
            "empty": b"",
            "garbage": os.urandom(4096),
        }
        path.write_bytes(damaged[damage])
    with pytest.raises(DamagedCheckpointError) as error:
        train_toy(TINY, out, progress=False, resume=True)
    message = str(error.value)
    assert str(path) in message and "--overwrite" in message
    assert "weights_only=False" not in message  # never advice to unpickle unsafely


def test_a_resume_on_other_data_or_settings_names_each_difference(tmp_path):
    out = _stopped(tmp_path, at=4)
    other = dataclasses.replace(
        TINY, train_size=128, train=dataclasses.replace(TINY.train, lr=2e-3)
    )
    with pytest.raises(ResumeMismatchError) as error:
        train_toy(other, out, progress=False, resume=True)
    message = str(error.value)
    assert "data.toy_world.size: 256 -> 128" in message
    assert "train.lr: 0.001 -> 0.002" in message
    assert "model" not in message.split("(checkpoint -> now):")[1]  # only what differs


def test_the_log_is_rewritten_whole_and_a_damaged_tail_is_dropped(reference, tmp_path):
    out = _stopped(tmp_path, at=6)
    log = out / "log.jsonl"
    log.write_text(log.read_text() + '{"step": 8, "lo')  # a crash mid-line
    with pytest.warns(UserWarning, match="damaged last line"):
        train_toy(TINY, out, progress=False, resume=True)
    _same_run(out, reference)


def test_a_damaged_line_inside_the_log_is_an_error_naming_it(tmp_path):
    out = _stopped(tmp_path, at=6)
    lines = (out / "log.jsonl").read_text().splitlines()
    lines[0] = lines[0][:10]
    (out / "log.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"log\.jsonl, line 1: not a JSON line"):
        train_toy(TINY, out, progress=False, resume=True)


def test_a_full_disk_says_so_leaves_no_temporary_file_and_keeps_the_checkpoint(
    tmp_path, monkeypatch
):
    out = _stopped(tmp_path, at=4)
    before = (out / "checkpoint.pt").read_bytes()

    def full(obj, file, *args, **kwargs):
        file.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 64")

    monkeypatch.setattr(clip_ref.run_folder.torch, "save", full)
    with pytest.raises(OSError, match=r"no space left on the device.*checkpoint\.pt"):
        train_toy(TINY, out, progress=False, resume=True)
    assert not list(out.glob(".*.tmp"))
    assert (out / "checkpoint.pt").read_bytes() == before


def test_kill_9_while_writing_a_checkpoint_then_resume_is_bitwise_the_same_run(
    reference, tmp_path
):
    # The second checkpoint write (step 8) is half done when the process is killed.
    script = textwrap.dedent(f"""
        import os, signal, sys, torch
        import clip_ref.run_folder as folder
        from clip_ref.toy import PRESETS, train_toy
        torch.set_num_threads(1)
        saves, save = [], torch.save
        def dying_save(obj, file, *args, **kwargs):
            saves.append(file)
            if len(saves) == 2:  # 1: the checkpoint of step 4, 2: that of step 8
                file.write(b"PK" + os.urandom(1000))
                file.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return save(obj, file, *args, **kwargs)
        folder.torch.save = dying_save
        train_toy(PRESETS["tiny"], {str(tmp_path)!r}, progress=False)
    """)
    killed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=300)
    assert killed.returncode == -9
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 4
    assert list(tmp_path.glob(".*.tmp"))  # the half-written file of the killed run
    torch.set_num_threads(1)
    train_toy(TINY, tmp_path, progress=False, resume=True)
    _same_run(tmp_path, reference)
    assert not list(tmp_path.glob(".*.tmp"))


# -- the output folder is protected --------------------------------------------------


def test_a_second_run_on_a_folder_in_use_fails_at_once(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunFolderError, match="in use by another run"):
            train_toy(TINY, tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_new_run_refuses_a_folder_holding_a_run_unless_told_to_overwrite(tmp_path):
    out = _stopped(tmp_path, at=4)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RunFolderError, match="holds a run.*--resume.*--overwrite"):
        train_toy(TINY, out, progress=False)
    # a mistake in the run is found before the folder is touched, even with overwrite
    broken = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, steps=2))
    with pytest.raises(ValueError, match="warm-up"):
        train_toy(broken, out, progress=False, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    metrics = train_toy(TINY, out, progress=False, overwrite=True)
    assert metrics["steps"] == TINY.train.steps


# -- useless runs are refused -------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 1}, "one pair has none"),
        ({"warmup_steps": 8}, "warm-up .8 steps. is not shorter than the run"),
    ],
)
def test_useless_recipes_are_refused_before_anything_is_written(
    tmp_path, change, message
):
    run = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, **change))
    with pytest.raises(ValueError, match=message):
        train_toy(run, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stop_at", [0, 9])
def test_stop_at_outside_the_run_is_refused(tmp_path, stop_at):
    with pytest.raises(ValueError, match=r"stop_at must lie in 1\.\.8"):
        train_toy(TINY, tmp_path / "out", progress=False, stop_at=stop_at)


def test_a_diverging_run_stops_with_an_error_instead_of_finishing(tmp_path):
    hot = dataclasses.replace(
        TINY, train=dataclasses.replace(TINY.train, lr=1e4, warmup_steps=0)
    )
    with pytest.raises(DivergedError, match="diverged|no longer finite|collapsed"):
        train_toy(hot, tmp_path, progress=False)
    assert not (tmp_path / "model.pt").exists()


# -- the data are checked before step 1 ----------------------------------------------


@pytest.fixture
def pairs(tmp_path):
    """A folder of four real images and a writer of CSV files beside them."""
    for i in range(4):
        Image.new("RGB", (40, 30), (60 * i, 100, 200)).save(tmp_path / f"{i}.png")

    def write(text: str, encoding: str = "utf-8") -> Path:
        path = tmp_path / "pairs.csv"
        path.write_bytes(text.encode(encoding))
        return path

    return write


def _read(csv: Path, **kwargs) -> CSVCaptions:
    return CSVCaptions(csv, clip_ref.Preprocess(32), 16, **kwargs)


def test_an_unbalanced_quote_is_an_error_naming_its_line(pairs):
    csv = pairs(
        'filepath,caption\n0.png,a dog\n1.png,"a cat\n2.png,a bird\n3.png,a fish\n'
    )
    with pytest.raises(ValueError, match=r"pairs\.csv, line 3: .*quote"):
        _read(csv)


def test_a_row_of_the_wrong_width_is_an_error_naming_its_line(pairs):
    csv = pairs("filepath,caption\n0.png,a dog\n1.png,a cat, with a comma\n")
    with pytest.raises(ValueError, match=r"line 3: 3 fields, but the header has 2"):
        _read(csv)


def test_a_csv_that_is_not_utf8_is_an_error_naming_the_line(pairs):
    csv = pairs("filepath,caption\n0.png,a dog\n1.png,un café\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"pairs\.csv, line 3: not UTF-8"):
        _read(csv)


def test_bad_images_are_found_up_front_with_their_lines_or_skipped_and_listed(
    pairs, tmp_path, monkeypatch
):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    Image.new("RGB", (64, 64)).save(tmp_path / "bomb.png")
    # 40 x 30 pixels are within the limit; 64 x 64 are over twice it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    csv = pairs(
        "filepath,caption\n0.png,a dog\nbroken.png,a cat\n1.png,a bird\n"
        "bomb.png,a fish\n"
    )
    with pytest.raises(ValueError) as error:
        _read(csv)
    message = str(error.value)
    assert "2 of the 4 images" in message
    assert "line 3: " in message and "broken.png" in message
    assert "line 5: " in message and "decompression bomb" in message
    with pytest.warns(UserWarning, match="2 of the pairs"):
        data = _read(csv, skip_bad_images=True)
    assert len(data) == 2 and data.lines == [2, 4]
    assert [s["line"] for s in data.skipped] == [3, 5]


# -- the command line ------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "clip_ref.train",
        "--no-progress",
        "--threads",
        "1",
    ]
    return subprocess.run(
        [*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_command_line_reports_a_folder_holding_a_run_without_a_traceback(tmp_path):
    out = _stopped(tmp_path / "run", at=4)
    result = _cli("--preset", "tiny", "--out", str(out))
    assert result.returncode == 1
    assert "error: " in result.stderr and "holds a run" in result.stderr
    assert "Traceback" not in result.stderr
    result = _cli("--preset", "tiny", "--out", str(out), "--batch-size", "1")
    assert result.returncode == 2 and "--batch-size must be at least 2" in result.stderr


def test_the_data_fingerprint_follows_the_csv_and_its_images(pairs):
    first = _read(pairs("filepath,caption\n0.png,a dog\n1.png,a cat\n")).fingerprint
    again = _read(pairs("filepath,caption\n0.png,a dog\n1.png,a cat\n")).fingerprint
    other = _read(pairs("filepath,caption\n0.png,a dog\n2.png,a cat\n")).fingerprint
    assert first == again and first != other
