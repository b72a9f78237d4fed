"""The objectives CLIP was chosen over (paper §2.3, Figure 2): predict the caption, or
its bag of words.

Before settling on the contrastive objective, the paper's authors trained an image
encoder with a text Transformer that predicts the caption word by word, like an
image-captioning model, and compared it with a model that predicts only which words the
caption contains (its bag of words), and with the contrastive objective. They found the
contrastive one learned zero-shot ImageNet classification several times faster, and gave
the reason: predicting "the exact words of the text accompanying each image" is hard,
because an image can be described in many correct ways; matching a caption to its image
is easier.

This module holds the two predictive objectives, and the contrastive one behind the same
interface, so that one loop (:func:`train_objective`) trains all three on the same pairs
with the same image encoder (that of ``CLIP(config)``, built and initialised by
:class:`~clip_ref.model.CLIP`) and the same recipe as :func:`clip_ref.train.train`. Each
model has

* ``loss(images, tokens)``: the training loss of a batch of pairs, images [N, 3, R, R]
  (normalised) and caption tokens [N, L] as :func:`clip_ref.tokenize` makes them;
* ``scores(images, tokens)`` [N, T]: how well each of T texts fits each image, for
  zero-shot classification (the class whose prompt scores highest wins): the
  log-likelihood of the text's tokens for the caption model, of its words for the bag of
  words, and the scaled cosine similarity for the contrastive model.

The predictive models predict tokens of a *vocabulary*: the token ids that occur in the
training captions and in the prompts they will score (a few dozen in the toy world), not
all 49,408, which would make their output layer cost more than the rest of the model. A
text with a token outside it is an error.

Shapes: N images, L context length, T texts, V vocabulary size, E embedding dim, D text
width.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import CLIPConfig
from ..layers import LayerNorm, Transformer, causal_mask
from ..loss import contrastive_loss
from ..model import CLIP
from ..tokenizer import EOT_TOKEN_ID, SOT_TOKEN_ID
from ..train import TrainConfig, clamp_logit_scale
from .in_memory import train_on_tensors

__all__ = [
    "BagOfWords",
    "BagOfWordsContrastive",
    "CaptionModel",
    "Contrastive",
    "images_to_reach",
    "train_objective",
    "vocabulary",
]


def vocabulary(tokens: torch.Tensor) -> torch.Tensor:
    """The sorted token ids that occur in ``tokens`` [N, L], padding (0) left out:
    the predictive models' output vocabulary [V]. Pass the training captions *and*
    the prompts the model will score."""
    ids = tokens.unique()
    return ids[ids != 0]


class _Predictive(nn.Module):
    """What both predictive models share: CLIP's image encoder, and token ids mapped
    to the vocabulary."""

    def __init__(self, config: CLIPConfig, vocab: torch.Tensor):
        super().__init__()
        if (
            vocab.ndim != 1
            or len(vocab) < 2
            or not (vocab[1:] > vocab[:-1]).all()
            or (vocab == 0).any()
        ):
            raise ValueError(
                "vocab must be sorted, distinct, non-padding token ids (use "
                "objectives.vocabulary)"
            )
        self.config = config
        self.visual = CLIP(
            config
        ).visual  # CLIP's own construction and initialisation; the text side is dropped
        self.register_buffer("vocab", vocab.clone(), persistent=True)  # [V]

    def local_ids(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids [*, L] -> positions in the vocabulary, padding -> -1; an unknown
        token is an error."""
        position = torch.searchsorted(self.vocab, tokens).clamp(max=len(self.vocab) - 1)
        known = self.vocab[position] == tokens
        padding = tokens == 0
        if not (known | padding).all():
            unknown = sorted(set(tokens[~(known | padding)].tolist()))
            raise ValueError(
                f"tokens {unknown[:10]} are not in the vocabulary the model predicts "
                f"(its {len(self.vocab)} tokens: build it from the training captions "
                "and the prompts)"
            )
        return torch.where(padding, torch.full_like(position, -1), position)


