"""The toy dataset, the training recipe's parts, exact resumption, reuse of a trained
toy model, and the training command line."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cpu_kernels import CPU_KERNELS
from torch.utils.data import default_collate

import clip_ref
from clip_ref import CLIP, EOT_TOKEN_ID
from clip_ref.preprocess import normalize
from clip_ref.toy import (
    PRESETS,
    toy_dataset,
    train_toy,
    trained_toy_clip,
    zero_shot_top1,
)
from clip_ref.toy import data as T
from clip_ref.train import clamp_logit_scale, learning_rate, param_groups
from clip_ref.training_run import fetch_batch

ROOT = Path(__file__).resolve().parent.parent
# The smoke-test preset, shortened further and with a training set of 4 batches, so that
# 8 steps cross an epoch boundary and a resumed run has to rebuild the next epoch's
# order.
TINY = dataclasses.replace(
    PRESETS["tiny"],
    train_size=64,
    train=dataclasses.replace(
        PRESETS["tiny"].train, steps=8, checkpoint_every=4, log_every=1
    ),
)


# -- the toy dataset
# --------------------------------------------------------------------------------------


def test_held_out_combinations_are_at_least_a_fifth_and_every_attribute_is_seen():
    assert (
        len(set(T.COMBINATIONS)) == len(T.SHAPES) * len(T.COLOURS) == len(T.CLASSNAMES)
    )
    assert set(T.HELD_OUT) <= set(T.COMBINATIONS) and not set(T.HELD_OUT) & set(T.SEEN)
    assert len(T.HELD_OUT) / len(T.COMBINATIONS) >= 0.2
    assert {shape for shape, _ in T.SEEN} == set(T.SHAPES)
    assert {colour for _, colour in T.SEEN} == set(T.COLOURS)


@pytest.mark.parametrize(
    "split, allowed", [("train", T.SEEN), ("seen", T.SEEN), ("heldout", T.HELD_OUT)]
)
def test_splits_draw_only_their_combinations(split, allowed):
    data = T.ToyCaptions(split, size=300, seed=1)
    combos = {T.COMBINATIONS[label] for label in data.labels.tolist()}
    assert combos == set(allowed)  # only these, and with 300 draws, all of them
    for label, shape, colour in zip(
        data.labels.tolist(), data.shape_ids.tolist(), data.colour_ids.tolist()
    ):
        assert T.COMBINATIONS[label] == (T.SHAPES[shape], T.COLOURS[colour])


def test_dataset_is_deterministic_and_splits_and_seeds_differ():
    a, b = (
        T.ToyCaptions("train", size=64, seed=3),
        T.ToyCaptions("train", size=64, seed=3),
    )
    assert (
        torch.equal(a.images, b.images)
        and torch.equal(a.tokens, b.tokens)
        and a.captions == b.captions
    )
    assert torch.equal(a.labels, b.labels)
    other_seed = T.ToyCaptions("train", size=64, seed=4)
    other_split = T.ToyCaptions("seen", size=64, seed=3)
    assert not torch.equal(a.images, other_seed.images)
    assert not torch.equal(a.images, other_split.images)


def test_outline_style_draws_the_same_objects_as_edges_and_says_so():
    filled = T.ToyCaptions("seen", size=200, seed=3)
    outline = T.ToyCaptions("seen", size=200, seed=3, style="outline")
    # The same scenes: labels, sizes, positions and background noise come from the same
    # stream.
    for attribute in ("labels", "size_ids", "position_ids"):
        assert torch.equal(getattr(filled, attribute), getattr(outline, attribute))
    same = (filled.images == outline.images).all(dim=1)  # [N, R, R]
    assert same.float().mean() > 0.8  # the background and the edge band agree
    # Inside a large shape, the outline shows the background where the filled shape
    # shows its colour.
    large = (filled.size_ids == T.SIZES.index("large")).nonzero().flatten().tolist()
    assert len(large) > 50
    for i in large:
        # the object's centre, before jitter
        x, y = T._CENTRE[T.POSITIONS[filled.position_ids[i]]]
        column, row = int(x * 32), int(y * 32)
        if T.SHAPES[filled.shape_ids[i]] not in ("circle", "square", "heart"):
            # a ring is hollow already; a cross's arms and a triangle's tip are thin
            continue
        assert not same[i, row, column], (i, filled.captions[i])
    assert all("outline" in c for c in outline.captions)
    assert not any("outline" in c for c in filled.captions)
    assert (
        T.caption("circle", "red", "small", "centre", template=1, style="outline")
        == "the outline of a red circle"
    )
    with pytest.raises(ValueError, match="style"):
        T.ToyCaptions("seen", size=4, style="sketch")


def test_shifts_change_how_the_same_objects_look_and_nothing_else():
    plain = T.ToyCaptions("seen", size=200, seed=3)
    shifted = {
        shift: T.ToyCaptions("seen", size=200, seed=3, shift=shift)
        for shift in T.SHIFTS
    }
    for data in shifted.values():  # the same objects and the same captions
        for attribute in ("labels", "size_ids", "position_ids", "tokens"):
            assert torch.equal(getattr(plain, attribute), getattr(data, attribute))
        assert data.captions == plain.captions and data.images.dtype == torch.uint8
    x = plain.images.float()
    # clamped at 0 and 255, so measured where the image is mid-range
    noise = shifted["noise"].images.float() - x
    middle = (x > 60) & (x < 195)
    assert 35 < noise[middle].std() < 45
    assert 0.9 * x.std() > shifted["faded"].images.float().std()  # less contrast
    assert (
        shifted["faded"].images.float().mean() - x.mean()
    ) > 50  # towards a light grey

    # Blur: the detail of the drawing (differences between neighbouring pixels) falls.
    def detail(images):
        return (
            images.float().diff(dim=-1).abs().mean()
            + images.float().diff(dim=-2).abs().mean()
        ).item()

    assert detail(shifted["blur"].images) < 0.6 * detail(plain.images)

    # A light background: the corners (background in almost every image) are 100 grey
    # levels lighter.
    def corners(images):
        return images[:, :, [0, 0, -1, -1], [0, -1, 0, -1]].float().mean(dim=(1, 2))

    assert (corners(plain.images) < 80).float().mean() > 0.9
    assert (corners(shifted["light background"].images) > 95).float().mean() > 0.9
    lighter = corners(shifted["light background"].images) - corners(plain.images)
    assert 95 < lighter.median() < 105
    # Deterministic, and the shifted set of a style keeps that style's objects.
    assert torch.equal(
        T.ToyCaptions("seen", size=200, seed=3, shift="noise").images,
        shifted["noise"].images,
    )
    outline = T.ToyCaptions(
        "seen", size=20, seed=3, style="outline", shift="light background"
    )
    assert all("outline" in c for c in outline.captions)
    with pytest.raises(ValueError, match="shift"):
        T.ToyCaptions("seen", size=4, shift="snow")


def test_one_template_gives_one_caption_per_class_and_the_same_objects():
    varied = T.ToyCaptions("train", size=300, seed=2)
    one = T.ToyCaptions("train", size=300, seed=2, one_template=3)
    assert torch.equal(varied.images, one.images) and torch.equal(
        varied.labels, one.labels
    )
    assert len(set(one.captions)) == len(set(one.labels.tolist())) == len(T.SEEN)
    assert all(
        c == T.caption(T.SHAPES[s], T.COLOURS[k], "small", "centre", template=3)
        for c, s, k in zip(
            one.captions, one.shape_ids.tolist(), one.colour_ids.tolist()
        )
    )
    with pytest.raises(ValueError, match="one_template"):
        T.ToyCaptions("train", size=4, one_template=len(T.TEMPLATES))


def test_captions_name_the_pictured_attributes_in_varied_words():
    data = T.ToyCaptions("train", size=400, seed=0)
    for i in range(len(data)):
        caption = data.captions[i]
        assert T.SHAPES[data.shape_ids[i]] in caption.split(" ")
        assert T.COLOURS[data.colour_ids[i]] in caption.replace(",", "").split(" ")
        assert " a orange" not in caption and not caption.startswith("a orange")
    # many wordings, not one label per class
    assert len(set(data.captions)) > 200
    # Every row ends with the end-of-text token inside the context, then padding.
    assert (data.tokens.argmax(dim=-1) < data.tokens.shape[1]).all()
    assert (data.tokens.max(dim=-1).values == EOT_TOKEN_ID).all()


def test_caption_fills_a_template_with_the_chosen_wordings():
    assert (
        T.caption("circle", "orange", "small", "centre", template=1)
        == "an orange circle in the centre"
    )
    assert (
        T.caption(
            "ring", "red", "large", "top left", template=5, size_word=1, where_word=2
        )
        == "a big ring in the upper left corner, coloured red"
    )
    # wordings count modulo the synonyms: "large" has two, so 3 is the second
    assert (
        T.caption("cross", "blue", "large", "centre", template=2, size_word=3)
        == "a big blue cross"
    )
    # ToyCaptions writes its captions with it (golden: the first pairs of the seed-0
    # training split)
    assert T.ToyCaptions("train", size=3, seed=0).captions == [
        "a ring in red at the bottom left",
        "there is an orange heart at the bottom right",
        "a photo of a big blue square",
    ]


def test_images_show_an_object_of_the_captioned_colour():
    data = T.ToyCaptions("heldout", size=100, seed=2)
    palette = torch.tensor([T._RGB[c] for c in T.COLOURS], dtype=torch.float32)
    for image, colour in zip(data.images.float(), data.colour_ids.tolist()):
        # [3]: the grey behind the object
        background = image.flatten(1).median(dim=1).values
        contrast = (image - background.view(3, 1, 1)).abs().sum(dim=0)  # [R, R]
        assert contrast.max() > 100
        # inside the object, away from its blended edge
        object_mask = contrast >= 0.9 * contrast.max()
        mean = image[:, object_mask].mean(dim=1)
        assert (palette - mean).norm(dim=1).argmin().item() == colour


def test_label_captions_replace_that_fraction_of_captions_with_bare_labels():
    plain = T.ToyCaptions("train", size=2000, seed=0)
    ablated = T.ToyCaptions("train", size=2000, seed=0, label_captions=0.25)
    assert torch.equal(ablated.images, plain.images)  # the same pictures, other words
    changed = [i for i in range(2000) if ablated.captions[i] != plain.captions[i]]
    assert 400 < len(changed) < 600
    kinds = set()
    for i in changed:
        shape, colour = T.SHAPES[plain.shape_ids[i]], T.COLOURS[plain.colour_ids[i]]
        kinds.add((shape, colour, f"{colour} {shape}").index(ablated.captions[i]))
    assert kinds == {0, 1, 2}
    # in the book's world no caption is a single word, and no one-word class name is
    # ever a caption
    assert min(len(c.split(" ")) for c in plain.captions) >= 3
    assert not set(T.COLOURS + T.SHAPES) & set(plain.captions)
    with pytest.raises(ValueError, match="fraction"):
        T.ToyCaptions("train", size=10, label_captions=1.5)


def test_toy_runs_put_label_captions_in_the_training_split_only():
    run = dataclasses.replace(PRESETS["tiny"], label_captions=1.0)
    assert all(len(c.split(" ")) <= 2 for c in toy_dataset(run, "train").captions)
    assert all(len(c.split(" ")) >= 3 for c in toy_dataset(run, "heldout").captions)
    assert PRESETS["toy-label-captions"] == dataclasses.replace(
        PRESETS["toy"], label_captions=0.1
    )


def test_items_are_normalised_images_and_tokens():
    data = T.ToyCaptions("seen", size=8, resolution=32, context_length=20)
    image, tokens = data[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert tokens.shape == (20,) and tokens.dtype == torch.long
    torch.testing.assert_close(image, normalize(data.images[3]))


def test_a_batch_fetched_at_once_is_the_batch_fetched_item_by_item():
    data = T.ToyCaptions("train", size=64, seed=3, captions="web", images="web")
    indices = [5, 0, 63, 5, 17]
    at_once = fetch_batch(data, indices)
    by_item = default_collate([data[i] for i in indices])
    for a, b in zip(at_once, by_item):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert at_once[0].shape == (5, 3, 32, 32) and at_once[1].shape == (5, 16)
    # a dataset without __getitems__ is fetched item by item
    plain = torch.utils.data.TensorDataset(data.images[:8], data.tokens[:8])
    images, tokens = fetch_batch(plain, [7, 1])
    assert torch.equal(images, data.images[[7, 1]]) and torch.equal(
        tokens, data.tokens[[7, 1]]
    )


def test_class_prompts_follow_the_label_order_with_english_articles():
    prompts = T.class_prompts()
    assert len(prompts) == len(T.COMBINATIONS)
    assert prompts[T.COMBINATIONS.index(("circle", "red"))] == "a red circle"
    assert prompts[T.COMBINATIONS.index(("ring", "orange"))] == "an orange ring"
    assert (
        T.class_prompts("a photo of a {}")[T.COMBINATIONS.index(("cross", "orange"))]
        == "a photo of an orange cross"
    )
    with pytest.raises(ValueError, match="exactly one"):
        T.prompt_template("a {} {}")


def test_bad_dataset_arguments_raise():
    with pytest.raises(ValueError, match="unknown split"):
        T.ToyCaptions("test")
    with pytest.raises(ValueError, match="positive"):
        T.ToyCaptions("train", size=0)


# -- the recipe's parts
# ---------------------------------------------------------------------------------


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_zero():
    config = dataclasses.replace(
        PRESETS["tiny"].train, steps=110, warmup_steps=10, lr=1e-3
    )
    assert learning_rate(0, config) == pytest.approx(1e-4)
    assert learning_rate(4, config) == pytest.approx(5e-4)
    assert learning_rate(9, config) == pytest.approx(1e-3)
    assert learning_rate(10, config) == pytest.approx(1e-3)
    # half way through the cosine
    assert learning_rate(60, config) == pytest.approx(5e-4)
    assert learning_rate(35, config) == pytest.approx(
        1e-3 * (1 + math.cos(math.pi / 4)) / 2
    )
    assert learning_rate(110, config) == pytest.approx(0.0, abs=1e-15)


def _is_gain_or_bias(name: str) -> bool:
    """By OpenAI's names: LayerNorms are ln_*, BatchNorms bn* (and the second layer
    of a downsample)."""
    module = name.rsplit(".", 1)[0].rsplit(".", 1)[-1]
    return name.endswith((".bias", "_bias")) or (
        name.endswith(".weight")
        and (
            module.startswith("ln_")
            or module.startswith("bn")
            or re.search(r"downsample\.1\.weight$", name)
        )
    )


@pytest.mark.parametrize(
    "config",
    [PRESETS["tiny"].model, clip_ref.CLIPConfig.from_name("RN50")],
    ids=["vit", "resnet"],
)
def test_weight_decay_follows_the_paper_all_weights_but_gains_and_biases(config):
    with torch.device("meta"):
        model = CLIP(config)
    decay, no_decay = param_groups(model, 0.2)
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    names = {id(p): name for name, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    spared = {names[id(p)] for p in no_decay["params"]}
    assert decayed | spared == set(names.values()) and not decayed & spared
    # Spared: every gain and bias, and the temperature; decayed: every other weight,
    # embeddings included.
    assert spared == {name for name in names.values() if _is_gain_or_bias(name)} | {
        "logit_scale"
    }
    assert {
        "token_embedding.weight",
        "positional_embedding",
        "text_projection",
    } <= decayed
    if config.is_vit:
        assert {
            "visual.class_embedding",
            "visual.positional_embedding",
            "visual.proj",
        } <= decayed
        assert {
            "visual.ln_pre.weight",
            "visual.transformer.resblocks.0.ln_1.weight",
        } <= spared
    else:
        assert "visual.attnpool.positional_embedding" in decayed
        assert {"visual.bn1.weight", "visual.layer1.0.downsample.1.weight"} <= spared


def test_clamp_caps_the_multiplier_at_100():
    model = CLIP(PRESETS["tiny"].model)
    with torch.no_grad():
        model.logit_scale.fill_(6.0)
    clamp_logit_scale(model)
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    with torch.no_grad():
        model.logit_scale.fill_(1.0)
    clamp_logit_scale(model)
    assert model.logit_scale.item() == 1.0  # below the cap, untouched


def test_toy_run_round_trips_through_json():
    for run in PRESETS.values():
        assert json.loads(json.dumps(run.to_dict())) == run.to_dict()
        assert run.to_dict()["train"]["betas"] == [0.9, 0.98]


# -- training: exact resume, outputs, command line
# ------------------------------------------------------


def _weights(path: Path) -> dict:
    return torch.load(path / "model.pt", weights_only=True)


def _log(path: Path) -> list:
    return [
        {k: v for k, v in json.loads(line).items() if k != "seconds"}
        for line in (path / "log.jsonl").read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    torch.set_num_threads(1)
    metrics = train_toy(TINY, out, progress=False)
    return out, metrics


def test_resumed_run_continues_exactly_where_it_stopped(uninterrupted, tmp_path):
    reference, _ = uninterrupted
    assert train_toy(TINY, tmp_path, progress=False, stop_at=3) == {"stopped_at": 3}
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3
    assert not (tmp_path / "model.pt").exists()
    train_toy(TINY, tmp_path, progress=False, resume=True)

    ours, theirs = _weights(tmp_path), _weights(reference)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        assert torch.equal(ours[name], theirs[name]), name
    assert _log(tmp_path) == _log(reference)
    # The weights did change during training: the comparison is not between two
    # untouched models.
    torch.manual_seed(TINY.train.seed)
    initial = CLIP(TINY.model).state_dict()
    assert not torch.equal(initial["text_projection"], theirs["text_projection"])


def test_resume_refuses_a_different_configuration(uninterrupted, tmp_path):
    reference, _ = uninterrupted
    changed = dataclasses.replace(
        TINY, train=dataclasses.replace(TINY.train, lr=TINY.train.lr * 2)
    )
    (tmp_path / "checkpoint.pt").write_bytes((reference / "checkpoint.pt").read_bytes())
    with pytest.raises(ValueError, match="different run"):
        train_toy(changed, tmp_path, progress=False, resume=True)
    with pytest.raises(FileNotFoundError):
        train_toy(TINY, tmp_path / "nothing", progress=False, resume=True)


def test_training_writes_metrics_log_and_a_loadable_model(uninterrupted):
    out, metrics = uninterrupted
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert saved["chance"] == pytest.approx(1 / 36) and saved["run"] == TINY.to_dict()
    log = _log(out)
    assert [entry["step"] for entry in log] == list(range(1, TINY.train.steps + 1))
    assert log[-1]["loss"] < log[0]["loss"]  # it learns, a little, even in 8 steps
    assert all(entry["logit_scale"] <= 100 for entry in log)
    # model.pt is an OpenAI-format state dict: clip_ref.load reads it like a released
    # checkpoint.
    model, preprocess = clip_ref.load(out / "model.pt", device="cpu")
    assert not model.training and preprocess.n_px == TINY.model.image_resolution
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, _weights(out)[name])
    # The reported accuracies are the loaded model's, recomputed here on the same
    # evaluation images.
    for split in ("heldout", "seen"):
        data = T.ToyCaptions(
            split,
            size=TINY.eval_size,
            seed=TINY.train.seed,
            resolution=TINY.model.image_resolution,
            context_length=TINY.model.context_length,
        )
        assert saved[f"{split}_top1"] == zero_shot_top1(model, data)
        assert saved[f"{split}_top1"] * TINY.eval_size == pytest.approx(
            round(saved[f"{split}_top1"] * TINY.eval_size)
        )
    # safe to load: tensors and plain values
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == TINY.train.steps


def test_zero_shot_top1_counts_by_hand():
    torch.manual_seed(0)
    model = CLIP(TINY.model).eval()
    data = T.ToyCaptions(
        "heldout",
        size=40,
        seed=5,
        resolution=32,
        context_length=TINY.model.context_length,
    )
    with torch.no_grad():
        texts = clip_ref.tokenize(
            T.class_prompts(), context_length=TINY.model.context_length
        )
        text = torch.nn.functional.normalize(model.encode_text(texts), dim=-1)
        image = torch.nn.functional.normalize(
            model.encode_image(normalize(data.images)), dim=-1
        )
    by_hand = ((image @ text.T).argmax(dim=-1) == data.labels).float().mean().item()
    assert zero_shot_top1(model, data) == pytest.approx(by_hand, abs=1e-12)


def test_trained_toy_clip_reuses_an_identical_run_and_retrains_otherwise(
    uninterrupted, tmp_path
):
    reference, metrics = uninterrupted
    run_dir = tmp_path / "toy"
    run_dir.mkdir()
    for name in ("metrics.json", "model.pt"):
        (run_dir / name).write_bytes((reference / name).read_bytes())
    torch.set_num_threads(1)  # as the reference run was trained
    model, found = trained_toy_clip(TINY, run_dir, device="cpu", progress=False)
    # reused, not retrained
    assert found == metrics and not (run_dir / "log.jsonl").exists()
    assert torch.equal(model.text_projection, _weights(reference)["text_projection"])
    other = dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, steps=4))
    _, retrained = trained_toy_clip(other, run_dir, device="cpu", progress=False)
    assert retrained["run"] == other.to_dict() and retrained["steps"] == 4
    assert (run_dir / "log.jsonl").exists()


@pytest.mark.slow  # a new Python process
def test_command_line_end_to_end(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "clip_ref.train",
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--steps",
        "4",
        "--train-size",
        "64",
        "--no-progress",
        "--threads",
        "1",
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["world_size"] == 1
    assert (out / "model.pt").exists() and (out / "log.jsonl").exists()


def test_a_fresh_run_replaces_an_old_runs_results_only_when_told_to(tmp_path):
    (tmp_path / "metrics.json").write_text('{"heldout_top1": 1.0}')
    with pytest.raises(RuntimeError, match="holds a run"):
        train_toy(TINY, tmp_path, progress=False, stop_at=1)
    assert (tmp_path / "metrics.json").exists()
    stopped = train_toy(TINY, tmp_path, progress=False, stop_at=1, overwrite=True)
    assert stopped == {"stopped_at": 1}
    assert not (tmp_path / "metrics.json").exists()


def test_cpu_kernels_are_capped_here_and_in_what_notebook_kernels_inherit():
    """The stored outputs come from AVX2 kernels; AVX-512 ones train the toy CLIP to
    other numbers. The cap is the environment's values (tests/cpu_kernels.py), read
    here and in a child process, as a notebook kernel inherits them."""
    assert {name: os.environ.get(name) for name in CPU_KERNELS} == CPU_KERNELS
    code = (
        "import os, sys; print(' '.join(os.environ.get(n, '-') for n in sys.argv[1:]))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, *CPU_KERNELS],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.split() == list(CPU_KERNELS.values())
    # and torch obeys it: no kernel wider than AVX2 (the same on an AVX2-only machine)
    assert torch.backends.cpu.get_cpu_capability() in {"DEFAULT", "AVX2"}


def test_heart_is_both_a_shape_and_a_place_in_the_toy_language():
    # The world's ambiguous word (chapter 7): the same token names the shape and the
    # centre.
    assert (
        T.caption("heart", "red", "small", "centre", template=1, where_word=1)
        == "a red heart in the heart"
    )
    assert T.caption("circle", "red", "small", "centre", template=9, where_word=2) == (
        "there is a red circle at the heart of the picture"
    )
    world = T.ToyCaptions("train", size=4096)
    places = [
        c
        for c, s in zip(world.captions, world.shape_ids.tolist())
        if "heart" in c and s != 3
    ]
    assert len(places) > 100  # "heart" as a place, in captions of other shapes


def test_every_toy_caption_fits_the_toy_context_without_truncation():
    longest = max(
        (
            T.caption(
                shape, colour, size, position, template, size_word, where_word, style
            )
            for style in T.STYLES
            for template in range(len(T._caption_templates(style)))
            for shape in T.SHAPES
            for colour in T.COLOURS
            for size in T.SIZES
            for position in T.POSITIONS
            for size_word in range(3)
            for where_word in range(3)
        ),
        key=lambda text: len(clip_ref.tokenize([text], context_length=77)[0].nonzero()),
    )
    tokens = clip_ref.tokenize([longest], context_length=77)[0]
    # end token inside the context
    assert int(tokens.argmax()) + 1 <= PRESETS["toy"].model.context_length
