"""build_model: architecture inference, strict loading, clear errors; fp16
conversion; input checks."""

import math

import pytest
import torch
from support import (
    TINY_RESNET,
    TINY_VIT,
    openai_model,
    perturbed_state_dict,
    random_tokens,
    relative_error,
)

from clip_ref import (
    CLIP,
    CLIPConfig,
    StateDictMismatchError,
    available_models,
    build_model,
    config_from_state_dict,
    convert_weights,
)

# Parameter counts of the released models (a golden check on the architecture as a
# whole).
PARAMETERS = {
    "RN50": 102_007_137,
    "RN101": 119_688_033,
    "RN50x4": 178_300_601,
    "RN50x16": 290_979_217,
    "RN50x64": 623_258_305,
    "ViT-B/32": 151_277_313,
    "ViT-B/16": 149_620_737,
    "ViT-L/14": 427_616_513,
    "ViT-L/14@336px": 427_944_193,
}


def test_available_models_are_the_nine_released():
    assert available_models() == [
        "RN50",
        "RN101",
        "RN50x4",
        "RN50x16",
        "RN50x64",
        "ViT-B/32",
        "ViT-B/16",
        "ViT-L/14",
        "ViT-L/14@336px",
    ]
    with pytest.raises(ValueError, match="unknown model 'ViT-B-32'.*ViT-B/32"):
        CLIPConfig.from_name("ViT-B-32")


@pytest.mark.parametrize("name", available_models())
def test_parameter_counts(name):
    with torch.device("meta"):
        model = CLIP(CLIPConfig.from_name(name))
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]


@pytest.mark.parametrize("name", available_models())
def test_architecture_is_inferred_from_the_shapes_of_every_released_model(name):
    # Shapes alone (meta tensors, no memory): the inference must read every released
    # layout back exactly.
    config = CLIPConfig.from_name(name)
    with torch.device("meta"):
        state_dict = CLIP(config).state_dict()
    assert config_from_state_dict(state_dict) == config
    with torch.device("meta"):
        rebuilt = CLIP(config_from_state_dict(state_dict)).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {
        k: v.shape for k, v in state_dict.items()
    }


@pytest.mark.parametrize("config", [TINY_VIT, TINY_RESNET], ids=["vit", "resnet"])
def test_round_trip_copies_every_tensor_exactly(config):
    # Loading is the same code for every architecture; one of each family checks the
    # values.
    state_dict = perturbed_state_dict(config, seed=1)
    model = build_model(state_dict)
    assert model.config == config and not model.training
    rebuilt = model.state_dict()
    assert rebuilt.keys() == state_dict.keys()
    for key, tensor in state_dict.items():
        assert rebuilt[key].dtype == tensor.dtype, key
        assert torch.equal(rebuilt[key], tensor), key
        assert rebuilt[key].data_ptr() != tensor.data_ptr(), (
            f"{key} shares memory with the caller's tensor"
        )


def test_logit_scale_starts_at_one_over_0_07():
    assert CLIP(TINY_VIT).logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_openai_metadata_entries_are_accepted_and_checked():
    state_dict = perturbed_state_dict(TINY_VIT)
    with_metadata = dict(
        state_dict,
        input_resolution=torch.tensor(32),
        context_length=torch.tensor(16),
        vocab_size=torch.tensor(49408),
    )
    model = build_model(with_metadata)
    assert "input_resolution" in with_metadata, (
        "the caller's dictionary must not be modified"
    )
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state_dict.items())
    with pytest.raises(
        StateDictMismatchError,
        match="input_resolution=224 contradicts.*input_resolution=32",
    ):
        build_model(dict(state_dict, input_resolution=torch.tensor(224)))


def test_half_precision_state_dict_builds_an_fp32_model():
    state_dict = {
        k: v.half() if v.is_floating_point() else v
        for k, v in perturbed_state_dict(TINY_RESNET).items()
    }
    model = build_model(state_dict)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.dtype == torch.float32


def test_missing_key_is_named():
    state_dict = perturbed_state_dict(TINY_VIT)
    del state_dict["visual.ln_post.bias"]
    with pytest.raises(
        StateDictMismatchError, match=r"missing keys \(1\): visual.ln_post.bias"
    ):
        build_model(state_dict)


def test_unexpected_key_is_named():
    state_dict = perturbed_state_dict(TINY_VIT)
    state_dict["visual.extra.weight"] = torch.zeros(3)
    with pytest.raises(
        StateDictMismatchError, match=r"unexpected keys \(1\): visual.extra.weight"
    ):
        build_model(state_dict)


def test_wrong_shape_is_named_with_both_shapes():
    state_dict = perturbed_state_dict(TINY_VIT)
    state_dict["visual.ln_pre.weight"] = torch.ones(65)
    with pytest.raises(
        StateDictMismatchError,
        match=r"wrong shapes \(1\): visual.ln_pre.weight: "
        r"expected \(64,\), got \(65,\)",
    ):
        build_model(state_dict)


def test_key_needed_to_infer_the_architecture_is_named():
    state_dict = perturbed_state_dict(TINY_RESNET)
    del state_dict["visual.layer1.0.conv1.weight"]
    with pytest.raises(
        StateDictMismatchError, match="'visual.layer1.0.conv1.weight' is missing"
    ):
        build_model(state_dict)
    with pytest.raises(TypeError, match="mapping"):
        build_model([("text_projection", torch.zeros(2, 2))])


def test_prefixed_keys_are_not_silently_stripped():
    state_dict = {"module." + k: v for k, v in perturbed_state_dict(TINY_VIT).items()}
    with pytest.raises(StateDictMismatchError, match="'text_projection' is missing"):
        build_model(state_dict)


def test_input_checks():
    model = build_model(perturbed_state_dict(TINY_VIT))
    with pytest.raises(ValueError, match=r"\[B, 3, 32, 32\], got \[1, 3, 224, 224\]"):
        model.encode_image(torch.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match=r"\[T, 16\], got \[2, 77\]"):
        model.encode_text(torch.zeros(2, 77, dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        model.encode_text(torch.zeros(2, 16))


@pytest.mark.parametrize("config", [TINY_VIT, TINY_RESNET], ids=["vit", "resnet"])
def test_convert_weights_matches_the_release_layout_and_stays_accurate(config):
    from clip.model import convert_weights as openai_convert_weights

    state_dict = perturbed_state_dict(config)
    ours = convert_weights(build_model(state_dict))
    theirs = openai_model(config, state_dict)
    openai_convert_weights(theirs)
    their_dtypes = {k: v.dtype for k, v in theirs.state_dict().items()}
    assert {k: v.dtype for k, v in ours.state_dict().items()} == their_dtypes
    assert ours.dtype == torch.float16

    images = torch.randn(
        2,
        3,
        config.image_resolution,
        config.image_resolution,
        generator=torch.Generator().manual_seed(0),
    )
    texts = random_tokens(2, config.context_length)
    reference = build_model(state_dict)
    with torch.no_grad():
        for encode in ("encode_image", "encode_text"):
            half = getattr(ours, encode)(images if encode == "encode_image" else texts)
            full = getattr(reference, encode)(
                images if encode == "encode_image" else texts
            )
            assert half.dtype == torch.float16
            assert relative_error(half, full) < 5e-3, encode
