"""Benchmark: the paper's findings, measured on the toy CLIP (chapters 6, 7 and 9), written to a JSON file.

    python benchmarks/toy_findings.py --out runs/toy_findings.json
    python benchmarks/toy_findings.py --out findings.json --runs runs   # reuse the chapters' trained models

It trains the book's toy CLIP with the "toy" preset (or reuses ``RUNS/toy`` when it holds exactly that
training on this device with this many threads, as the chapters do), then measures, with the chapters'
seeds and sizes, so that every figure here is a stored output of a chapter that CI recomputes:

* ``toy``: zero-shot top-1 on the held-out combinations and the seconds the training loop took (chapter 6);
* ``prompts``: the colour question of chapter 7 on held-out images, asked with the bare label, the best
  single template (chosen on other images of the seen combinations) and the ensemble, with the seen
  images' figures and paired counts under ``by_question``; ``prompt_ablation``: the same for the model
  trained in a world where a tenth of the captions are bare labels (chapter 7 trains it too);
* ``probe``, ``zero_shot``, ``zero_shot_equivalent_k``: k-shot linear probes against zero-shot on the
  36-class labelled toy set (chapter 9).

A measurement, not a test: it exits with status 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clip_ref import toy_data  # noqa: E402
from clip_ref.evaluate import image_features  # noqa: E402
from clip_ref.preprocess import normalize  # noqa: E402
from clip_ref.probe import linear_probe, zero_shot_equivalent_k  # noqa: E402
from clip_ref.toy import trained_toy_clip  # noqa: E402
from clip_ref.zeroshot import zero_shot_classifier  # noqa: E402

K_VALUES, DRAWS = (1, 2, 4, 8, 16), 3  # chapter 9


QUESTIONS = {  # chapter 7: question -> (class names, the ToyCaptions attribute that labels it, templates)
    "colour": (toy_data.COLOUR_CLASSNAMES, "colour_ids", [f"a {{}} {shape}" for shape in toy_data.SHAPES]),
    "shape": (toy_data.SHAPE_CLASSNAMES, "shape_ids", [f"a {colour} {{}}" for colour in toy_data.COLOURS]),
}


def prompt_findings(model, device) -> dict:
    """Chapter 7's one-word labels: per question, top-1 on held-out (and seen) images of the bare label, "a {}",
    the best single template (chosen on other seen images) and the ensemble, with paired counts."""
    drawing = dict(resolution=model.config.image_resolution, context_length=model.config.context_length)
    sets = {"choice": toy_data.ToyCaptions("seen", size=1024, seed=2, **drawing),
            "seen": toy_data.ToyCaptions("seen", size=4096, seed=1, **drawing),
            "heldout": toy_data.ToyCaptions("heldout", size=4096, seed=1, **drawing)}
    features = {split: image_features(model, TensorDataset(normalize(data.images), data.labels), batch_size=512,
                                      device=device, progress=False).features.cpu()
                for split, data in sets.items()}

    def right(split, question, templates):
        classnames, attribute, _ = QUESTIONS[question]
        W = zero_shot_classifier(model, classnames, [toy_data.prompt_template(t) for t in templates],
                                 device=device, progress=False).cpu()
        return (features[split] @ W).argmax(-1) == getattr(sets[split], attribute)

    found = {}
    for question, (_, _, templates) in QUESTIONS.items():
        best = max(templates, key=lambda t: right("choice", question, [t]).float().mean().item())
        prompts = {"bare_label": ["{}"], "a_template": ["a {}"], "best_template": [best], "ensemble": templates}
        rows = {name: right("heldout", question, chosen) for name, chosen in prompts.items()}
        found[question] = {name: r.float().mean().item() for name, r in rows.items()}
        found[question]["seen"] = {name: right("seen", question, chosen).float().mean().item()
                                   for name, chosen in prompts.items()}
        found[question]["best_template_name"] = best
        for name, reference in (("best_template", "bare_label"), ("ensemble", "best_template")):
            r, ref = rows[name], rows[reference]
            found[question][f"{name}_vs_{reference}"] = {"better": int((r & ~ref).sum()),
                                                           "worse": int((~r & ref).sum())}
    # The three figures are the colour question's; the shape question is kept beside them.
    return {key: found["colour"][key] for key in ("bare_label", "best_template", "ensemble")} | {"by_question": found}


def probe_findings(model, device) -> dict:
    """Chapter 9's comparison: zero-shot against k-shot probes on the same frozen features."""

    def labelled_set(seed, per_class):
        parts = [toy_data.ToyCaptions("seen", size=24 * per_class, seed=seed),
                 toy_data.ToyCaptions("heldout", size=12 * per_class, seed=seed)]
        images = torch.cat([p.images for p in parts])
        labels = torch.cat([p.labels for p in parts])
        found = image_features(model, TensorDataset(normalize(images), labels), batch_size=512, device=device,
                               progress=False)
        return F.normalize(found.features.float(), dim=-1), labels

    pool_x, pool_y = labelled_set(seed=101, per_class=100)
    val_x, val_y = labelled_set(seed=102, per_class=20)
    test_x, test_y = labelled_set(seed=103, per_class=80)

    def top1(predicted):
        return (predicted == test_y).float().mean().item()

    W = zero_shot_classifier(model, toy_data.CLASSNAMES, [toy_data.prompt_template("a {}")], device=device,
                             progress=False).cpu()
    zero_shot = top1((test_x @ W).argmax(dim=-1))
    results = {}
    for k in K_VALUES:
        scores = []
        for draw in range(DRAWS):
            generator = torch.Generator().manual_seed(1000 * k + draw)
            chosen = torch.cat([
                members[torch.randperm(len(members), generator=generator)[:k]]
                for members in ((pool_y == c).nonzero().flatten() for c in range(len(toy_data.COMBINATIONS)))
            ])
            scores.append(top1(linear_probe(pool_x[chosen], pool_y[chosen], val_x, val_y).predict(test_x)))
        results[str(k)] = sum(scores) / len(scores)
    results["all"] = top1(linear_probe(pool_x, pool_y, val_x, val_y).predict(test_x))
    all_k = len(pool_y) / len(toy_data.COMBINATIONS)
    worth = zero_shot_equivalent_k(list(K_VALUES) + [all_k], list(results.values()), zero_shot)
    return {"probe": results, "zero_shot": zero_shot, "zero_shot_equivalent_k": worth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="write the figures to this JSON file")
    parser.add_argument("--runs", default=str(ROOT / "runs"),
                        help="folder of the trained toy models, reused when identical (default: runs/)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the target machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()

    model, metrics = trained_toy_clip("toy", Path(args.runs) / "toy", device=device, progress=False)
    ablated, _ = trained_toy_clip("toy-label-captions", Path(args.runs) / "toy-label-captions", device=device,
                                  progress=False)
    findings = {
        "toy": {"heldout_top1": metrics["heldout_top1"], "seen_top1": metrics["seen_top1"],
                "train_seconds": metrics["train_seconds"], "steps": metrics["steps"]},
        "prompts": prompt_findings(model, device),
        "prompt_ablation": prompt_findings(ablated, device),
        **probe_findings(model, device),
        "machine": {"threads": args.threads, "device": str(device), "torch": torch.__version__,
                    "processor": platform.processor() or platform.machine()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(findings, indent=2) + "\n")
    print(json.dumps({k: findings[k] for k in ("toy", "prompts", "probe", "zero_shot", "zero_shot_equivalent_k")},
                     indent=2))


if __name__ == "__main__":
    main()
