"""Dense features from a ViT, as segmentation and retrieval code reads them: every
patch token's final state projected into the joint space, the states after each block,
and the last block's attention weights, by driving the image Transformer directly in
OpenAI's tokens-first layout."""

import os

import clip
import skimage
import torch
from PIL import Image

model, preprocess = clip.load("ViT-B/32", device="cpu")
visual = model.visual
image = preprocess(Image.open(os.path.join(skimage.data_dir, "chelsea.png")))[None]

with torch.no_grad():
    x = visual.conv1(image.type(model.dtype))  # [B, width, grid, grid]
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, grid ** 2, width]
    cls = visual.class_embedding.to(x.dtype) + torch.zeros(
        x.shape[0], 1, x.shape[-1], dtype=x.dtype
    )
    x = torch.cat([cls, x], dim=1)
    x = x + visual.positional_embedding.to(x.dtype)
    x = visual.ln_pre(x)
    x = x.permute(1, 0, 2)  # NLD -> LND
    states = []
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
        states.append(x[0].clone())  # the class token after each block
    last = visual.transformer.resblocks[-1]
    normed = last.ln_1(x)
    _, weights = last.attn(normed, normed, normed, need_weights=True)
    x = last(x)
    x = x.permute(1, 0, 2)  # LND -> NLD
    tokens = visual.ln_post(x) @ visual.proj  # every token, projected
    pooled = model.encode_image(image)

RESULTS = {
    "patch_features": tokens.numpy(),
    "class_token_equals_encode_image": bool(
        torch.allclose(tokens[:, 0], pooled, atol=1e-6)
    ),
    "states": torch.stack(states).numpy(),
    "attention": weights.numpy(),
}
