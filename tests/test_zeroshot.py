"""zero_shot_classifier builds the same [E, C] weights as open_clip's
build_zero_shot_classifier.

Both are run on identical random weights (OpenAI's state-dict format, loaded into each
implementation), with open_clip's own tokenizer on its side, so the comparison covers
tokenising, encoding, normalising, averaging and re-normalising end to end.
"""

import pytest
import torch
import torch.nn.functional as F
from support import perturbed_state_dict, relative_error

from clip_ref import CLIPConfig, build_model
from clip_ref.imagenet import IMAGENET_CLASSNAMES, IMAGENET_TEMPLATES
from clip_ref.tokenizer import tokenize
from clip_ref.zeroshot import check_template, zero_shot_classifier

# open_clip's builder infers text heads as width // 64, so the text width is 64 with one
# head.
CONFIG = CLIPConfig(
    embed_dim=24,
    image_resolution=32,
    vision_layers=1,
    vision_width=64,
    vision_patch_size=16,
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=2,
    context_length=77,
    vocab_size=49408,
)
# 11 real names, some with several words and parentheses
CLASSNAMES = list(IMAGENET_CLASSNAMES[::97])
TEMPLATES = list(IMAGENET_TEMPLATES[::9])  # 9 of the 80


@pytest.fixture(scope="module")
def state_dict():
    return perturbed_state_dict(CONFIG, seed=3)


@pytest.fixture(scope="module")
def model(state_dict):
    return build_model(state_dict)


@pytest.fixture(scope="module")
def open_clip_model(state_dict):
    from open_clip.model import build_model_from_openai_state_dict

    model = build_model_from_openai_state_dict(
        dict(state_dict), quick_gelu=True, cast_dtype=None
    ).float()
    # The builder stores the weights in fp16, as OpenAI's release does; reload them in
    # fp32 so that both implementations hold bit-identical weights and any difference is
    # in the computation.
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def reference_classifier(
    open_clip_model, classnames, templates, num_classes_per_batch=10
):
    import open_clip
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    return build_zero_shot_classifier(
        open_clip_model,
        open_clip.get_tokenizer("RN50"),
        classnames,
        templates,
        num_classes_per_batch=num_classes_per_batch,
        device="cpu",
        use_tqdm=False,
    )


@pytest.mark.parametrize(
    "templates",
    [TEMPLATES, ["a photo of a {}."], ["{}"]],
    ids=["9-templates", "1", "bare"],
)
def test_equals_open_clip(model, open_clip_model, templates):
    expected = reference_classifier(open_clip_model, CLASSNAMES, templates)
    actual = zero_shot_classifier(
        model, CLASSNAMES, templates, batch_size=4, progress=False
    )
    assert actual.shape == expected.shape == (CONFIG.embed_dim, len(CLASSNAMES))
    assert actual.dtype == torch.float32
    assert relative_error(actual, expected) < 1e-5
    # The references disagree with a wrong recipe by far more than the tolerance:
    # averaging raw (unnormalised) embeddings gives a measurably different classifier.
    if len(templates) > 1:
        raw = torch.stack(
            [
                F.normalize(
                    model.encode_text(tokenize([t.format(c) for t in templates])).mean(
                        0
                    ),
                    dim=0,
                )
                for c in CLASSNAMES
            ],
            dim=1,
        ).detach()
        assert relative_error(raw, expected) > 1e-3


def test_columns_are_unit_vectors_in_class_order(model):
    weights = zero_shot_classifier(
        model, CLASSNAMES, TEMPLATES, batch_size=3, progress=False
    )
    torch.testing.assert_close(weights.norm(dim=0), torch.ones(len(CLASSNAMES)))
    # Column c depends on class c alone: reversing the classes reverses the columns, and
    # batching is invisible.
    reversed_weights = zero_shot_classifier(
        model, CLASSNAMES[::-1], TEMPLATES, batch_size=100, progress=False
    )
    torch.testing.assert_close(reversed_weights, weights.flip(1), rtol=1e-5, atol=1e-6)
    single = zero_shot_classifier(model, [CLASSNAMES[5]], TEMPLATES, progress=False)
    torch.testing.assert_close(single[:, 0], weights[:, 5], rtol=1e-5, atol=1e-6)


