"""Hugging Face ``transformers`` weights in and out: a random-weight ``CLIPModel`` with
ViT-B/32's shapes, converted to clip_ref and back, computes the same image and text
features (clip_ref's tokenizer ids), and ``clip_ref.load`` reads a saved folder."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import clip_ref
from clip_ref.transformers_format import state_dict_from_transformers

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow

TEXTS = ["a photo of a cat", "a diagram", "two dogs playing in the snow at night"]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def hf_features(hf, pixels, tokens):
    with torch.no_grad():
        image = hf.get_image_features(pixel_values=pixels)
        text = hf.get_text_features(input_ids=tokens)
    # transformers 5 returns model outputs here, older versions tensors
    image = getattr(image, "pooler_output", image)
    text = getattr(text, "pooler_output", text)
    return image, text


def ours_features(model, pixels, tokens):
    with torch.no_grad():
        return model.encode_image(pixels), model.encode_text(tokens)


@pytest.fixture(scope="module")
def hf_model():
    """A CLIPModel with ViT-B/32's configuration and random weights (non-zero biases
    and gains, so a swapped bias or norm would show)."""
    c = clip_ref.CLIPConfig.from_name("ViT-B/32")
    config = transformers.CLIPConfig(
        projection_dim=c.embed_dim,
        text_config=dict(
            hidden_size=c.transformer_width,
            intermediate_size=4 * c.transformer_width,
            num_attention_heads=c.transformer_heads,
            num_hidden_layers=c.transformer_layers,
        ),
        vision_config=dict(
            hidden_size=c.vision_width,
            intermediate_size=4 * c.vision_width,
            num_attention_heads=c.vision_heads,
            num_hidden_layers=c.vision_layers,
            image_size=c.image_resolution,
            patch_size=c.vision_patch_size,
        ),
    )
    torch.manual_seed(0)
    model = transformers.CLIPModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:  # gains and biases: away from 1 and 0
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(3, 3, 224, 224, generator=generator)
    return pixels, clip_ref.tokenize(TEXTS)


def test_from_transformers_computes_the_same_features(hf_model, inputs):
    model = clip_ref.from_transformers(hf_model)
    assert isinstance(model, clip_ref.CLIP)
    assert model.config == clip_ref.CLIPConfig.from_name("ViT-B/32")
    for ours, theirs in zip(
        ours_features(model, *inputs), hf_features(hf_model, *inputs)
    ):
        assert relative(ours, theirs) < 1e-5
    # the state dict plus its config gives the same model
    again = clip_ref.from_transformers(hf_model.state_dict(), hf_model.config.to_dict())
    for a, b in zip(again.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_to_transformers_computes_the_same_features(hf_model, inputs):
    model = clip_ref.from_transformers(hf_model)
    back = clip_ref.to_transformers(model)
    assert isinstance(back, transformers.CLIPModel)
    for ours, theirs in zip(ours_features(model, *inputs), hf_features(back, *inputs)):
        assert relative(theirs, ours) < 1e-5
    # and the round trip gives the original weights back exactly
    original = hf_model.state_dict()
    for name, tensor in back.state_dict().items():
        assert torch.equal(tensor, original[name]), name


def test_load_reads_a_transformers_folder(hf_model, inputs, tmp_path):
    hf_model.save_pretrained(tmp_path)
    model, preprocess = clip_ref.load(tmp_path, device="cpu")
    assert preprocess.n_px == 224
    for ours, theirs in zip(
        ours_features(model, *inputs), hf_features(hf_model, *inputs)
    ):
        assert relative(ours, theirs) < 1e-5


def test_the_comparison_sees_a_wrong_conversion(hf_model, inputs):
    """Swapping the key and query projections of one block changes the features by far
    more than the tolerance."""
    state_dict = dict(hf_model.state_dict())
    q = "vision_model.encoder.layers.0.self_attn.q_proj.weight"
    k = q.replace("q_proj", "k_proj")
    state_dict[q], state_dict[k] = state_dict[k], state_dict[q]
    model = clip_ref.build_model(state_dict_from_transformers(state_dict))
    image, _ = ours_features(model, *inputs)
    assert relative(image, hf_features(hf_model, *inputs)[0]) > 1e-3


def test_what_cannot_be_converted_is_refused(hf_model):
    config = hf_model.config.to_dict()
    gelu = {**config, "text_config": {**config["text_config"], "hidden_act": "gelu"}}
    with pytest.raises(ValueError, match="QuickGELU"):
        clip_ref.from_transformers(hf_model.state_dict(), gelu)
    heads = {**config, "vision_config": {**config["vision_config"]}}
    heads["vision_config"]["num_attention_heads"] = 16
    with pytest.raises(ValueError, match="64-channel heads"):
        clip_ref.from_transformers(hf_model.state_dict(), heads)
    with pytest.raises(ValueError, match="pass the model's config"):
        clip_ref.from_transformers(hf_model.state_dict())
    with pytest.raises(ValueError, match="unknown keys"):
        state_dict_from_transformers({"bert.embeddings.word_embeddings.weight": 0})
    tiny_resnet = dataclasses.replace(
        clip_ref.CLIPConfig.from_name("RN50"),
        vision_width=2,
        transformer_width=64,
        transformer_layers=1,
        transformer_heads=1,
    )
    with torch.device("meta"):
        resnet = clip_ref.CLIP(tiny_resnet)
    with pytest.raises(ValueError, match="only Vision Transformer"):
        clip_ref.to_transformers(resnet)
