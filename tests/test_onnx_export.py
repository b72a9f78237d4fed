"""ONNX export: onnxruntime runs the exported encoders of RN50 and ViT-B/32 (random
weights, the released shapes) and gives PyTorch's features within 1e-4 relative in
fp32, at batch sizes 1 and 7 (the batch dimension is dynamic)."""

from __future__ import annotations

import pytest
import torch

import clip_ref

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow


def relative(a, b) -> float:
    a, b = (
        torch.as_tensor(a, dtype=torch.float64),
        torch.as_tensor(b, dtype=torch.float64),
    )
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module", params=["RN50", "ViT-B/32"])
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    model = clip_ref.CLIP(clip_ref.CLIPConfig.from_name(request.param)).eval()
    out = tmp_path_factory.mktemp("onnx")
    paths = clip_ref.export_onnx(model, out)
    return model, paths


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_gives_pytorch_features(exported, batch):
    model, paths = exported
    assert sorted(p.name for p in paths.values()) == [
        "image_encoder.onnx",
        "text_encoder.onnx",
    ]
    generator = torch.Generator().manual_seed(batch)
    R = model.visual.input_resolution
    pixels = torch.randn(batch, 3, R, R, generator=generator)
    # captions of different lengths: the feature is read at each one's end token
    words = ["a photo of a cat", "a diagram", "two dogs in the snow", "x"] * 2
    tokens = clip_ref.tokenize(words[:batch])
    with torch.no_grad():
        image, text = model.encode_image(pixels), model.encode_text(tokens)
    (onnx_image,) = session(paths["image"]).run(None, {"pixels": pixels.numpy()})
    (onnx_text,) = session(paths["text"]).run(None, {"tokens": tokens.numpy()})
    assert onnx_image.shape == (batch, model.config.embed_dim)
    assert relative(onnx_image, image) < 1e-4
    assert relative(onnx_text, text) < 1e-4


def test_the_graphs_have_a_dynamic_batch(exported):
    _, paths = exported
    for path in paths.values():
        graph = onnx.load(str(path)).graph
        for value in (*graph.input, *graph.output):
            first = value.type.tensor_type.shape.dim[0]
            assert first.dim_param == "batch", (path.name, value.name)


def test_export_refuses_other_models(tmp_path):
    with pytest.raises(TypeError, match="clip_ref.CLIP"):
        clip_ref.export_onnx(torch.nn.Linear(2, 2), tmp_path)


@pytest.mark.parametrize("training", [False, True])
def test_export_leaves_the_model_in_its_mode(training, tmp_path):
    """The export traces in eval mode and gives the model back as it came (a ResNet's
    batch norm computes other numbers in training mode)."""
    import dataclasses

    config = dataclasses.replace(
        clip_ref.CLIPConfig.from_name("RN50"),
        vision_width=8,
        image_resolution=64,
        transformer_width=64,
        transformer_heads=1,
        transformer_layers=1,
    )
    torch.manual_seed(0)
    model = clip_ref.CLIP(config).train(training)
    paths = clip_ref.export_onnx(model, tmp_path)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model.eval().encode_image(pixels)
    (onnx_image,) = session(paths["image"]).run(None, {"pixels": pixels.numpy()})
    assert relative(onnx_image, expected) < 1e-4
