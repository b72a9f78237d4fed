"""Fine-tuning on image-caption pairs from a CSV file: the dataset's checks, the
command line, --lock-image."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from support import TINY_RESNET, TINY_VIT

import clip_ref
from clip_ref import CLIP, EOT_TOKEN_ID
from clip_ref.captions import CSVCaptions
from clip_ref.cli import main
from clip_ref.finetune import FINETUNE, finetune
from clip_ref.toy.data import ToyCaptions
from clip_ref.train import train

ROOT = Path(__file__).resolve().parent.parent
PAIRS = 16


def _write_pairs(folder: Path, resolution: int, size: int = PAIRS) -> Path:
    """Toy images saved as PNG files under ``folder/images``, and
    ``folder/pairs.csv`` listing them with their captions, by paths relative to the
    CSV's folder (a caption with a comma is quoted)."""
    data = ToyCaptions("train", size=size, seed=7, resolution=resolution)
    (folder / "images").mkdir(parents=True)
    lines = ["filepath,caption,source"]
    for i in range(size):
        Image.fromarray(data.images[i].permute(1, 2, 0).numpy()).save(
            folder / "images" / f"{i:03d}.png"
        )
        caption = data.captions[i] if i % 4 else f'"{data.captions[i]}, drawn"'
        lines.append(f"images/{i:03d}.png,{caption},toy")  # the extra column is ignored
    (folder / "pairs.csv").write_text("\n".join(lines) + "\n")
    return folder / "pairs.csv"


