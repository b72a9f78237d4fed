"""The book's teaching machinery, built on the faithful reference in :mod:`clip_ref`.

The reference (``clip_ref/*.py``) is what the paper and OpenAI's code describe; this
subpackage is what the book adds to teach it, and nothing in the reference imports it:

* :mod:`~clip_ref.toy.data`: the toy world (shapes and colours drawn in code, captions
  in many wordings, held-out combinations, drawing styles and shifts);
* :mod:`~clip_ref.toy.runs`: the toy CLIP's presets, training and zero-shot score, and
  the reuse of a trained run across chapters;
* :mod:`~clip_ref.toy.in_memory`: the paper's recipe for any model and loss on tensors;
* :mod:`~clip_ref.toy.objectives`: captioning and bag-of-words prediction beside the
  contrastive objective (the paper's Figure 2);
* :mod:`~clip_ref.toy.supervised`: the label-trained baseline and effective robustness;
* :mod:`~clip_ref.toy.notebook`: the chapters' set-up and ``show_source``.
"""

from .runs import (
    PRESETS,
    ToyRun,
    toy_dataset,
    train_toy,
    trained_toy_clip,
    zero_shot_top1,
)

__all__ = [
    "PRESETS",
    "ToyRun",
    "toy_dataset",
    "train_toy",
    "trained_toy_clip",
    "zero_shot_top1",
]
