"""``clip_ref.load`` end to end: local files of each format, released names via a
loopback server or the Hugging Face mirror, and the outputs of the loaded model
against the model the checkpoint was made from."""

import dataclasses
import hashlib
import pickle

import pytest
import torch
from PIL import Image
from support import (
    TINY_RESNET,
    TINY_VIT,
    openai_model,
    perturbed_state_dict,
    random_tokens,
    relative_error,
)
from support_files import (
    FakeHub,
    LoopbackServer,
    Payload,
    mark,
    rewrite_archive,
    traced_openai_archive,
)

import clip_ref
from clip_ref.checkpoint import UnsafeCheckpointError
from clip_ref.download import RELEASED

TOLERANCE = 1e-5  # relative error between two fp32 implementations of the same function


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    monkeypatch.delenv("CLIP_REF_CACHE", raising=False)
    monkeypatch.delenv("CLIP_REF_OFFLINE", raising=False)


def inputs(config, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(
        2, 3, config.image_resolution, config.image_resolution, generator=generator
    )
    return images, random_tokens(3, config.context_length, seed=seed)


def logits(model, config):
    images, texts = inputs(config)
    with torch.no_grad():
        return model(images, texts)[0]


def check_loaded(model, preprocess, config):
    assert isinstance(model, clip_ref.CLIP) and not model.training
    assert all(not m.training for m in model.modules())
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # fp32 on the CPU
    assert model.visual.input_resolution == config.image_resolution
    image = Image.new("RGB", (50, 40), (200, 30, 90))
    assert preprocess(image).shape == (
        3,
        config.image_resolution,
        config.image_resolution,
    )


@pytest.mark.parametrize("config", [TINY_VIT, TINY_RESNET], ids=["vit", "resnet"])
def test_torchscript_archive_computes_like_the_traced_model(tmp_path, config):
    path = tmp_path / "tiny.pt"
    eager = traced_openai_archive(path, config)
    model, preprocess = clip_ref.load(path, device="cpu")
    check_loaded(model, preprocess, config)
    images, texts = inputs(config)
    with torch.no_grad():
        expected = eager(images, texts)[0]
    assert relative_error(logits(model, config), expected) < TOLERANCE


def test_fp16_archive_loads_as_fp32_with_the_rounded_weights(tmp_path):
    path = tmp_path / "tiny16.pt"
    traced_openai_archive(path, TINY_VIT, dtype=torch.float16)
    model, preprocess = clip_ref.load(str(path), device="cpu")
    check_loaded(model, preprocess, TINY_VIT)
    rounded = {
        k: v.half().float() if v.is_floating_point() else v
        for k, v in perturbed_state_dict(TINY_VIT).items()
    }
    reference = openai_model(TINY_VIT, rounded)
    assert (
        relative_error(logits(model, TINY_VIT), logits(reference, TINY_VIT)) < TOLERANCE
    )


@pytest.fixture(scope="module")
def weights():
    return perturbed_state_dict(TINY_VIT, seed=3)


def assert_weights(model, weights):
    state_dict = model.state_dict()
    assert set(state_dict) == set(weights)
    for key, tensor in weights.items():
        assert torch.equal(state_dict[key], tensor.float()), key


def test_state_dict_file(tmp_path, weights):
    path = tmp_path / "weights.pt"
    torch.save(weights, path)
    model, preprocess = clip_ref.load(path, device="cpu")
    check_loaded(model, preprocess, TINY_VIT)
    assert_weights(model, weights)
    reference = openai_model(TINY_VIT, weights)
    assert (
        relative_error(logits(model, TINY_VIT), logits(reference, TINY_VIT)) < TOLERANCE
    )


def test_safetensors_file(tmp_path, weights):
    from safetensors.torch import save_file

    path = tmp_path / "open_clip_model.safetensors"
    save_file(weights, str(path))
    model, preprocess = clip_ref.load(path, device="cpu")
    check_loaded(model, preprocess, TINY_VIT)
    assert_weights(model, weights)


@pytest.fixture
def released_tiny(tmp_path_factory, monkeypatch):
    """ViT-B/32 in the table now means a tiny traced archive served by a loopback
    server."""
    archive = tmp_path_factory.mktemp("served") / "ViT-B-32.pt"
    traced_openai_archive(archive, TINY_VIT, dtype=torch.float16)
    content = archive.read_bytes()
    server = LoopbackServer()
    server.files["/clip/ViT-B-32.pt"] = content
    release = dataclasses.replace(
        RELEASED["ViT-B/32"],
        sha256=hashlib.sha256(content).hexdigest(),
        url=server.url("/clip/ViT-B-32.pt"),
    )
    monkeypatch.setitem(RELEASED, "ViT-B/32", release)
    yield server, archive
    server.close()


def test_released_name_is_downloaded_verified_and_cached(
    tmp_path, released_tiny, monkeypatch
):
    server, archive = released_tiny
    model, preprocess = clip_ref.load(
        "ViT-B/32", device="cpu", download_root=tmp_path, progress=False
    )
    check_loaded(model, preprocess, TINY_VIT)
    assert server.requests == ["/clip/ViT-B-32.pt"]
    assert (tmp_path / "ViT-B-32.pt").read_bytes() == archive.read_bytes()
    # Again, and offline: the verified cache serves it without a request.
    monkeypatch.setenv("CLIP_REF_OFFLINE", "1")
    again, _ = clip_ref.load("ViT-B/32", device="cpu", download_root=tmp_path)
    assert len(server.requests) == 1
    assert_weights(again, model.state_dict())


def test_released_name_from_the_hub_mirror(
    tmp_path, weights, monkeypatch, released_tiny
):
    import huggingface_hub
    from safetensors.torch import save

    server, _ = released_tiny
    hub = FakeHub(content=save(weights))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub)
    model, _ = clip_ref.load(
        "ViT-B/32", device="cpu", download_root=tmp_path, source="hf"
    )
    assert_weights(model, weights)
    assert (
        hub.calls[0]["repo_id"] == "timm/vit_base_patch32_clip_224.openai"
        and server.requests == []
    )