def _save_init(folder: Path, config) -> Path:
    torch.manual_seed(0)
    path = folder / "init.pt"
    # a plain state dict, as clip_ref.load accepts
    torch.save(CLIP(config).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def vit_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune")
    return _save_init(folder, TINY_VIT), _write_pairs(folder, TINY_VIT.image_resolution)


def _args(init, csv, out, *extra):
    return [
        "--init",
        str(init),
        "--data",
        str(csv),
        "--out",
        str(out),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--no-progress",
        "--threads",
        "1",
        "--device",
        "cpu",
        *extra,
    ]


def _changed(
    before: dict, after: dict, prefix: str = "", exclude: str | None = None
) -> list:
    return [
        k
        for k in before
        if k.startswith(prefix)
        and (exclude is None or not k.startswith(exclude))
        and not torch.equal(before[k], after[k])
    ]


@pytest.fixture(scope="module")
def finetuned(vit_setup, tmp_path_factory):
    init, csv = vit_setup
    out = tmp_path_factory.mktemp("run")
    return out, main(_args(init, csv, out))


@pytest.fixture(scope="module")
def locked(vit_setup, tmp_path_factory):
    init, csv = vit_setup
    out = tmp_path_factory.mktemp("locked")
    return out, main(_args(init, csv, out, "--lock-image"))


# -- the dataset
# --------------------------------------------------------------------------------------


def test_items_are_the_models_preprocessing_and_tokens_with_paths_relative_to_the_csv(
    vit_setup, monkeypatch, tmp_path
):
    _, csv = vit_setup
    monkeypatch.chdir(csv.parent.parent)
    preprocess = clip_ref.Preprocess(TINY_VIT.image_resolution)
    data = CSVCaptions(
        Path(csv.parent.name) / csv.name, preprocess, TINY_VIT.context_length
    )
    # the working directory does not matter, the CSV's folder does
    monkeypatch.chdir(tmp_path)
    assert len(data) == PAIRS and data.tokens.shape == (PAIRS, TINY_VIT.context_length)
    assert data.captions[0].endswith(", drawn") and data.lines[:2] == [2, 3]
    image, tokens = data[5]
    assert torch.equal(image, preprocess(csv.parent / "images" / "005.png"))
    assert image.shape == (3, TINY_VIT.image_resolution, TINY_VIT.image_resolution)
    assert torch.equal(
        tokens,
        clip_ref.tokenize(data.captions[5], context_length=TINY_VIT.context_length)[0],
    )


def test_long_captions_are_truncated_with_a_warning_or_refused(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    long = "a " + "very " * 30 + "long caption"
    (tmp_path / "pairs.csv").write_text(
        f"filepath,caption\na.png,short\na.png,{long}\n"
    )
    with pytest.warns(
        UserWarning, match=r"1 of the 2 captions .* longer than 16 tokens .* line 3"
    ):
        data = CSVCaptions(
            tmp_path / "pairs.csv", clip_ref.Preprocess(32), context_length=16
        )
    assert torch.equal(
        data.tokens[1], clip_ref.tokenize(long, context_length=16, truncate=True)[0]
    )
    assert data.tokens[1, -1] == EOT_TOKEN_ID  # the end token is kept, last
    with pytest.raises(
        ValueError,
        match=r"line 3: the caption 'a very very.* longer than the model's 16",
    ):
        CSVCaptions(
            tmp_path / "pairs.csv",
            clip_ref.Preprocess(32),
            context_length=16,
            truncate=False,
        )


@pytest.mark.parametrize(
    "content, error, message",
    [
        ("", ValueError, r"is empty; expected a header row"),
        ("filepath,caption\n", ValueError, r"lists no image-caption pairs"),
        (
            "filepath,text\nimages/000.png,a red circle\n",
            ValueError,
            r"has no column 'caption'.*names \['filepath', 'text'\]",
        ),
        (
            "image,caption\nimages/000.png,a red circle\n",
            ValueError,
            r"has no column 'filepath'",
        ),
        (
            "filepath;caption\nimages/000.png;a red circle\n",
            ValueError,
            r"has no column .*another character, pass delimiter",
        ),
        (
            "filepath,caption\nimages/000.png,a circle\n,a square\n",
            ValueError,
            r"line 3: the filepath is empty",
        ),
        (
            "filepath,caption\nimages/000.png\n",
            ValueError,
            r"line 2: 1 fields, but the header has 2",
        ),
        (
            "filepath,caption\nimages/000.png,a\nimages/nope.png,b\nimages/001.png,c\nimg/x.png,d\n",
            FileNotFoundError,
            r"2 of the 4 image files .* do not exist .*line 3: "
            r".*images/nope.png; line 5: .*img/x.png",
        ),
    ],
)
def test_mistakes_in_the_csv_are_named_when_the_dataset_is_built(
    vit_setup, tmp_path, content, error, message
):
    _, pairs = vit_setup
    # beside the images, so that good rows resolve
    csv = pairs.parent / f"case{abs(hash(content))}.csv"
    csv.write_text(content)
    try:
        with pytest.raises(error, match=message):
            CSVCaptions(csv, clip_ref.Preprocess(32), context_length=16)
    finally:
        csv.unlink()


def test_a_missing_csv_file_and_an_unreadable_image_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no caption file"):
        CSVCaptions(tmp_path / "none.csv", clip_ref.Preprocess(32))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "pairs.csv").write_text("filepath,caption\nbroken.png,a picture\n")
    # every image is decoded when the dataset is built, before any training
    with pytest.raises(ValueError, match=r"line 2: .*broken.png: UnidentifiedImage"):
        CSVCaptions(tmp_path / "pairs.csv", clip_ref.Preprocess(32), context_length=16)


# -- the command line: checks before training
# --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--init", "x.pt", "--preset", "tiny", "--data", "d.csv"], "pass one"),
        (["--init", "x.pt"], "--init needs --data"),
        (["--data", "d.csv"], "--data is for your own pairs"),
        (["--lock-image"], "--lock-image is for your own pairs"),
        (["--csv-caption-key", "title"], "--csv-caption-key is for your own pairs"),
        (["--model", "RN50", "--init", "x.pt", "--data", "d.csv"], "pass one"),
        (["--model", "RN50"], "--model needs --data"),
        (["--model", "RN50", "--data", "d.csv", "--lock-image"], "pass --init"),
        (["--preset", "tiny", "--chunk-size", "0"], "--chunk-size must be at least 1"),
        (["--init", "x.pt", "--data", "d.csv", "--train-size", "8"], "--train-size"),
        (["--init", "x.pt", "--data", "d.csv", "--lr", "0"], "--lr must be positive"),
    ],
)
def test_contradictory_flags_stop_the_command_before_it_starts(
    argv, message, tmp_path, capsys
):
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_bad_csv_stops_fine_tuning_before_the_first_step(vit_setup, tmp_path):
    init, pairs = vit_setup
    csv = tmp_path / "pairs.csv"
    csv.write_text(pairs.read_text().replace("filepath", "path", 1))
    with pytest.raises(ValueError, match="has no column 'filepath'"):
        main(_args(init, csv, tmp_path / "out"))
    assert (
        not (tmp_path / "out" / "log.jsonl").exists()
        and not (tmp_path / "out" / "checkpoint.pt").exists()
    )


