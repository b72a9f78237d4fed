"""Weights in Hugging Face ``transformers`` format (``CLIPModel``), in and out.

Most CLIP weights people hold today are ``transformers`` checkpoints: a folder with
``config.json`` and ``model.safetensors``. The architecture is the same as OpenAI's;
only the names and a few layouts differ:

=========================================  ==========================================
transformers                               OpenAI (clip_ref)
=========================================  ==========================================
``text_model.embeddings.token_embedding``  ``token_embedding``
``*.encoder.layers.i.self_attn.q/k/v_proj``  ``*.resblocks.i.attn.in_proj_*`` (stacked)
``*.self_attn.out_proj``, ``layer_norm1/2``  ``attn.out_proj``, ``ln_1/2``
``*.mlp.fc1``, ``*.mlp.fc2``                 ``mlp.c_fc``, ``mlp.c_proj``
``vision_model.pre_layrnorm``              ``visual.ln_pre`` (sic)
``visual_projection.weight`` [E, D]        ``visual.proj`` [D, E] (transposed)
``text_projection.weight`` [E, D]          ``text_projection`` [D, E] (transposed)
=========================================  ==========================================

Only ViT image towers exist in ``transformers`` (it has no ModifiedResNet). A checkpoint
whose configuration differs from OpenAI's where clip_ref cannot follow (exact GELU in
place of QuickGELU, heads that are not 64 channels wide, another LayerNorm epsilon) is
refused with a clear error rather than converted into a model that computes something
else. Reading a folder needs only ``safetensors``; :func:`from_transformers` and
:func:`to_transformers` on ``CLIPModel`` objects need ``transformers`` itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from .model import CLIP, build_model
from .tokenizer import EOT_TOKEN_ID, SOT_TOKEN_ID

__all__ = [
    "from_transformers",
    "is_transformers_folder",
    "read_transformers_folder",
    "to_transformers",
]

# (transformers' prefix, clip_ref's prefix of its blocks)
_TOWERS = (("text_model.", "transformer."), ("vision_model.", "visual.transformer."))
_BLOCK_NAMES = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}
_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
_NAMES = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "logit_scale": "logit_scale",
}
_TRANSPOSED = {
    "visual_projection.weight": "visual.proj",
    "text_projection.weight": "text_projection",
}


def _tower_config(config: Mapping, tower: str) -> dict:
    part = config.get(f"{tower}_config")
    if part is None:
        raise ValueError(f"the transformers config has no {tower}_config")
    return dict(part)


def _check_config(config: Mapping) -> None:
    """Refuse what clip_ref's architecture cannot compute (see the module docstring)."""
    for tower in ("text", "vision"):
        part = _tower_config(config, tower)
        act = part.get("hidden_act", "quick_gelu")
        if act != "quick_gelu":
            raise ValueError(
                f"the {tower} tower uses hidden_act={act!r}; clip_ref's encoders use "
                "OpenAI's QuickGELU, so this model would compute something else"
            )
        eps = part.get("layer_norm_eps", 1e-5)
        if eps != 1e-5:
            raise ValueError(
                f"the {tower} tower uses layer_norm_eps={eps}; OpenAI's CLIP (and "
                "clip_ref) uses 1e-5"
            )
        width, heads = part.get("hidden_size"), part.get("num_attention_heads")
        if width is not None and heads is not None and width != 64 * heads:
            raise ValueError(
                f"the {tower} tower has {heads} heads for width {width}; clip_ref, "
                "like OpenAI's code, infers 64-channel heads from the weights"
            )
        intermediate = part.get("intermediate_size")
        if width is not None and intermediate not in (None, 4 * width):
            raise ValueError(
                f"the {tower} tower's MLP is {intermediate} wide, not 4 x {width}"
            )