def test_unknown_name_lists_the_models(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"'ViT-B/33' is neither a released model \(RN50.*ViT-B/32",
    ):
        clip_ref.load("ViT-B/33", device="cpu", download_root=tmp_path)


def test_errors_openai_raises_as_runtime_errors_are_runtime_errors_too(tmp_path):
    """Client code written for OpenAI's clip catches RuntimeError; the specific types
    still work for everyone else."""
    with pytest.raises(clip_ref.ModelNotFoundError) as missing:
        clip_ref.load(tmp_path / "nothing.pt", device="cpu")
    assert isinstance(missing.value, RuntimeError)
    assert isinstance(missing.value, FileNotFoundError)
    with pytest.raises(clip_ref.TextTooLongError) as long:
        clip_ref.tokenize("word " * 100)
    assert isinstance(long.value, RuntimeError) and isinstance(long.value, ValueError)


def test_jit_true_warns_and_returns_the_eager_model(tmp_path):
    archive = tmp_path / "tiny.pt"
    traced_openai_archive(archive)
    eager, _ = clip_ref.load(archive, "cpu", False)  # OpenAI's positional order
    with pytest.warns(UserWarning, match="jit=True"):
        scripted, _ = clip_ref.load(archive, device="cpu", jit=True)
    assert type(scripted) is type(eager) is clip_ref.CLIP
    for a, b in zip(scripted.state_dict().values(), eager.state_dict().values()):
        assert torch.equal(a, b)


def test_malicious_archive_is_refused_by_load(tmp_path):
    archive, evil, flag = tmp_path / "tiny.pt", tmp_path / "evil.pt", tmp_path / "flag"
    traced_openai_archive(archive)
    rewrite_archive(
        archive, evil, {"/data.pkl": pickle.dumps(Payload(mark, str(flag)), protocol=2)}
    )
    with pytest.raises(UnsafeCheckpointError):
        clip_ref.load(evil, device="cpu")
    assert not flag.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_load_is_fp16_like_the_release(tmp_path, weights):
    path = tmp_path / "weights.pt"
    torch.save(weights, path)
    model, _ = clip_ref.load(path, device="cuda")
    assert model.dtype == torch.float16 and model.visual.conv1.weight.is_cuda
    assert model.text_projection.dtype == torch.float16
    # layer norms stay fp32, as in convert_weights
    assert model.ln_final.weight.dtype == torch.float32
    images, texts = inputs(TINY_VIT)
    with torch.no_grad():
        actual = model(images.cuda(), texts.cuda())[0].float().cpu()
    expected = logits(openai_model(TINY_VIT, weights), TINY_VIT)
    assert relative_error(actual, expected) < 1e-2  # fp16 arithmetic


def test_cuda_branch_casts_like_the_release_without_a_gpu(
    tmp_path, weights, monkeypatch
):
    """Runs everywhere: pretend the move to CUDA happened, and check what load does
    for a CUDA device."""
    path = tmp_path / "weights.pt"
    torch.save(weights, path)
    moves = []

    def pretend_to(module, *args, **kwargs):
        moves.append(args)
        return module

    monkeypatch.setattr(torch.nn.Module, "to", pretend_to)
    model, _ = clip_ref.load(path, device="cuda")
    assert moves == [(torch.device("cuda"),)]
    assert model.dtype == torch.float16 and model.text_projection.dtype == torch.float16
    assert model.ln_final.weight.dtype == torch.float32 and not model.training
    model, _ = clip_ref.load(path, device="cpu")
    assert model.dtype == torch.float32