def test_train_refuses_half_precision_weights(vit_setup):
    model = CLIP(TINY_VIT).half()
    with pytest.raises(TypeError, match="AdamW on fp16 weights"):
        train(model, [], FINETUNE, "unused")


# -- the command line: fine-tuning
# -------------------------------------------------------------------------


def test_fine_tuning_writes_a_model_that_loads_and_differs_from_the_initial_one(
    vit_setup, finetuned
):
    init, csv = vit_setup
    out, metrics = finetuned
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert (
        metrics["steps"] == 3
        and metrics["pairs"] == PAIRS
        and metrics["lock_image"] is False
    )
    assert metrics["init"] == str(init) and metrics["data"] == str(csv)
    assert [
        json.loads(line)["step"]
        for line in (out / "log.jsonl").read_text().splitlines()
    ] == [3]
    model, preprocess = clip_ref.load(out / "model.pt", device="cpu")
    assert preprocess.n_px == TINY_VIT.image_resolution
    assert all(p.dtype == torch.float32 for p in model.parameters())
    before, after = torch.load(init, weights_only=True), model.state_dict()
    assert before.keys() == after.keys()
    assert _changed(before, after, "visual.")  # both encoders learned
    assert _changed(before, after, exclude="visual.")


def test_fine_tuning_uses_the_low_default_learning_rate_with_warm_up(finetuned):
    out, _ = finetuned
    log = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    config = json.loads(torch.load(out / "checkpoint.pt", weights_only=True)["config"])[
        "train"
    ]
    # a tenth of 3 steps
    assert config["lr"] == FINETUNE.lr == 1e-5 and config["warmup_steps"] == 0
    assert 0 < log["lr"] <= 1e-5


def test_lock_image_trains_the_text_side_and_leaves_the_image_encoder_bit_identical(
    vit_setup, locked
):
    init, _ = vit_setup
    out, metrics = locked
    assert metrics["lock_image"] is True
    before, after = (
        torch.load(init, weights_only=True),
        torch.load(out / "model.pt", weights_only=True),
    )
    assert not _changed(before, after, "visual.")
    changed = _changed(before, after, exclude="visual.")
    assert {"text_projection", "token_embedding.weight", "positional_embedding"} <= set(
        changed
    )


def test_resuming_with_a_different_lock_is_refused(vit_setup, tmp_path):
    init, csv = vit_setup
    assert main(_args(init, csv, tmp_path, "--stop-at", "1")) == {"stopped_at": 1}
    with pytest.raises(ValueError, match="different run"):
        main(_args(init, csv, tmp_path, "--resume", "--lock-image"))


def test_resuming_a_finished_run_trains_nothing_and_gives_the_same_model_and_metrics(
    vit_setup, tmp_path
):
    """The fine-tuning chapter resumes its runs when they exist, so that running it
    again trains nothing."""
    init, csv = vit_setup
    first = main(_args(init, csv, tmp_path))
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    log = (tmp_path / "log.jsonl").read_text()
    again = main(_args(init, csv, tmp_path, "--resume"))
    assert (tmp_path / "log.jsonl").read_text() == log  # no step was taken
    resumed = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.equal(weights[k], resumed[k]) for k in weights)
    ignore = {"train_seconds"}
    assert {k: v for k, v in again.items() if k not in ignore} == {
        k: v for k, v in first.items() if k not in ignore
    }


def test_a_locked_resnet_keeps_its_batchnorm_statistics(tmp_path):
    """A ResNet trained in train mode updates BatchNorm's running statistics
    (buffers, not parameters); with the image encoder locked they must not move
    either."""
    # as the command-line runs above (the conftest restores it)
    torch.set_num_threads(1)
    init = _save_init(tmp_path, TINY_RESNET)
    csv = _write_pairs(tmp_path / "data", TINY_RESNET.image_resolution, size=8)
    config = FINETUNE.__class__(
        steps=2, batch_size=8, lr=1e-3, warmup_steps=0, log_every=1
    )
    before = torch.load(init, weights_only=True)
    runs = {}
    for lock in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            finetune(
                init,
                csv,
                tmp_path / f"lock{lock}",
                config,
                lock_image=lock,
                progress=False,
                device="cpu",
            )
        runs[lock] = torch.load(
            tmp_path / f"lock{lock}" / "model.pt", weights_only=True
        )
    statistics = [k for k in before if k.endswith(("running_mean", "running_var"))]
    # The control: without the lock, the statistics do move, so the comparison below can
    # fail.
    assert set(_changed(before, runs[False], "visual.")) >= set(statistics)
    assert not _changed(before, runs[True], "visual.")
    assert _changed(before, runs[True], exclude="visual.")