class BagOfWords(_Predictive):
    """Predict which words the caption contains, in any order: a linear layer on the
    image features gives a distribution over the vocabulary, trained towards the
    caption's words (start and end tokens aside), each with an equal share
    (cross-entropy with that target distribution)."""

    def __init__(self, config: CLIPConfig, vocab: torch.Tensor):
        super().__init__(config, vocab)
        self.head = nn.Linear(config.embed_dim, len(vocab))

    def word_counts(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, L] token ids -> [N, V] how many times each vocabulary token occurs as
        a word."""
        ids = self.local_ids(tokens)
        words = (tokens != 0) & (tokens != SOT_TOKEN_ID) & (tokens != EOT_TOKEN_ID)
        counts = torch.zeros(len(tokens), len(self.vocab), device=tokens.device)
        return counts.scatter_add_(1, ids.clamp(min=0), words.float())

    def log_probs(self, images: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.head(self.visual(images)), dim=-1)  # [N, V]

    def loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        counts = self.word_counts(tokens)
        target = counts / counts.sum(dim=-1, keepdim=True).clamp(min=1)
        return -(target * self.log_probs(images)).sum(dim=-1).mean()

    def scores(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """[N, T]: the log-likelihood of each text's words, drawn independently from
        the image's bag."""
        return self.log_probs(images) @ self.word_counts(tokens).T