def state_dict_from_transformers(
    state_dict: Mapping[str, torch.Tensor], config: Mapping | None = None
) -> dict[str, torch.Tensor]:
    """A ``CLIPModel`` state dict (and its config as a dict, if known: it is checked)
    -> the same weights under OpenAI's names, which :func:`clip_ref.build_model`
    builds. Raises ValueError for names it does not know."""
    if config is not None:
        _check_config(config)
    ours: dict[str, torch.Tensor] = {}
    stacked: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for name, tensor in state_dict.items():
        if name.endswith("position_ids"):  # a buffer of 0..L-1, not a weight
            continue
        if name in _NAMES:
            ours[_NAMES[name]] = tensor
            continue
        if name in _TRANSPOSED:
            ours[_TRANSPOSED[name]] = tensor.t()
            continue
        for hf_prefix, ours_prefix in _TOWERS:
            head = hf_prefix + "encoder.layers."
            if name.startswith(head):
                index, rest = name[len(head) :].split(".", 1)
                block = f"{ours_prefix}resblocks.{index}."
                module, kind = rest.rsplit(".", 1)  # kind: weight or bias
                if module in (
                    "self_attn.q_proj",
                    "self_attn.k_proj",
                    "self_attn.v_proj",
                ):
                    key = f"{block}attn.in_proj_{kind}"
                    stacked.setdefault(key, {})[module[-6]] = tensor
                elif module in _BLOCK_NAMES:
                    ours[f"{block}{_BLOCK_NAMES[module]}.{kind}"] = tensor
                else:
                    unknown.append(name)
                break
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(
            f"not a transformers CLIPModel state dict: unknown keys {unknown[:5]}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        )
    for key, parts in stacked.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"{key}: the checkpoint lacks some of q, k, v")
        ours[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return ours


def state_dict_to_transformers(model: CLIP) -> dict[str, torch.Tensor]:
    """clip_ref's weights under ``CLIPModel``'s names (the inverse of
    :func:`state_dict_from_transformers`)."""
    if not model.config.is_vit:
        raise ValueError(
            "transformers' CLIPModel has only Vision Transformer image towers; a "
            "ModifiedResNet CLIP (RN50, ...) cannot be converted"
        )
    inverse = {v: k for k, v in _NAMES.items()}
    inverse_t = {v: k for k, v in _TRANSPOSED.items()}
    block_names = {v: k for k, v in _BLOCK_NAMES.items()}
    out = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach()
        if name in inverse:
            out[inverse[name]] = tensor
        elif name in inverse_t:
            out[inverse_t[name]] = tensor.t()
        else:
            hf_prefix = "vision_model." if name.startswith("visual.") else "text_model."
            rest = name.split("resblocks.", 1)[1]
            index, rest = rest.split(".", 1)
            module, kind = rest.rsplit(".", 1)
            block = f"{hf_prefix}encoder.layers.{index}."
            if module == "attn" and kind.startswith("in_proj_"):
                q, k, v = tensor.chunk(3)
                kind = kind[len("in_proj_") :]
                for letter, part in zip("qkv", (q, k, v)):
                    out[f"{block}self_attn.{letter}_proj.{kind}"] = part
            else:
                out[f"{block}{block_names[module]}.{kind}"] = tensor
    return {k: v.contiguous() for k, v in out.items()}


def transformers_config(model: CLIP) -> dict:
    """The ``CLIPConfig`` (as a dict) of a ``CLIPModel`` that computes what ``model``
    computes."""
    c = model.config
    common = {"hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
    return {
        "projection_dim": c.embed_dim,
        "logit_scale_init_value": float(model.logit_scale.detach()),
        "text_config": {
            **common,
            "vocab_size": c.vocab_size,
            "hidden_size": c.transformer_width,
            "intermediate_size": 4 * c.transformer_width,
            "num_attention_heads": c.transformer_heads,
            "num_hidden_layers": c.transformer_layers,
            "max_position_embeddings": c.context_length,
            "projection_dim": c.embed_dim,
            # the text feature is read at the first end token (clip_ref's argmax)
            "bos_token_id": SOT_TOKEN_ID,
            "eos_token_id": EOT_TOKEN_ID,
        },
        "vision_config": {
            **common,
            "hidden_size": c.vision_width,
            "intermediate_size": 4 * c.vision_width,
            "num_attention_heads": c.vision_heads,
            "num_hidden_layers": c.vision_layers,
            "image_size": c.image_resolution,
            "patch_size": c.vision_patch_size,
            "projection_dim": c.embed_dim,
        },
    }


def _import_transformers():
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "converting CLIPModel objects needs Hugging Face transformers: "
            "pip install transformers"
        ) from err
    return transformers


def from_transformers(model_or_state_dict, config=None) -> CLIP:
    """A :class:`clip_ref.CLIP` (fp32, eval mode) with the weights of a ``transformers``
    ``CLIPModel``, or of its state dict plus its config (a ``CLIPConfig`` or the dict of
    ``config.json``).

    Raises ValueError for what cannot be converted faithfully (see the module).
    """
    if isinstance(model_or_state_dict, Mapping):
        if config is None:
            raise ValueError(
                "pass the model's config with its state dict: the activation, "
                "epsilon and heads are checked against it"
            )
        state_dict = model_or_state_dict
    else:
        state_dict = model_or_state_dict.state_dict()
        config = model_or_state_dict.config if config is None else config
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return build_model(state_dict_from_transformers(state_dict, config))


def to_transformers(model: CLIP):
    """A ``transformers.CLIPModel`` (fp32, eval mode) that computes what ``model``
    computes: the same image and text features for the same pixels and token ids."""
    state_dict = state_dict_to_transformers(model)  # refuses ResNets before importing
    transformers = _import_transformers()
    hf = transformers.CLIPModel(transformers.CLIPConfig(**transformers_config(model)))
    state_dict = {k: v.float() for k, v in state_dict.items()}
    missing, unexpected = hf.load_state_dict(state_dict, strict=False)
    # position_ids may be a (non-persistent) buffer, depending on the version
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(
            f"conversion bug: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return hf.eval()


def is_transformers_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a ``transformers`` CLIP checkpoint."""
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file()


def read_transformers_folder(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """OpenAI-named weights from a ``transformers`` checkpoint folder: ``config.json``
    plus ``model.safetensors`` (or ``pytorch_model.bin``, read with
    ``torch.load(weights_only=True)``: nothing in it is run)."""
    path = Path(path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") not in (None, "clip"):
        raise ValueError(
            f"{path}: config.json describes a {config.get('model_type')!r} model, not "
            "a CLIP model"
        )
    safetensors_file, bin_file = path / "model.safetensors", path / "pytorch_model.bin"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        state_dict = load_file(str(safetensors_file))
    elif bin_file.is_file():
        state_dict = torch.load(bin_file, map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(
            f"{path}: a transformers folder needs model.safetensors or "
            "pytorch_model.bin beside config.json (sharded checkpoints are not read)"
        )
    return state_dict_from_transformers(state_dict, config)