@pytest.mark.slow
def test_command_line_fine_tunes_in_a_subprocess(vit_setup, tmp_path):
    init, csv = vit_setup
    command = [
        sys.executable,
        "-m",
        "clip_ref.train",
        *_args(init, csv, tmp_path / "out"),
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics == json.loads((tmp_path / "out" / "metrics.json").read_text())
    model, _ = clip_ref.load(tmp_path / "out" / "model.pt", device="cpu")
    assert model.visual.input_resolution == TINY_VIT.image_resolution


# -- your own columns, open_clip's files, and training from scratch
# -------------------------------------------------------------------


def test_open_clips_tab_separated_title_files_and_named_columns_read_the_same_pairs(
    vit_setup,
):
    _, pairs = vit_setup
    preprocess = clip_ref.Preprocess(32)
    plain = CSVCaptions(pairs, preprocess, context_length=16)
    rows = list(csv.reader(pairs.read_text().splitlines()))
    variants = {
        # open_clip's default: tabs, filepath and title; no flag needed
        "open_clip.tsv": ("\t", ["filepath", "title", "source"]),
        "named.csv": (",", ["image", "text", "source"]),
    }
    for name, (separator, header) in variants.items():
        with open(pairs.parent / name, "w", newline="") as handle:
            csv.writer(handle, delimiter=separator).writerows([header, *rows[1:]])
    try:
        tsv = CSVCaptions(pairs.parent / "open_clip.tsv", preprocess, context_length=16)
        named = CSVCaptions(
            pairs.parent / "named.csv",
            preprocess,
            context_length=16,
            image_key="image",
            caption_key="text",
        )
        for data in (tsv, named):
            assert data.paths == plain.paths and data.captions == plain.captions
            assert torch.equal(data.tokens, plain.tokens)
        assert tsv.columns == ("filepath", "title")
        assert tsv.fingerprint["columns"] == ["filepath", "title"]
        assert "columns" not in plain.fingerprint  # older runs resume as before
        with pytest.raises(ValueError, match=r"no column 'caption'.*--csv-caption-key"):
            CSVCaptions(pairs.parent / "named.csv", preprocess, image_key="image")
    finally:
        for name in variants:
            (pairs.parent / name).unlink()


def test_from_scratch_trains_an_architecture_from_its_initialisation(
    vit_setup, tmp_path
):
    from clip_ref.toy import PRESETS

    _, pairs = vit_setup
    out = tmp_path / "scratch"
    argv = ["--model", "tiny", "--data", str(pairs), "--out", str(out)]
    argv += ["--steps", "3", "--batch-size", "8", "--no-progress", "--device", "cpu"]
    metrics = main(argv + ["--chunk-size", "3"])
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "tiny" and metrics["pairs"] == PAIRS
    assert metrics["skipped_images"] == [] and "init" not in metrics
    model, _ = clip_ref.load(out / "model.pt", device="cpu")
    assert model.config == PRESETS["tiny"].model
    torch.manual_seed(0)  # the recipe's seed draws the paper's initialisation
    start = CLIP(PRESETS["tiny"].model).state_dict()
    assert _changed(start, model.state_dict(), "visual.")
    assert _changed(start, model.state_dict(), exclude="visual.")
    # the learning rate of the from-scratch recipe, after its warm-up of 0 steps
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 3 and log[-1]["lr"] > 1e-4


def test_an_unknown_architecture_is_named(vit_setup, tmp_path, capsys):
    _, pairs = vit_setup
    argv = ["--model", "ViT-Q/99", "--data", str(pairs), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit, match=r"unknown model 'ViT-Q/99'.*RN50"):
        main(argv)
    assert not (tmp_path / "o").exists()
