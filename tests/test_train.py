"""The toy dataset, the training recipe's parts, exact resumption, and the training command line."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clip_ref import CLIP
from clip_ref import toy_data as T
from clip_ref.train import (PRESETS, TrainConfig, clamp_logit_scale, learning_rate, load_trained, param_groups,
                            train)

ROOT = Path(__file__).resolve().parent.parent
# The smoke-test preset, shortened further and with a training set of 4 batches, so that 8 steps cross
# an epoch boundary and a resumed run has to rebuild the next epoch's order.
TINY = dataclasses.replace(PRESETS["tiny"], steps=8, train_size=64, checkpoint_every=4, log_every=1)


# -- the toy dataset ---------------------------------------------------------------------------------------

def test_held_out_combinations_are_at_least_a_fifth_and_every_attribute_is_seen():
    assert len(set(T.COMBINATIONS)) == len(T.SHAPES) * len(T.COLOURS) == len(T.CLASSNAMES)
    assert set(T.HELD_OUT) <= set(T.COMBINATIONS) and not set(T.HELD_OUT) & set(T.SEEN)
    assert len(T.HELD_OUT) / len(T.COMBINATIONS) >= 0.2
    assert {shape for shape, _ in T.SEEN} == set(T.SHAPES)
    assert {colour for _, colour in T.SEEN} == set(T.COLOURS)


@pytest.mark.parametrize("split, allowed", [("train", T.SEEN), ("seen", T.SEEN), ("heldout", T.HELD_OUT)])
def test_splits_draw_only_their_combinations(split, allowed):
    data = T.ToyCaptions(split, size=300, seed=1)
    combos = {T.COMBINATIONS[label] for label in data.labels.tolist()}
    assert combos == set(allowed)  # only these, and with 300 draws, all of them
    for label, shape, colour in zip(data.labels.tolist(), data.shape_ids.tolist(), data.colour_ids.tolist()):
        assert T.COMBINATIONS[label] == (T.SHAPES[shape], T.COLOURS[colour])


def test_dataset_is_deterministic_and_splits_and_seeds_differ():
    a, b = T.ToyCaptions("train", size=64, seed=3), T.ToyCaptions("train", size=64, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.tokens, b.tokens) and a.captions == b.captions
    assert torch.equal(a.labels, b.labels)
    other_seed = T.ToyCaptions("train", size=64, seed=4)
    other_split = T.ToyCaptions("seen", size=64, seed=3)
    assert not torch.equal(a.images, other_seed.images)
    assert not torch.equal(a.images, other_split.images)


def test_captions_name_the_pictured_attributes_in_varied_words():
    data = T.ToyCaptions("train", size=400, seed=0)
    for i in range(len(data)):
        caption = data.captions[i]
        assert T.SHAPES[data.shape_ids[i]] in caption.split(" ")
        assert T.COLOURS[data.colour_ids[i]] in caption.replace(",", "").split(" ")
        assert " a orange" not in caption and not caption.startswith("a orange")
    assert len({c for c in data.captions}) > 200  # many wordings, not one label per class
    # Every row ends with the end-of-text token inside the context, then padding.
    assert (data.tokens.argmax(dim=-1) < data.tokens.shape[1]).all()
    assert (data.tokens.max(dim=-1).values == 49407).all()


def test_images_show_an_object_of_the_captioned_colour():
    data = T.ToyCaptions("heldout", size=100, seed=2)
    palette = torch.tensor([T._RGB[c] for c in T.COLOURS], dtype=torch.float32)
    for image, colour in zip(data.images.float(), data.colour_ids.tolist()):
        background = image.flatten(1).median(dim=1).values  # [3]: the grey behind the object
        contrast = (image - background.view(3, 1, 1)).abs().sum(dim=0)  # [R, R]
        assert contrast.max() > 100
        object_mask = contrast >= 0.9 * contrast.max()  # inside the object, away from its blended edge
        mean = image[:, object_mask].mean(dim=1)
        assert (palette - mean).norm(dim=1).argmin().item() == colour


def test_items_are_normalised_images_and_tokens():
    data = T.ToyCaptions("seen", size=8, resolution=32, context_length=20)
    image, tokens = data[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert tokens.shape == (20,) and tokens.dtype == torch.long
    torch.testing.assert_close(image, T.normalize(data.images[3]))


def test_class_prompts_follow_the_label_order_with_english_articles():
    prompts = T.class_prompts()
    assert len(prompts) == len(T.COMBINATIONS)
    assert prompts[T.COMBINATIONS.index(("circle", "red"))] == "a red circle"
    assert prompts[T.COMBINATIONS.index(("ring", "orange"))] == "an orange ring"
    assert T.class_prompts("a photo of a {}")[T.COMBINATIONS.index(("cross", "orange"))] == \
        "a photo of an orange cross"
    with pytest.raises(ValueError, match="exactly one"):
        T.prompt_template("a {} {}")


def test_bad_dataset_arguments_raise():
    with pytest.raises(ValueError, match="unknown split"):
        T.ToyCaptions("test")
    with pytest.raises(ValueError, match="positive"):
        T.ToyCaptions("train", size=0)


# -- the recipe's parts ---------------------------------------------------------------------------------

def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_zero():
    config = dataclasses.replace(PRESETS["tiny"], steps=110, warmup_steps=10, lr=1e-3)
    assert learning_rate(0, config) == pytest.approx(1e-4)
    assert learning_rate(4, config) == pytest.approx(5e-4)
    assert learning_rate(9, config) == pytest.approx(1e-3)
    assert learning_rate(10, config) == pytest.approx(1e-3)
    assert learning_rate(60, config) == pytest.approx(5e-4)  # half way through the cosine
    assert learning_rate(35, config) == pytest.approx(1e-3 * (1 + math.cos(math.pi / 4)) / 2)
    assert learning_rate(110, config) == pytest.approx(0.0, abs=1e-15)


def test_weight_decay_spares_gains_biases_embeddings_and_temperature():
    model = CLIP(PRESETS["tiny"].model)
    decay, no_decay = param_groups(model, 0.2)
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    names = {id(p): name for name, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    spared = {names[id(p)] for p in no_decay["params"]}
    assert decayed | spared == set(names.values()) and not decayed & spared
    for name in ("logit_scale", "token_embedding.weight", "positional_embedding", "visual.class_embedding",
                 "visual.positional_embedding", "ln_final.weight", "ln_final.bias", "visual.ln_pre.weight",
                 "transformer.resblocks.0.attn.in_proj_bias"):
        assert name in spared
    for name in ("text_projection", "visual.proj", "visual.conv1.weight",
                 "transformer.resblocks.0.attn.in_proj_weight", "transformer.resblocks.0.mlp.c_fc.weight"):
        assert name in decayed


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


def test_config_round_trips_through_a_dict():
    for config in PRESETS.values():
        assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# -- training: exact resume, outputs, command line ------------------------------------------------------

def _weights(path: Path) -> dict:
    return torch.load(path / "model.pt", weights_only=True)


def _log(path: Path) -> list:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (path / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    torch.set_num_threads(1)
    metrics = train(TINY, out, progress=False)
    return out, metrics


def test_resumed_run_continues_exactly_where_it_stopped(uninterrupted, tmp_path):
    reference, _ = uninterrupted
    assert train(TINY, tmp_path, progress=False, stop_at=3) == {"stopped_at": 3}
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3
    assert not (tmp_path / "model.pt").exists()
    train(TINY, tmp_path, progress=False, resume=True)

    ours, theirs = _weights(tmp_path), _weights(reference)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        assert torch.equal(ours[name], theirs[name]), name
    assert _log(tmp_path) == _log(reference)
    # The weights did change during training: the comparison is not between two untouched models.
    torch.manual_seed(TINY.seed)
    initial = CLIP(TINY.model).state_dict()
    assert not torch.equal(initial["text_projection"], theirs["text_projection"])


def test_resume_refuses_a_different_configuration(uninterrupted, tmp_path):
    reference, _ = uninterrupted
    changed = dataclasses.replace(TINY, lr=TINY.lr * 2)
    (tmp_path / "checkpoint.pt").write_bytes((reference / "checkpoint.pt").read_bytes())
    with pytest.raises(ValueError, match="different run"):
        train(changed, tmp_path, progress=False, resume=True)
    with pytest.raises(FileNotFoundError):
        train(TINY, tmp_path / "nothing", progress=False, resume=True)


def test_training_writes_metrics_log_and_a_loadable_model(uninterrupted):
    out, metrics = uninterrupted
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert {"heldout_top1", "seen_top1", "chance", "train_seconds"} <= set(saved)
    assert saved["chance"] == pytest.approx(1 / 36)
    assert 0 <= saved["heldout_top1"] <= 1 and 0 <= saved["seen_top1"] <= 1
    log = _log(out)
    assert [entry["step"] for entry in log] == list(range(1, TINY.steps + 1))
    assert log[-1]["loss"] < log[0]["loss"]  # it learns, a little, even in 8 steps
    assert all(entry["logit_scale"] <= 100 for entry in log)
    model = load_trained(out)
    assert not model.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, _weights(out)[name])
    state = torch.load(out / "checkpoint.pt", weights_only=True)  # safe to load: tensors and plain values
    assert state["step"] == TINY.steps


def test_command_line_end_to_end(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "clip_ref.train", "--preset", "tiny", "--out", str(out), "--steps", "4",
               "--train-size", "64", "--no-progress", "--threads", "1"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["world_size"] == 1
    assert (out / "config.json").exists() and (out / "log.jsonl").exists()


def test_a_fresh_run_removes_an_old_runs_results(tmp_path):
    (tmp_path / "metrics.json").write_text('{"heldout_top1": 1.0}')
    assert train(TINY, tmp_path, progress=False, stop_at=1) == {"stopped_at": 1}
    assert not (tmp_path / "metrics.json").exists()
