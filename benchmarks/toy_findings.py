"""Benchmark: the paper's findings, measured on the toy CLIP (chapters 6, 7 and 9),
written to a JSON file.

    python benchmarks/toy_findings.py --out runs/toy_findings.json
    # reuse the chapters' trained models:
    python benchmarks/toy_findings.py --out findings.json --runs runs

It trains the book's toy CLIP with the "toy" preset (or reuses ``RUNS/toy`` when it
holds exactly that training on this device with this many threads, as the chapters do),
then measures, with the chapters' seeds and sizes, so that every figure here is a stored
output of a chapter that CI recomputes:

* ``toy``: zero-shot top-1 on the held-out combinations and the seconds the training
  loop took (chapter 6);
* ``prompts``: the shape question of chapter 7 on held-out images, asked with the bare
  label, the best single template (chosen on other images of the seen combinations) and
  the ensemble, with the colour question, the seen images' figures and paired counts
  under ``by_question``, and under ``ambiguity`` how often each shape label (the
  ambiguous "heart" and five controls) takes images of other shapes drawn in the centre
  and elsewhere; ``prompt_ablation``: the same for the model trained in a world where a
  tenth of the captions are bare labels (chapter 7 trains it too);
* ``probe``, ``zero_shot``, ``zero_shot_equivalent_k``: k-shot linear probes against
  zero-shot on the 36-class labelled toy set (chapter 9);
* ``efficiency``: the paper's Figure 2, the objectives chapter after chapter 6:
  captioning, bag-of-words prediction and the contrastive objective trained on the toy
  pairs with one image encoder and budget; ``contrastive_vs_bag_of_words`` and
  ``contrastive_vs_captioning`` are how many times fewer images the contrastive model
  needs to reach the other's final zero-shot top-1 (``None`` if it never does), with the
  curves, the held-out combinations' top-1, the final top-1 of each objective trained
  with seeds 1 and 2 (``other_seeds``), and the same for the ablation with one caption
  per class;
* ``robustness``: zero-shot CLIP, the supervised model of the largest budget and the
  linear probe, each with top-1 on the original test set and its five shifts, their mean
  and the effective robustness against the trend of the supervised models;
  ``robustness_trend`` (the budgets' points and the fitted line) and ``covered_shift``
  (the effective robustness of supervised models whose training images include one
  shift, on each shift) (the robustness chapter after chapter 9).

Like the tests, it caps the CPU kernels at AVX2, the ones the chapters' stored outputs
were computed with.

A measurement, not a test: it exits with status 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from cpu_kernels import cap_cpu_kernels

cap_cpu_kernels()  # before torch is imported

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from clip_ref.device import default_device
from clip_ref.evaluate import image_features
from clip_ref.preprocess import normalize
from clip_ref.probe import linear_probe, zero_shot_equivalent_k
from clip_ref.tokenizer import tokenize
from clip_ref.toy import PRESETS, toy_dataset, trained_toy_clip
from clip_ref.toy import data as toy_data
from clip_ref.toy.objectives import (
    BagOfWords,
    CaptionModel,
    Contrastive,
    images_to_reach,
    train_objective,
    vocabulary,
)
from clip_ref.toy.supervised import (
    LabelClassifier,
    classifier_top1,
    effective_robustness,
    robustness_trend,
    train_classifier,
)
from clip_ref.train import TrainConfig
from clip_ref.zeroshot import zero_shot_classifier

K_VALUES, DRAWS = (1, 2, 4, 8, 16), 3  # chapter 9
# the robustness chapter's supervised models (steps of 128 images)
BUDGETS = (
    100,
    200,
    400,
    800,
)


# Chapter 7: question -> (class names, the ToyCaptions attribute labelling it, prompts)
QUESTIONS = {
    "colour": (
        toy_data.COLOURS,
        "colour_ids",
        [f"a {{}} {shape}" for shape in toy_data.SHAPES],
    ),
    "shape": (
        toy_data.SHAPES,
        "shape_ids",
        [f"a {colour} {{}}" for colour in toy_data.COLOURS],
    ),
}


def labelled_images(seed, per_class, style="filled", shift=None):
    """Chapter 9's labelled toy set (all 36 classes, about ``per_class`` each), also
    in the robustness chapter's styles and shifts: normalised images [N, 3, R, R] and
    labels [N]."""
    parts = [
        toy_data.ToyCaptions(
            split, size=n * per_class, seed=seed, style=style, shift=shift
        )
        for split, n in (("seen", 24), ("heldout", 12))
    ]
    return normalize(torch.cat([p.images for p in parts])), torch.cat(
        [p.labels for p in parts]
    )


def prompt_findings(model, device) -> dict:
    """Chapter 7's one-word labels: per question, top-1 on held-out (and seen) images
    of the bare label, "a {}", the best single template (chosen on other seen images)
    and the ensemble, with paired counts."""
    drawing = dict(
        resolution=model.config.image_resolution,
        context_length=model.config.context_length,
    )
    sets = {
        "choice": toy_data.ToyCaptions("seen", size=1024, seed=2, **drawing),
        "seen": toy_data.ToyCaptions("seen", size=4096, seed=1, **drawing),
        "heldout": toy_data.ToyCaptions("heldout", size=4096, seed=1, **drawing),
    }
    features = {
        split: image_features(
            model,
            TensorDataset(normalize(data.images), data.labels),
            batch_size=512,
            device=device,
            progress=False,
        ).features.cpu()
        for split, data in sets.items()
    }

    def right(split, question, templates):
        classnames, attribute, _ = QUESTIONS[question]
        W = zero_shot_classifier(
            model,
            classnames,
            [toy_data.prompt_template(t) for t in templates],
            device=device,
            progress=False,
        ).cpu()
        return (features[split] @ W).argmax(-1) == getattr(sets[split], attribute)

    found = {}
    for question, (_, _, templates) in QUESTIONS.items():
        best = max(
            templates,
            key=lambda t: right("choice", question, [t]).float().mean().item(),
        )
        prompts = {
            "bare_label": ["{}"],
            "a_template": ["a {}"],
            "best_template": [best],
            "ensemble": templates,
        }
        rows = {
            name: right("heldout", question, chosen) for name, chosen in prompts.items()
        }
        found[question] = {name: r.float().mean().item() for name, r in rows.items()}
        found[question]["seen"] = {
            name: right("seen", question, chosen).float().mean().item()
            for name, chosen in prompts.items()
        }
        found[question]["best_template_name"] = best
        for name, reference in (
            ("best_template", "bare_label"),
            ("ensemble", "best_template"),
        ):
            r, ref = rows[name], rows[reference]
            found[question][f"{name}_vs_{reference}"] = {
                "better": int((r & ~ref).sum()),
                "worse": int((~r & ref).sum()),
            }
    # The word "heart" names a shape and the centre: how often are images of other
    # shapes called "heart" (and, as the control, any other shape label), drawn in the
    # centre and elsewhere?
    shape_ids = torch.cat([sets["seen"].shape_ids, sets["heldout"].shape_ids])
    centre = torch.cat(
        [sets["seen"].position_ids, sets["heldout"].position_ids]
    ) == toy_data.POSITIONS.index("centre")
    both = torch.cat([features["seen"], features["heldout"]])
    ambiguity = {}
    for name, templates in (
        ("bare_label", ["{}"]),
        ("ensemble", QUESTIONS["shape"][2]),
    ):
        W = zero_shot_classifier(
            model,
            toy_data.SHAPES,
            [toy_data.prompt_template(t) for t in templates],
            device=device,
            progress=False,
        ).cpu()
        predicted = (both @ W).argmax(-1)
        ambiguity[name] = {
            label: {
                where: (predicted[(shape_ids != x) & mask] == x).float().mean().item()
                for where, mask in (("centre", centre), ("elsewhere", ~centre))
            }
            for x, label in enumerate(toy_data.SHAPES)
        }
    # The three headline figures are the shape question's, whose labels hold the
    # ambiguous word; the colour question is kept beside them.
    return {
        key: found["shape"][key] for key in ("bare_label", "best_template", "ensemble")
    } | {"by_question": found, "ambiguity": ambiguity}


def probe_findings(model, device) -> dict:
    """Chapter 9's comparison: zero-shot against k-shot probes on the same frozen
    features."""

    def labelled_set(seed, per_class):
        images, labels = labelled_images(seed, per_class)
        found = image_features(
            model,
            TensorDataset(images, labels),
            batch_size=512,
            device=device,
            progress=False,
        )
        return F.normalize(found.features.float(), dim=-1), labels

    pool_x, pool_y = labelled_set(seed=101, per_class=100)
    val_x, val_y = labelled_set(seed=102, per_class=20)
    test_x, test_y = labelled_set(seed=103, per_class=80)

    def top1(predicted):
        return (predicted == test_y).float().mean().item()

    W = zero_shot_classifier(
        model,
        toy_data.CLASSNAMES,
        [toy_data.prompt_template("a {}")],
        device=device,
        progress=False,
    ).cpu()
    zero_shot = top1((test_x @ W).argmax(dim=-1))
    results = {}
    for k in K_VALUES:
        scores = []
        for draw in range(DRAWS):
            generator = torch.Generator().manual_seed(1000 * k + draw)
            chosen = torch.cat(
                [
                    members[torch.randperm(len(members), generator=generator)[:k]]
                    for members in (
                        (pool_y == c).nonzero().flatten()
                        for c in range(len(toy_data.COMBINATIONS))
                    )
                ]
            )
            scores.append(
                top1(
                    linear_probe(pool_x[chosen], pool_y[chosen], val_x, val_y).predict(
                        test_x
                    )
                )
            )
        results[str(k)] = sum(scores) / len(scores)
    results["all"] = top1(linear_probe(pool_x, pool_y, val_x, val_y).predict(test_x))
    all_k = len(pool_y) / len(toy_data.COMBINATIONS)
    worth = zero_shot_equivalent_k(
        list(K_VALUES) + [all_k], list(results.values()), zero_shot
    )
    return {"probe": results, "zero_shot": zero_shot, "zero_shot_equivalent_k": worth}


def efficiency_findings() -> dict:
    """The objectives chapter: three objectives, 600 steps of 128 pairs each, on the
    varied captions and on one caption per class; zero-shot top-1 on the seen
    combinations every 75 steps."""
    run = PRESETS["toy"]
    seen, heldout = toy_dataset(run, "seen"), toy_dataset(run, "heldout")
    prompts = tokenize(
        toy_data.class_prompts("a {}"), context_length=run.model.context_length
    )
    recipe = TrainConfig(steps=600, batch_size=128, lr=2e-3, warmup_steps=40)
    # the chapter's training set: 8,192 pairs, seen nine times each in 600 steps
    pairs = 8192

    @torch.no_grad()
    def top1(model, data):
        return (
            (
                model.scores(normalize(data.images), prompts).argmax(dim=-1)
                == data.labels
            )
            .float()
            .mean()
            .item()
        )

    def train_three(pairs, seed, curves):
        """The three objectives trained on ``pairs`` with ``seed`` (initial weights
        and batch order), as the chapter trains them: name -> (model, curve on the
        seen combinations, empty without ``curves``)."""
        vocab = vocabulary(torch.cat([pairs.tokens, prompts]))
        trained = {}
        for name, make in (
            ("bag_of_words", lambda: BagOfWords(run.model, vocab)),
            ("captioning", lambda: CaptionModel(run.model, vocab)),
            ("contrastive", lambda: Contrastive(run.model)),
        ):
            torch.manual_seed(seed)
            model = make()
            summary = train_objective(
                model,
                normalize(pairs.images),
                pairs.tokens,
                dataclasses.replace(recipe, seed=seed),
                evaluate=(lambda m: top1(m, seen)) if curves else None,
                evaluate_every=75,
                progress=False,
            )
            trained[name] = model, summary["curve"]
        return trained

    def race(pairs):
        trained = train_three(pairs, seed=0, curves=True)
        found = {
            "curves": {name: curve for name, (_, curve) in trained.items()},
            "heldout_top1": {
                name: top1(model, heldout) for name, (model, _) in trained.items()
            },
        }
        for other in ("bag_of_words", "captioning"):
            final = found["curves"][other][-1]
            needed = images_to_reach(found["curves"]["contrastive"], final["score"])
            found[f"contrastive_vs_{other}"] = (
                None if needed is None else final["images_seen"] / needed
            )
        return found

    def finals(pairs, seed):
        """Each objective's final seen and held-out top-1 when trained with another
        seed."""
        return {
            name: {"seen": top1(model, seen), "heldout": top1(model, heldout)}
            for name, (model, _) in train_three(pairs, seed, curves=False).items()
        }

    train = toy_dataset(run, "train", size=pairs)
    varied = race(train)
    one_caption = race(
        toy_data.ToyCaptions(
            "train",
            size=pairs,
            seed=run.train.seed,
            context_length=run.model.context_length,
            one_template=3,
        )
    )
    return {
        "efficiency": {
            key: varied[key]
            for key in ("contrastive_vs_bag_of_words", "contrastive_vs_captioning")
        }
        | {
            "curves": varied["curves"],
            "heldout_top1": varied["heldout_top1"],
            "other_seeds": {seed: finals(train, seed) for seed in (1, 2)},
            "one_caption_per_class": one_caption,
        }
    }


def robustness_findings(model, device) -> dict:
    """The robustness chapter: five shifts of chapter 9's test set; zero-shot CLIP, a
    linear probe and supervised models of four budgets; effective robustness against
    the supervised models' trend."""

    def clip_features(images):
        data = TensorDataset(images, torch.zeros(len(images), dtype=torch.long))
        found = image_features(
            model, data, batch_size=512, device=device, progress=False
        )
        return F.normalize(found.features.float(), dim=-1)

    def supervised(images, labels, steps):
        torch.manual_seed(0)
        classifier = LabelClassifier(model.config, num_classes=len(toy_data.CLASSNAMES))
        train_classifier(
            classifier,
            images,
            labels,
            TrainConfig(steps=steps, batch_size=128, lr=2e-3, warmup_steps=steps // 10),
            progress=False,
        )
        return {
            name: classifier_top1(classifier, x, y) for name, (x, y) in tests.items()
        }

    pool_x, pool_y = labelled_images(101, 100)
    val_x, val_y = labelled_images(102, 20)
    tests = {
        "original": labelled_images(103, 80),
        "outline": labelled_images(103, 80, style="outline"),
    }
    tests.update(
        {shift: labelled_images(103, 80, shift=shift) for shift in toy_data.SHIFTS}
    )
    shifted = [name for name in tests if name != "original"]
    W = zero_shot_classifier(
        model,
        toy_data.CLASSNAMES,
        [toy_data.prompt_template("a {}")],
        device=device,
        progress=False,
    ).cpu()
    features = {name: clip_features(x) for name, (x, _) in tests.items()}
    probe = linear_probe(clip_features(pool_x), pool_y, clip_features(val_x), val_y)
    accuracy = {
        "zero_shot": {
            name: ((features[name] @ W).argmax(-1) == y).float().mean().item()
            for name, (_, y) in tests.items()
        },
        "linear_probe": {
            name: (probe.predict(features[name]) == y).float().mean().item()
            for name, (_, y) in tests.items()
        },
    }
    budgets = {steps: supervised(pool_x, pool_y, steps) for steps in BUDGETS}
    accuracy["supervised"] = budgets[BUDGETS[-1]]

    def mean_shifted(row):
        return sum(row[name] for name in shifted) / len(shifted)

    trend = robustness_trend(
        [b["original"] for b in budgets.values()],
        [mean_shifted(b) for b in budgets.values()],
    )
    per_shift = {
        name: robustness_trend(
            [b["original"] for b in budgets.values()],
            [b[name] for b in budgets.values()],
        )
        for name in shifted
    }
    found = {
        row: {
            "original": acc["original"],
            "shifted_mean": mean_shifted(acc),
            "effective_robustness": effective_robustness(
                acc["original"], mean_shifted(acc), trend
            ),
            "per_shift": {name: acc[name] for name in shifted},
            "per_shift_effective_robustness": {
                name: effective_robustness(acc["original"], acc[name], per_shift[name])
                for name in shifted
            },
        }
        for row, acc in accuracy.items()
    }
    half = torch.arange(0, len(pool_y), 2)
    covered = {}
    for n, shift in enumerate(shifted):
        extra_x, extra_y = (
            labelled_images(110 + n, 50, style="outline")
            if shift == "outline"
            else labelled_images(110 + n, 50, shift=shift)
        )
        acc = supervised(
            torch.cat([pool_x[half], extra_x]), torch.cat([pool_y[half], extra_y]), 400
        )
        covered[shift] = {
            name: effective_robustness(acc["original"], acc[name], per_shift[name])
            for name in shifted
        }
    return {
        "robustness": found,
        "robustness_trend": {
            "slope": trend.slope,
            "intercept": trend.intercept,
            "supervised": {
                str(steps): {"original": b["original"], "shifted_mean": mean_shifted(b)}
                for steps, b in budgets.items()
            },
        },
        "covered_shift": covered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", required=True, help="write the figures to this JSON file"
    )
    parser.add_argument(
        "--runs",
        default=str(ROOT / "runs"),
        help="folder of the trained toy models, reused when identical (default: runs/)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (default 2, the target machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = default_device()
    started = time.perf_counter()

    model, metrics = trained_toy_clip(
        "toy", Path(args.runs) / "toy", device=device, progress=False
    )
    ablated, _ = trained_toy_clip(
        "toy-label-captions",
        Path(args.runs) / "toy-label-captions",
        device=device,
        progress=False,
    )
    findings = {
        "toy": {
            "heldout_top1": metrics["heldout_top1"],
            "seen_top1": metrics["seen_top1"],
            "train_seconds": metrics["train_seconds"],
            "steps": metrics["steps"],
        },
        "prompts": prompt_findings(model, device),
        "prompt_ablation": prompt_findings(ablated, device),
        **probe_findings(model, device),
        **robustness_findings(model, device),
        **efficiency_findings(),
        "machine": {
            "threads": args.threads,
            "device": str(device),
            "torch": torch.__version__,
            "processor": platform.processor() or platform.machine(),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(findings, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: findings[k]
                for k in (
                    "toy",
                    "prompts",
                    "probe",
                    "zero_shot",
                    "zero_shot_equivalent_k",
                )
            },
            indent=2,
        )
    )
    print(
        json.dumps(
            {
                key: findings["efficiency"][key]
                for key in ("contrastive_vs_bag_of_words", "contrastive_vs_captioning")
            },
            indent=2,
        )
    )
    print(
        json.dumps(
            {
                row: {k: v for k, v in r.items() if not k.startswith("per_shift")}
                for row, r in findings["robustness"].items()
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
