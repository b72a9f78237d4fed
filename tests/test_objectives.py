"""The objectives of the paper's Figure 2 (clip_ref.toy.objectives): caption prediction
and bag-of-words prediction beside the contrastive objective, their zero-shot scores,
and the loop that trains all three."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from clip_ref.loss import contrastive_loss
from clip_ref.preprocess import normalize
from clip_ref.tokenizer import EOT_TOKEN_ID, SOT_TOKEN_ID, tokenize
from clip_ref.toy import PRESETS
from clip_ref.toy.data import ToyCaptions
from clip_ref.toy.objectives import (
    BagOfWords,
    BagOfWordsContrastive,
    CaptionModel,
    Contrastive,
    images_to_reach,
    train_objective,
    vocabulary,
)
from clip_ref.train import TrainConfig

CONFIG = dataclasses.replace(
    PRESETS["toy"].model, vision_layers=1, transformer_layers=1
)
RECIPE = TrainConfig(steps=40, batch_size=32, lr=2e-3, warmup_steps=4)


@pytest.fixture(scope="module")
def pairs():
    data = ToyCaptions("train", size=128, seed=0)
    return normalize(data.images), data.tokens


def test_vocabulary_is_the_sorted_tokens_that_occur_without_padding():
    tokens = tokenize(["a red circle", "a blue circle"], context_length=8)
    vocab = vocabulary(tokens)
    assert vocab.tolist() == sorted(set(tokens.flatten().tolist()) - {0})
    assert SOT_TOKEN_ID in vocab and EOT_TOKEN_ID in vocab


def test_bag_of_words_counts_words_and_its_loss_and_scores_are_the_formulas(pairs):
    images, tokens = pairs
    torch.manual_seed(0)
    model = BagOfWords(CONFIG, vocabulary(tokens)).eval()
    text = tokenize(["a red circle a"], context_length=CONFIG.context_length)
    counts = model.word_counts(text)[0]
    words = {int(model.vocab[i]): int(c) for i, c in enumerate(counts) if c}
    a, red, circle = tokenize(["a red circle"], context_length=CONFIG.context_length)[
        0, 1:4
    ].tolist()
    assert words == {a: 2, red: 1, circle: 1}  # start and end tokens are not words
    with torch.no_grad():
        log_p = F.log_softmax(model.head(model.visual(images[:3])), dim=-1)  # [3, V]
        position = {int(t): i for i, t in enumerate(model.vocab)}
        expected = torch.stack(
            [
                2 * log_p[:, position[a]]
                + log_p[:, position[red]]
                + log_p[:, position[circle]]
            ]
        )
        assert torch.allclose(model.scores(images[:3], text), expected.T, atol=1e-5)
        target = torch.zeros(len(model.vocab))
        for token, n in ((a, 2), (red, 1), (circle, 1)):
            target[position[token]] = n / 4
        by_hand = -(target * log_p[0]).sum()
        assert torch.allclose(model.loss(images[:1], text), by_hand, atol=1e-6)


def test_caption_model_scores_are_the_likelihood_computed_token_by_token(pairs):
    images, tokens = pairs
    torch.manual_seed(0)
    model = CaptionModel(CONFIG, vocabulary(tokens)).eval()
    texts = tokenize(
        ["a red circle", "the ring is blue and small"],
        context_length=CONFIG.context_length,
    )
    with torch.no_grad():
        scores = model.scores(images[:2], texts)  # [2 images, 2 texts]
        for i in range(2):
            features = model.visual(images[i : i + 1])
            for t in range(2):
                ids = model.local_ids(texts[t])
                length = int((texts[t] != 0).sum())  # start, words, end
                total = 0.0
                # predict token j from the image and tokens 0..j-1
                for j in range(1, length):
                    # [j + 1, D]
                    prefix = torch.cat(
                        [
                            model.image_projection(features),
                            model.token_embedding(ids[:j]),
                        ]
                    )
                    x = prefix + model.positional_embedding[: j + 1]
                    x = model.ln_final(model.transformer(x[:, None]))[:, 0]  # [L, 1, D]
                    total += F.log_softmax(model.head(x[-1]), dim=-1)[ids[j]].item()
                assert scores[i, t].item() == pytest.approx(total, abs=1e-4)
    assert scores.shape == (2, 2)


def test_predictive_models_refuse_tokens_outside_their_vocabulary(pairs):
    _, tokens = pairs
    model = BagOfWords(CONFIG, vocabulary(tokens))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        model.word_counts(
            tokenize(["a xylophone"], context_length=CONFIG.context_length)
        )
    with pytest.raises(ValueError, match="sorted"):
        CaptionModel(CONFIG, torch.tensor([5, 3]))


def test_contrastive_scores_are_clips_logits(pairs):
    images, tokens = pairs
    torch.manual_seed(0)
    model = Contrastive(CONFIG).eval()
    with torch.no_grad():
        assert torch.equal(
            model.scores(images[:4], tokens[:3]), model.model(images[:4], tokens[:3])[0]
        )


def test_bag_of_words_contrastive_encodes_the_mean_word_and_uses_clips_loss(pairs):
    images, tokens = pairs
    torch.manual_seed(0)
    model = BagOfWordsContrastive(CONFIG, vocabulary(tokens)).eval()
    length = CONFIG.context_length
    texts = tokenize(["a red circle", "circle red a", "a a red circle"], length)
    with torch.no_grad():
        encoded = model.encode_text(texts)
        # the mean of the three word embeddings, projected: start and end left out
        ids = model.local_ids(texts[0, 1:4])
        expected = model.text_projection(model.word_embedding(ids).mean(dim=0))
        torch.testing.assert_close(encoded[0], expected, rtol=1e-6, atol=1e-6)
        # word order does not matter; how often a word occurs does
        torch.testing.assert_close(encoded[1], encoded[0], rtol=1e-6, atol=1e-6)
        assert not torch.allclose(encoded[2], encoded[0])
        loss = model.loss(images[:8], tokens[:8])
        reference = contrastive_loss(
            model.visual(images[:8]),
            model.encode_text(tokens[:8]),
            model.logit_scale.exp(),
        )
        assert torch.equal(loss, reference)
        scores = model.scores(images[:4], texts)
        cosine = (
            F.normalize(model.visual(images[:4]), dim=-1)
            @ F.normalize(encoded, dim=-1).T
        )
        torch.testing.assert_close(scores, model.logit_scale.exp() * cosine)
        model.logit_scale.fill_(10.0)
    model.after_step()  # the temperature is clamped as CLIP's is
    assert model.logit_scale.exp().item() == pytest.approx(100.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda vocab: BagOfWords(CONFIG, vocab),
        lambda vocab: CaptionModel(CONFIG, vocab),
        lambda vocab: Contrastive(CONFIG),
        lambda vocab: BagOfWordsContrastive(CONFIG, vocab),
    ],
    ids=["bag-of-words", "captioning", "contrastive", "bag-of-words-contrastive"],
)
def test_each_objective_trains_its_loss_down_deterministically(pairs, make):
    images, tokens = pairs
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = make(vocabulary(tokens))
        with torch.no_grad():
            before = model.loss(images[:64], tokens[:64]).item()
        summary = train_objective(
            model,
            images,
            tokens,
            RECIPE,
            evaluate=lambda m: float(m.training),
            evaluate_every=15,
            progress=False,
        )
        with torch.no_grad():
            after = model.loss(images[:64], tokens[:64]).item()
        # the bag of words has an entropy floor
        assert after < before - 0.25 and not model.training
        assert [c["step"] for c in summary["curve"]] == [0, 15, 30, 40]
        assert [c["images_seen"] for c in summary["curve"]] == [0, 480, 960, 1280]
        # evaluated in eval mode
        assert all(c["score"] == 0.0 for c in summary["curve"])
        runs.append((summary["final_loss"], after))
    assert runs[0] == runs[1]


def test_training_refuses_bad_input(pairs):
    images, tokens = pairs
    model = BagOfWords(CONFIG, vocabulary(tokens))
    with pytest.raises(ValueError, match="tokens"):
        train_objective(model, images, tokens[:-1], RECIPE, progress=False)
    with pytest.raises(ValueError, match="one batch"):
        train_objective(model, images[:8], tokens[:8], RECIPE, progress=False)
    with pytest.raises(ValueError, match="evaluate_every"):
        train_objective(model, images, tokens, RECIPE, evaluate_every=0, progress=False)


def test_images_to_reach_interpolates_between_evaluations():
    curve = [
        {"step": 0, "images_seen": 0, "score": 0.0},
        {"step": 1, "images_seen": 100, "score": 0.4},
        {"step": 2, "images_seen": 200, "score": 0.8},
        {"step": 3, "images_seen": 300, "score": 0.7},
    ]
    assert images_to_reach(curve, 0.6) == pytest.approx(150.0)
    assert images_to_reach(curve, 0.4) == 100.0
    assert images_to_reach(curve, 0.0) == 0.0
    assert images_to_reach(curve, 0.9) is None
    with pytest.raises(ValueError, match="empty"):
        images_to_reach([], 0.5)