def test_by_hand_for_one_class(model):
    """The recipe of §3.1.4 written out for one class: normalise each caption,
    average, normalise again."""
    texts = [template.format("goldfish") for template in TEMPLATES]
    with torch.no_grad():
        embeddings = model.encode_text(tokenize(texts))
    expected = F.normalize(F.normalize(embeddings, dim=-1).mean(dim=0), dim=0)
    actual = zero_shot_classifier(model, ["goldfish"], TEMPLATES, progress=False)[:, 0]
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_callable_templates_equal_their_strings(model):
    strings = ["a photo of a {}.", "art of the {}."]
    callables = [lambda c: f"a photo of a {c}.", lambda c: f"art of the {c}."]
    torch.testing.assert_close(
        zero_shot_classifier(model, CLASSNAMES[:3], callables, progress=False),
        zero_shot_classifier(model, CLASSNAMES[:3], strings, progress=False),
    )


def test_no_gradients_and_model_untouched(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weights = zero_shot_classifier(model, CLASSNAMES[:2], TEMPLATES[:2], progress=False)
    assert not weights.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fp16_model_gives_fp32_weights(state_dict):
    from clip_ref import convert_weights

    half = convert_weights(build_model(state_dict))
    weights = zero_shot_classifier(half, CLASSNAMES[:3], TEMPLATES[:2], progress=False)
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights.norm(dim=0), torch.ones(3))


def test_progress_bar_only_when_asked(model, capsys):
    zero_shot_classifier(model, CLASSNAMES[:2], TEMPLATES[:1], progress=False)
    assert capsys.readouterr().err == ""
    zero_shot_classifier(model, CLASSNAMES[:2], TEMPLATES[:1], progress=True)
    assert "class" in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad",
    [
        "a photo of a dog.",
        "a {} and a {}.",
        "a photo of a {0}.",
        "a photo of a {label}.",
        "a photo of a {:>9}.",
        "a photo of a {!r}.",
        "a photo {",
        "a photo }",
    ],
)
def test_malformed_templates_are_named_in_the_error(model, bad):
    with pytest.raises(ValueError, match="template"):
        check_template(bad)
    with pytest.raises(ValueError) as error:
        zero_shot_classifier(
            model, CLASSNAMES[:2], ["a photo of a {}.", bad], progress=False
        )
    assert repr(bad) in str(error.value)


def test_literal_braces_are_allowed(model):
    check_template("{{logo}} of a {}")
    weights = zero_shot_classifier(model, ["dog"], ["{{logo}} of a {}"], progress=False)
    assert weights.shape == (CONFIG.embed_dim, 1)


def test_other_bad_arguments(model):
    with pytest.raises(ValueError, match="classnames is empty"):
        zero_shot_classifier(model, [], TEMPLATES, progress=False)
    with pytest.raises(ValueError, match="templates is empty"):
        zero_shot_classifier(model, CLASSNAMES, [], progress=False)
    with pytest.raises(TypeError, match="single string"):
        zero_shot_classifier(model, "dog", TEMPLATES, progress=False)
    with pytest.raises(TypeError, match="single string"):
        zero_shot_classifier(model, CLASSNAMES, "a photo of a {}.", progress=False)
    with pytest.raises(TypeError, match="returned"):
        zero_shot_classifier(model, CLASSNAMES, [lambda c: None], progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        zero_shot_classifier(model, CLASSNAMES, TEMPLATES, batch_size=0, progress=False)


def test_a_caption_too_long_for_the_context_raises(state_dict):
    from support import TINY_VIT

    short_context = build_model(perturbed_state_dict(TINY_VIT))  # context length 16
    with pytest.raises(ValueError, match="context_length=16"):
        zero_shot_classifier(
            short_context,
            ["desert grassland whiptail lizard"],
            ["a low resolution photo of the {} in the top left corner of a picture."],
            progress=False,
        )
