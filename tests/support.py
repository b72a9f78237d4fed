"""Shared test helpers: random-but-nontrivial weights, and the two reference
implementations built from them.

The references (OpenAI's ``clip`` from clip-anytorch, and ``open_clip``) are used here
only as test oracles.
"""

from __future__ import annotations

import contextlib
import warnings
from unittest import mock

import torch

from clip_ref import CLIP, EOT_TOKEN_ID, SOT_TOKEN_ID, CLIPConfig

# A small config of each family, for tests that need many models fast.
TINY_VIT = CLIPConfig(
    embed_dim=32,
    image_resolution=32,
    vision_layers=2,
    vision_width=64,
    vision_patch_size=8,
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=2,
    context_length=16,
    vocab_size=49408,
)
TINY_RESNET = CLIPConfig(
    embed_dim=32,
    image_resolution=64,
    vision_layers=(1, 1, 1, 1),
    vision_width=8,
    vision_patch_size=None,
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=2,
    context_length=16,
    vocab_size=49408,
)


def perturbed_state_dict(config: CLIPConfig, seed: int = 0) -> dict:
    """OpenAI-format weights of ``config``: the initialisation, perturbed so no tensor
    is trivially 0 or 1.

    Layer-norm and batch-norm gains start at 1 and biases at 0; a test on such weights
    cannot notice a swapped gain and bias. Every floating tensor gets noise here, and
    batch-norm variances stay positive.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    state_dict = CLIP(config).state_dict()
    out = {}
    for key, tensor in state_dict.items():
        if not tensor.is_floating_point():
            out[key] = tensor.clone()
            continue
        noise = torch.randn(tensor.shape, generator=generator)
        if key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(tensor.shape, generator=generator)
        elif key == "logit_scale":
            out[key] = tensor + 0.1 * noise
        else:
            std = tensor.std().item() if tensor.numel() > 1 else 0.0
            scale = 0.1 * std if std > 0 else 0.05
            # tensor + scale * noise, without another copy
            out[key] = noise.mul_(scale).add_(tensor)
    return out


def random_tokens(batch: int, context_length: int, seed: int = 0) -> torch.Tensor:
    """Token rows shaped like ``tokenize``'s: SOT, random ids, EOT at a varying
    position, zero padding."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.zeros(batch, context_length, dtype=torch.long)
    for i in range(batch):
        length = int(torch.randint(1, context_length - 1, (1,), generator=generator))
        rows[i, 0] = SOT_TOKEN_ID
        rows[i, 1 : length + 1] = torch.randint(
            0, SOT_TOKEN_ID, (length,), generator=generator
        )
        rows[i, length + 1] = EOT_TOKEN_ID
    return rows


# torch.nn.init's in-place initialisers, which every module's reset_parameters and both
# references' own init code go through (by module attribute, so patching the module
# reaches them).
_INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
)


@contextlib.contextmanager
def weights_left_uninitialised():
    """Skip the random initialisation of a model whose every weight
    ``load_state_dict(strict=True)`` then overwrites. For the largest models
    initialising takes longer than the forward pass being tested.

    Only torch.nn.init's initialisers become no-ops; buffers computed otherwise
    (attention masks) are unaffected, and a weight that the state dict does not cover
    makes the strict load fail, not pass.
    """
    with contextlib.ExitStack() as stack:
        for name in _INITIALISERS:
            stack.enter_context(
                mock.patch.object(torch.nn.init, name, lambda tensor, *a, **k: tensor)
            )
        yield


def openai_model(config: CLIPConfig, state_dict: dict):
    """OpenAI's reference ``clip.model.CLIP``, fp32, with ``state_dict`` loaded (no
    fp16 round trip)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clip-anytorch imports pkg_resources
        from clip.model import CLIP as OpenAICLIP
    with weights_left_uninitialised():
        model = OpenAICLIP(
            config.embed_dim,
            config.image_resolution,
            config.vision_layers,
            config.vision_width,
            config.vision_patch_size,
            config.context_length,
            config.vocab_size,
            config.transformer_width,
            config.transformer_heads,
            config.transformer_layers,
        )
    model.load_state_dict(state_dict, strict=True)
    return model.float().eval()


def open_clip_model(config: CLIPConfig, state_dict: dict):
    """open_clip's ``CLIP`` with QuickGELU, fp32, with ``state_dict`` loaded (no fp16
    round trip)."""
    from open_clip.model import CLIP as OpenClipCLIP
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(
        layers=config.vision_layers,
        width=config.vision_width,
        patch_size=config.vision_patch_size or 16,
        image_size=config.image_resolution,
    )
    text = CLIPTextCfg(
        context_length=config.context_length,
        vocab_size=config.vocab_size,
        width=config.transformer_width,
        heads=config.transformer_heads,
        layers=config.transformer_layers,
    )
    with weights_left_uninitialised():
        model = OpenClipCLIP(
            config.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True
        )
    model.load_state_dict(state_dict, strict=True)
    return model.float().eval()


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    """||actual - reference|| / ||reference||, computed in float64."""
    actual, reference = actual.double(), reference.double()
    return ((actual - reference).norm() / reference.norm()).item()


def logits(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    image_features = image_features / image_features.norm(dim=1, keepdim=True)
    text_features = text_features / text_features.norm(dim=1, keepdim=True)
    return logit_scale.exp() * image_features @ text_features.t()
