"""The CLIP model: two encoders, one joint embedding space, a learned temperature (paper
§2.3-2.5).

An image encoder (:class:`~clip_ref.resnet.ModifiedResNet` or
:class:`~clip_ref.vit.VisionTransformer`) and a text Transformer each map their input to
a vector; linear projections bring both into the same E-dimensional space, where cosine
similarity scaled by ``exp(logit_scale)`` gives the logits of the contrastive objective.

Parameter names are OpenAI's, so the released weights load with
``load_state_dict(strict=True)``. Shapes: B images, T texts, L = context length, D text
width, E embedding dim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from .config import (
    METADATA_KEYS,
    CLIPConfig,
    StateDictMismatchError,
    config_from_state_dict,
)
from .layers import LayerNorm, MultiheadSelfAttention, Transformer, causal_mask
from .resnet import ModifiedResNet
from .vit import VisionTransformer


class CLIP(nn.Module):
    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        self.context_length = config.context_length
        self.vocab_size = config.vocab_size

        if config.is_vit:
            self.visual = VisionTransformer(
                input_resolution=config.image_resolution,
                patch_size=config.vision_patch_size,
                width=config.vision_width,
                layers=config.vision_layers,
                heads=config.vision_heads,
                output_dim=config.embed_dim,
            )
        else:
            self.visual = ModifiedResNet(
                layers=config.vision_layers,
                output_dim=config.embed_dim,
                heads=config.vision_heads,
                input_resolution=config.image_resolution,
                width=config.vision_width,
            )

        # A causal mask makes the text encoder a left-to-right language model, as in
        # GPT-2; the paper keeps it "to preserve the ability to initialize with a
        # pre-trained language model or add language modeling as an auxiliary objective"
        # (§2.4).
        self.transformer = Transformer(
            config.transformer_width,
            config.transformer_layers,
            config.transformer_heads,
            attn_mask=self.build_attention_mask(),
        )
        self.token_embedding = nn.Embedding(config.vocab_size, config.transformer_width)
        self.positional_embedding = nn.Parameter(
            torch.empty(config.context_length, config.transformer_width)
        )
        self.ln_final = LayerNorm(config.transformer_width)
        self.text_projection = nn.Parameter(
            torch.empty(config.transformer_width, config.embed_dim)
        )
        # Log of the inverse temperature, initialised to 1/0.07 as in Wu et al. (2018)
        # (paper §2.5).
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))

        self.initialize_parameters()

    def initialize_parameters(self) -> None:
        """OpenAI's initialisation, for training from scratch (loading weights
        overwrites all of it)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)

        if isinstance(self.visual, ModifiedResNet):
            pool = self.visual.attnpool
            std = pool.c_proj.in_features**-0.5
            for proj in (pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj):
                nn.init.normal_(proj.weight, std=std)
            # Zero the last batch-norm gain of every block, so each residual branch
            # starts as the identity.
            for stage in (
                self.visual.layer1,
                self.visual.layer2,
                self.visual.layer3,
                self.visual.layer4,
            ):
                for block in stage:
                    nn.init.zeros_(block.bn3.weight)

        width, layers = self.config.transformer_width, self.config.transformer_layers
        # residual outputs shrink with depth (GPT-2)
        proj_std = width**-0.5 * (2 * layers) ** -0.5
        attn_std = width**-0.5
        fc_std = (2 * width) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    def build_attention_mask(self) -> torch.Tensor:
        """The text encoder's causal mask [L, L] (additive: -inf above the diagonal),
        on the CPU; the blocks move it to their input's device."""
        return causal_mask(self.context_length, device="cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the encoders compute in (fp16 after :func:`convert_weights`)."""
        return self.visual.conv1.weight.dtype

    def encode_image(self, image: torch.Tensor, project: bool = True) -> torch.Tensor:
        """Images [B, 3, R, R], normalised as by :class:`clip_ref.Preprocess` ->
        features [B, E]. ``project=False`` returns the features before the projection
        into the joint space: a ViT's class token after ``ln_post`` [B, D] (what the
        paper's linear probes use for ViTs, appendix A.3), a ResNet's attention-pooled
        features before ``c_proj`` [B, 32 * width]."""
        resolution = self.visual.input_resolution
        if image.ndim != 4 or tuple(image.shape[1:]) != (3, resolution, resolution):
            raise ValueError(
                f"expected images of shape [B, 3, {resolution}, {resolution}], got "
                f"{list(image.shape)}"
            )
        return self.visual(image.to(self.dtype), project=project)

    def encode_text(self, text: torch.Tensor, project: bool = True) -> torch.Tensor:
        """Token ids [T, L] from :func:`clip_ref.tokenizer.tokenize` -> features [T,
        E]; ``project=False``: the end token's state before ``text_projection`` [T,
        D]."""
        if text.ndim != 2 or text.shape[1] != self.context_length:
            raise ValueError(
                f"expected token ids of shape [T, {self.context_length}], got "
                f"{list(text.shape)}"
            )
        if text.is_floating_point() or text.is_complex():
            raise TypeError(f"expected integer token ids, got dtype {text.dtype}")
        x = self.token_embedding(text).to(self.dtype)  # [T, L, D]
        x = x + self.positional_embedding.to(self.dtype)
        # The Transformer takes OpenAI's tokens-first layout (see clip_ref.layers).
        x = self.transformer(x.permute(1, 0, 2))  # [T, L, D] -> [L, T, D]
        x = x.permute(1, 0, 2)  # [L, T, D] -> [T, L, D]
        x = self.ln_final(x)
        # The end-of-text token has the largest id. Under the causal mask it is the only
        # position that has seen the whole caption, so its state summarises the text.
        eot = text.argmax(dim=-1)  # [T]
        x = x[torch.arange(x.shape[0], device=x.device), eot]  # [T, D]
        return x @ self.text_projection if project else x  # [T, E], or [T, D]

    def forward(
        self, image: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled cosine similarities: ``(logits_per_image [B, T], logits_per_text
        [T, B])``."""
        image_features = self.encode_image(image)
        text_features = self.encode_text(text)
        image_features = image_features / image_features.norm(dim=1, keepdim=True)
        text_features = text_features / text_features.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()


def _fit_report(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list:
    """Lines describing every way ``state_dict`` fails to fit ``model`` (empty when
    it fits)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k}: expected {tuple(expected[k].shape)}, got {tuple(state_dict[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]

    def listed(title, items):
        shown = ", ".join(items[:10]) + (
            f", ... and {len(items) - 10} more" if len(items) > 10 else ""
        )
        return [f"  {title} ({len(items)}): {shown}"] if items else []

    return (
        listed("missing keys", missing)
        + listed("unexpected keys", unexpected)
        + listed("wrong shapes", wrong)
    )


def build_model(state_dict: Mapping[str, torch.Tensor]) -> CLIP:
    """Build the CLIP model that ``state_dict`` describes and load it, strictly. Returns
    fp32, eval mode.

    Accepts OpenAI's state dicts, including their ``input_resolution``,
    ``context_length`` and ``vocab_size`` entries (checked against the shapes, then
    dropped). Raises :class:`~clip_ref.config.StateDictMismatchError` naming the
    offending keys and shapes otherwise. The caller's dictionary and tensors are left
    untouched.
    """
    config = config_from_state_dict(state_dict)
    tensors = dict(state_dict)
    implied_by_shapes = config.metadata()
    for key in METADATA_KEYS:
        if key in tensors:
            value = int(tensors.pop(key))
            implied = implied_by_shapes[key]
            if value != implied:
                raise StateDictMismatchError(
                    f"the entry {key}={value} contradicts the tensor shapes, which "
                    f"imply {key}={implied}"
                )

    # Build without allocating or initialising weights, then take the checkpoint's
    # tensors as fp32 copies.
    with torch.device("meta"):
        model = CLIP(config)
    problems = _fit_report(model, tensors)
    if problems:
        raise StateDictMismatchError(
            f"the state dict does not fit the architecture it implies ({config}):\n"
            + "\n".join(problems)
        )
    tensors = {
        k: v.detach().to(
            "cpu", torch.float32 if v.is_floating_point() else v.dtype, copy=True
        )
        for k, v in tensors.items()
    }
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()


def convert_weights(model: nn.Module, dtype: torch.dtype = torch.float16) -> nn.Module:
    """Cast the weights that do the heavy lifting to ``dtype`` (fp16 by default), in
    place, like the release.

    Convolutions, linear layers, attention projections and the two output projections
    are cast; embeddings, layer norms and batch norms stay fp32 (the encoders cast their
    outputs). Use it for GPU inference; fp32 stays the default everywhere else. Returns
    the model.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(dtype)
        if isinstance(module, MultiheadSelfAttention):
            module.in_proj_weight.data = module.in_proj_weight.data.to(dtype)
            module.in_proj_bias.data = module.in_proj_bias.data.to(dtype)
        for name in ("text_projection", "proj"):
            param = getattr(module, name, None)
            if isinstance(param, nn.Parameter):
                param.data = param.data.to(dtype)
    return model
