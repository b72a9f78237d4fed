"""Prompt learning (CoOp, Zhou et al. 2022) drives the text Transformer directly:
learned context vectors replace the embeddings of placeholder tokens, and the text
encoder is re-run from the embeddings, in OpenAI's tokens-first layout. Also: errors
that client code catches as RuntimeError."""

import clip
import torch
from torch import nn

model, _ = clip.load("RN50", device="cpu")


class TextEncoder(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.dtype = clip_model.dtype

    def forward(self, prompts, tokenized_prompts):
        x = prompts + self.positional_embedding.type(self.dtype)
        x = x.permute(1, 0, 2)  # NLD -> LND
        x = self.transformer(x)
        x = x.permute(1, 0, 2)  # LND -> NLD
        x = self.ln_final(x).type(self.dtype)
        eot = tokenized_prompts.argmax(dim=-1)
        return x[torch.arange(x.shape[0]), eot] @ self.text_projection


classnames = ["cat", "dog", "red motorcycle"]
n_ctx = 4
tokenized = clip.tokenize([" ".join(["X"] * n_ctx) + f" {c}." for c in classnames])
with torch.no_grad():
    embedding = model.token_embedding(tokenized).type(model.dtype)
generator = torch.Generator().manual_seed(0)
ctx = torch.randn(n_ctx, embedding.shape[-1], generator=generator) * 0.02
prompts = torch.cat(
    [
        embedding[:, :1],  # start token
        ctx.expand(len(classnames), -1, -1),  # learned context
        embedding[:, 1 + n_ctx :],  # class name, end token, padding
    ],
    dim=1,
)
encoder = TextEncoder(model)
with torch.no_grad():
    learned = encoder(prompts, tokenized)
    plain = encoder(embedding, tokenized)
    reference = model.encode_text(tokenized)

errors = {}
for label, call in {
    "too long": lambda: clip.tokenize("a very long caption " * 40),
    "unknown model": lambda: clip.load("ViT-Z/99", device="cpu"),
}.items():
    try:
        call()
        errors[label] = "no error"
    except RuntimeError:
        errors[label] = "RuntimeError"

mask = model.build_attention_mask()
RESULTS = {
    "learned": learned.numpy(),
    "plain_equals_encode_text": bool(torch.allclose(plain, reference, atol=1e-6)),
    "plain": plain.numpy(),
    "mask": mask.numpy(),
    "block_mask_is_model_mask": bool(
        torch.equal(model.transformer.resblocks[0].attn_mask, mask)
    ),
    **errors,
}
