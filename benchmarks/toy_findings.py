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
* ``efficiency``: the paper's Figure 2, the objectives chapter after chapter 6: the
  paper's three objectives (captioning, bag-of-words prediction, bag-of-words
  contrastive) trained on 8,192 web-like pairs with one image encoder and budget, seeds
  0, 1 and 2; ``contrastive_vs_bag_of_words`` and ``contrastive_vs_captioning`` are
  how many times fewer images the contrastive model needs to reach ``target_top1``
  zero-shot top-1 on the seen combinations (means over seeds; where the other never
  reaches it, the race's length stands in, so the factor is a lower bound), ``seeds``
  the per-seed pairs, ``clean_captions`` the same on template captions (the knob), and
  ``races`` the curves;
* ``robustness``: toy CLIPs pre-trained on web-like pairs (and, under
  ``clean_pretraining``, the same with clean images), seeds 0, 1 and 2: zero-shot and
  linear probe, and the supervised models of the largest budget, each with top-1 on
  the original test set, the mean over the four shifts the web-like images cover
  (``shifted_mean``), the effective robustness against the supervised models' trend,
  and the same for the three shifts no training set has (``unseen``); ``seeds`` holds
  every model's top-1 per test set (the robustness chapter after chapter 9).

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
    BagOfWordsContrastive,
    CaptionModel,
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


def class_prompt_classifier(model, device) -> torch.Tensor:
    """The chapters' zero-shot classifier of the 36 toy classes, one prompt "a {}" each:
    [E, 36] on the CPU."""
    return zero_shot_classifier(
        model,
        toy_data.CLASSNAMES,
        [toy_data.prompt_template("a {}")],
        device=device,
        progress=False,
    ).cpu()


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

    W = class_prompt_classifier(model, device)
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


# The objectives chapter's race: the zero-shot top-1 the images are counted to, its
# length, and its seeds.
TARGET, RACE_STEPS, RACE_BATCH, SEEDS = 0.6, 600, 128, (0, 1, 2)


def efficiency_findings() -> dict:
    """The objectives chapter: the paper's three objectives (captioning, bag-of-words
    prediction, bag-of-words contrastive), 600 steps of 128 pairs each, with seeds 0, 1
    and 2, on 8,192 web-like pairs and on the same images with template captions; the
    images each needs to reach ``TARGET`` zero-shot top-1 on the seen combinations
    (the race's length, a lower bound, where it never does)."""
    run = PRESETS["toy"]
    seen, heldout = toy_dataset(run, "seen"), toy_dataset(run, "heldout")
    prompts = tokenize(
        toy_data.class_prompts("a {}"), context_length=run.model.context_length
    )
    recipe = TrainConfig(
        steps=RACE_STEPS, batch_size=RACE_BATCH, lr=2e-3, warmup_steps=40
    )
    drawing = dict(
        size=8192,
        seed=run.train.seed,
        context_length=run.model.context_length,
        images="web",
    )
    objectives = {
        "captioning": CaptionModel,
        "bag_of_words": BagOfWords,
        "contrastive": BagOfWordsContrastive,
    }

    @torch.no_grad()
    def top1(model, data):
        scores = model.scores(normalize(data.images), prompts)
        return (scores.argmax(dim=-1) == data.labels).float().mean().item()

    def needed(curve):
        reached = images_to_reach(curve, TARGET)
        return RACE_STEPS * RACE_BATCH if reached is None else reached

    def race(pairs, seed):
        vocab = vocabulary(torch.cat([pairs.tokens, prompts]))
        found = {}
        for name, objective in objectives.items():
            torch.manual_seed(seed)
            model = objective(run.model, vocab)
            curve = train_objective(
                model,
                normalize(pairs.images),
                pairs.tokens,
                dataclasses.replace(recipe, seed=seed),
                evaluate=lambda m: top1(m, seen),
                evaluate_every=75,
                progress=False,
            )["curve"]
            found[name] = {
                "curve": curve,
                "images_to_target": needed(curve),
                "reached": images_to_reach(curve, TARGET) is not None,
                "heldout_top1": top1(model, heldout),
            }
        for other in ("bag_of_words", "captioning"):
            found[f"contrastive_vs_{other}"] = (
                found[other]["images_to_target"]
                / found["contrastive"]["images_to_target"]
            )
        return found

    def mean(values):
        return sum(values) / len(values)

    races = {}
    for captions in ("web", "template"):
        pairs = toy_data.ToyCaptions("train", captions=captions, **drawing)
        races[captions] = {seed: race(pairs, seed) for seed in SEEDS}
    keys = ("contrastive_vs_bag_of_words", "contrastive_vs_captioning")
    web, template = races["web"], races["template"]
    return {
        "efficiency": {key: mean([web[seed][key] for seed in SEEDS]) for key in keys}
        | {
            "target_top1": TARGET,
            "race_images": RACE_STEPS * RACE_BATCH,
            "seeds": [[web[seed][key] for key in keys] for seed in SEEDS],
            "clean_captions": {
                key: mean([template[seed][key] for seed in SEEDS]) for key in keys
            }
            | {"seeds": [[template[seed][key] for key in keys] for seed in SEEDS]},
            "races": {captions: races[captions] for captions in races},
        }
    }


def robustness_findings(device, runs: Path) -> dict:
    """The robustness chapter: toy CLIPs pre-trained on web-like pairs and, the knob,
    on the same captions with clean images, each with seeds 0, 1 and 2; zero-shot and
    linear probes on chapter 9's clean labelled set; supervised models of four budgets
    with the same seeds define the trend; effective robustness on the four shifts the
    web-like images cover and on the three no training set has."""
    pool_x, pool_y = labelled_images(101, 100)
    val_x, val_y = labelled_images(102, 20)
    tests = {"original": labelled_images(103, 80)}
    tests.update(
        {shift: labelled_images(103, 80, shift=shift) for shift in toy_data.WEB_SHIFTS}
    )
    tests["outline"] = labelled_images(103, 80, style="outline")
    tests.update(
        {
            shift: labelled_images(103, 80, shift=shift)
            for shift in toy_data.UNSEEN_SHIFTS
        }
    )
    groups = {
        "covered": list(toy_data.WEB_SHIFTS),
        "unseen": ["outline", *toy_data.UNSEEN_SHIFTS],
    }

    def top1(predicted, labels):
        return (predicted == labels).float().mean().item()

    accuracy = {}  # (kind, seed) -> test set -> top-1
    for kind, preset in (("web", "toy-web"), ("clean", "toy-web-clean-images")):
        for seed in SEEDS:
            run = PRESETS[preset]
            run = dataclasses.replace(
                run, train=dataclasses.replace(run.train, seed=seed)
            )
            clip, _ = trained_toy_clip(
                run, runs / f"{preset}-{seed}", device=device, progress=False
            )

            def features(images, clip=clip):
                data = TensorDataset(images, torch.zeros(len(images), dtype=torch.long))
                found = image_features(
                    clip, data, batch_size=512, device=device, progress=False
                )
                return F.normalize(found.features.float(), dim=-1)

            W = class_prompt_classifier(clip, device)
            test_features = {name: features(x) for name, (x, _) in tests.items()}
            accuracy[f"{kind}_zero_shot", seed] = {
                name: top1((test_features[name] @ W).argmax(dim=-1), y)
                for name, (_, y) in tests.items()
            }
            probe = linear_probe(features(pool_x), pool_y, features(val_x), val_y)
            accuracy[f"{kind}_linear_probe", seed] = {
                name: top1(probe.predict(test_features[name]), y)
                for name, (_, y) in tests.items()
            }
    config = PRESETS["toy"].model
    for seed in SEEDS:
        for steps in BUDGETS:
            torch.manual_seed(seed)
            classifier = LabelClassifier(config, num_classes=len(toy_data.CLASSNAMES))
            recipe = TrainConfig(
                steps=steps,
                batch_size=128,
                lr=2e-3,
                warmup_steps=steps // 10,
                seed=seed,
            )
            train_classifier(classifier, pool_x, pool_y, recipe, progress=False)
            accuracy[f"supervised_{steps}", seed] = {
                name: classifier_top1(classifier, x, y)
                for name, (x, y) in tests.items()
            }

    def shifted(row, group):
        return sum(row[name] for name in groups[group]) / len(groups[group])

    baselines = [accuracy[f"supervised_{steps}", s] for s in SEEDS for steps in BUDGETS]
    trends = {
        group: robustness_trend(
            [b["original"] for b in baselines], [shifted(b, group) for b in baselines]
        )
        for group in groups
    }

    def summary(kind):
        rows = [accuracy[kind, seed] for seed in SEEDS]

        def mean(values):
            return sum(values) / len(values)

        def group(name):
            return {
                "shifted_mean": mean([shifted(r, name) for r in rows]),
                "effective_robustness": mean(
                    [
                        effective_robustness(
                            r["original"], shifted(r, name), trends[name]
                        )
                        for r in rows
                    ]
                ),
            }

        return (
            {"original": mean([r["original"] for r in rows])}
            | group("covered")
            | {"unseen": group("unseen")}
        )

    return {
        "robustness": {
            "zero_shot": summary("web_zero_shot"),
            "linear_probe": summary("web_linear_probe"),
            "supervised": summary(f"supervised_{BUDGETS[-1]}"),
            "clean_pretraining": {
                "zero_shot": summary("clean_zero_shot"),
                "linear_probe": summary("clean_linear_probe"),
            },
            "shifts": groups,
            "trend": {
                group: {"slope": t.slope, "intercept": t.intercept}
                for group, t in trends.items()
            },
            "seeds": {
                str(seed): {
                    kind: accuracy[kind, seed]
                    for kind in sorted({k for k, _ in accuracy})
                }
                for seed in SEEDS
            },
        }
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
        **robustness_findings(device, Path(args.runs)),
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
                row: findings["robustness"][row]
                for row in (
                    "zero_shot",
                    "linear_probe",
                    "supervised",
                    "clean_pretraining",
                )
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