class CaptionModel(_Predictive):
    """Predict the caption token by token: a causal text Transformer whose first
    position is the image (its features, projected to the text width), as in a
    decoder-only captioning model. Position j reads the image and tokens 0..j-1 and
    predicts token j, from the first word up to the end token."""

    def __init__(self, config: CLIPConfig, vocab: torch.Tensor):
        super().__init__(config, vocab)
        width = config.transformer_width
        self.image_projection = nn.Linear(config.embed_dim, width)
        self.token_embedding = nn.Embedding(len(vocab), width)
        self.positional_embedding = nn.Parameter(
            torch.randn(config.context_length, width) * 0.01
        )
        self.transformer = Transformer(
            width,
            config.transformer_layers,
            config.transformer_heads,
            attn_mask=causal_mask(config.context_length, device="cpu"),
        )
        self.ln_final = LayerNorm(width)
        self.head = nn.Linear(width, len(vocab))
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def _token_log_probs(
        self, image_features: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
        """[M, E] image features and [M, L] tokens -> [M] summed log-probability of
        tokens 1.. up to the end token (padding after it is not predicted)."""
        ids = self.local_ids(tokens)  # [M, L]
        length = tokens.shape[1]
        # tokens 0..L-2, [M, L-1, D]
        inputs = self.token_embedding(ids[:, : length - 1].clamp(min=0))
        # [M, L, D]
        x = torch.cat([self.image_projection(image_features)[:, None], inputs], dim=1)
        x = x + self.positional_embedding[:length]
        # the Transformer takes tokens first: [M, L, D] -> [L, M, D] and back
        x = self.ln_final(self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2))
        # position j predicts token j, [M, L-1, V]
        log_probs = F.log_softmax(self.head(x[:, 1:]), dim=-1)
        targets = ids[:, 1:]  # tokens 1..L-1, [M, L-1]
        picked = log_probs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
        return (picked * (targets >= 0)).sum(dim=-1)

    def loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy per predicted token (the first word to the end token),
        averaged over the batch."""
        # tokens after the start token
        predicted = ((tokens != 0).sum(dim=-1) - 1).clamp(min=1)
        return -(self._token_log_probs(self.visual(images), tokens) / predicted).mean()

    def scores(
        self, images: torch.Tensor, tokens: torch.Tensor, chunk: int = 4096
    ) -> torch.Tensor:
        """[N, T]: log p(text | image) for every pair, the texts cut to their longest
        length."""
        tokens = tokens[:, : int((tokens != 0).sum(dim=-1).max())]
        features = self.visual(images)  # [N, E]
        n, t = len(features), len(tokens)
        pairs_image = torch.arange(n, device=features.device).repeat_interleave(t)
        pairs_text = torch.arange(t, device=features.device).repeat(n)
        out = torch.cat(
            [
                self._token_log_probs(
                    features[pairs_image[i : i + chunk]],
                    tokens[pairs_text[i : i + chunk]],
                )
                for i in range(0, n * t, chunk)
            ]
        )
        return out.view(n, t)


class BagOfWordsContrastive(_Predictive):
    """The contrastive model of the paper's Figure 2: the contrastive objective with a
    bag-of-words text encoder (the mean of the caption's word embeddings, linearly
    projected), so that it differs from :class:`BagOfWords` in its objective only.
    The paper: "Starting with the same bag-of-words encoding baseline, we swapped the
    predictive objective for a contrastive objective"."""

    def __init__(self, config: CLIPConfig, vocab: torch.Tensor):
        super().__init__(config, vocab)
        width = config.transformer_width
        self.word_embedding = nn.Embedding(len(vocab), width)
        self.text_projection = nn.Linear(width, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        nn.init.normal_(self.word_embedding.weight, std=0.02)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """[T, L] tokens -> [T, E]: the projected mean of the word embeddings (start,
        end and padding tokens left out)."""
        ids = self.local_ids(tokens)
        special = (tokens == SOT_TOKEN_ID) | (tokens == EOT_TOKEN_ID)
        words = (~special & (ids >= 0)).float()  # [T, L]
        summed = (self.word_embedding(ids.clamp(min=0)) * words[..., None]).sum(dim=1)
        mean = summed / words.sum(dim=1, keepdim=True).clamp(min=1)
        return self.text_projection(mean)

    def loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(
            self.visual(images), self.encode_text(tokens), self.logit_scale.exp()
        )

    def scores(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """[N, T]: the scaled cosine similarity of each image and text."""
        image = F.normalize(self.visual(images), dim=-1)
        text = F.normalize(self.encode_text(tokens), dim=-1)
        return self.logit_scale.exp() * image @ text.T

    def after_step(self) -> None:
        clamp_logit_scale(self)


class Contrastive(nn.Module):
    """The contrastive objective (:func:`clip_ref.loss.contrastive_loss`) on a whole
    CLIP, behind the interface of the predictive models. ``model`` is the CLIP."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        self.model = CLIP(config)

    def loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        model = self.model
        return contrastive_loss(
            model.encode_image(images),
            model.encode_text(tokens),
            model.logit_scale.exp(),
        )

    def scores(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """[N, T]: the CLIP logits, the scaled cosine similarity of each image and
        text."""
        return self.model(images, tokens)[0]

    def after_step(self) -> None:
        clamp_logit_scale(self.model)


def train_objective(
    model: nn.Module,
    images: torch.Tensor,
    tokens: torch.Tensor,
    config: TrainConfig,
    *,
    evaluate: Callable[[nn.Module], float] | None = None,
    evaluate_every: int = 100,
    progress: bool = True,
) -> dict:
    """Train any of the three models on pairs ``images`` [N, 3, R, R] (normalised) and
    ``tokens`` [N, L]
    with :func:`clip_ref.toy.in_memory.train_on_tensors`: the recipe of
    :func:`clip_ref.train.train` (AdamW with the paper's decay rule, warm-up then
    cosine, gradient clipping, the temperature clipped for the contrastive model),
    batches from a seeded shuffle per epoch.

    ``evaluate(model)`` (in eval mode, without gradients) is called at step 0, every
    ``evaluate_every`` steps and at the end. Returns ``{"steps", "final_loss",
    "train_seconds", "curve"}`` where ``curve`` is a list of ``{"step", "images_seen",
    "score"}``; the model ends in eval mode.
    """
    if images.ndim != 4 or tokens.ndim != 2 or len(images) != len(tokens):
        raise ValueError(
            "expected images [N, 3, R, R] and tokens [N, L], got "
            f"{tuple(images.shape)} and {tuple(tokens.shape)}"
        )
    return train_on_tensors(
        model,
        model.loss,
        images,
        tokens,
        config,
        after_step=getattr(model, "after_step", None),
        evaluate=evaluate,
        evaluate_every=evaluate_every,
        progress=progress,
    )


def images_to_reach(curve: list[dict], score: float) -> float | None:
    """The images processed when ``curve`` (``train_objective``'s) first reaches
    ``score``, interpolated linearly between evaluations; ``None`` if it never does.
    Figure 2's efficiency ratio is one model's images for its final score over this
    number for the other model."""
    if not curve:
        raise ValueError("the curve is empty: train with an evaluate function")
    previous = None
    for point in curve:
        if point["score"] >= score:
            if previous is None or point["score"] == previous["score"]:
                return float(point["images_seen"])
            fraction = (score - previous["score"]) / (
                point["score"] - previous["score"]
            )
            return previous["images_seen"] + fraction * (
                point["images_seen"] - previous["images_seen"]
            )
        previous = point
    return None
