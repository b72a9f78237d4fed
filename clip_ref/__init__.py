"""The Annotated CLIP: a small, faithful reference implementation of CLIP.

Radford et al., 2021, "Learning Transferable Visual Models From Natural Language
Supervision". The public API mirrors OpenAI's ``clip`` module: ``available_models``,
``load``, ``tokenize``, ``build_model``, plus the model classes, the contrastive loss
and zero-shot helpers; ``import clip_ref as clip`` runs client code written for
OpenAI's module (see the README's list of deliberate differences). Weights also go in
and out of Hugging Face ``transformers`` format (``from_transformers``,
``to_transformers``), and the encoders export to ONNX (``export_onnx``).

Two layers. The reference, these modules, in the order data flows (a module imports
only modules before it):

    tokenizer, preprocess, device -> layers -> resnet, vit -> config -> model
    -> checkpoint, download, transformers_format, onnx_export, loading
    -> loss, evaluate, retrieval, probe, captions
    -> zeroshot, imagenet -> training_run -> train -> finetune

and the book's teaching machinery, :mod:`clip_ref.toy` (the toy world and its runs,
the Figure 2 objectives, the supervised baselines, the notebook helpers), which imports
the reference and is never imported by it. ``import clip_ref`` does not load it.
:mod:`clip_ref.cli` (``python -m clip_ref.train``) sits above both.
"""

__version__ = "0.1.0"

from .captions import CSVCaptions
from .checkpoint import read_state_dict
from .config import (
    RELEASED,
    CLIPConfig,
    StateDictMismatchError,
    available_models,
    config_from_state_dict,
)
from .download import download_weights
from .imagenet import IMAGENET_CLASSNAMES, IMAGENET_TEMPLATES, IMAGENET_TEMPLATES_7
from .layers import LayerNorm, QuickGELU, ResidualAttentionBlock, Transformer
from .loading import ModelNotFoundError, load
from .loss import contrastive_loss
from .model import CLIP, build_model, convert_weights
from .onnx_export import export_onnx
from .preprocess import (
    IMAGE_MEAN,
    IMAGE_STD,
    MAX_ASPECT_RATIO,
    Preprocess,
    load_image,
    normalize,
)
from .probe import LinearProbe, linear_probe, zero_shot_equivalent_k
from .resnet import AttentionPool2d, Bottleneck, ModifiedResNet
from .retrieval import retrieval_recall
from .tokenizer import (
    EOT_TOKEN_ID,
    SOT_TOKEN_ID,
    TextTooLongError,
    Tokenizer,
    get_tokenizer,
    tokenize,
)
from .transformers_format import from_transformers, to_transformers
from .vit import VisionTransformer, resize_positional_embedding, resize_state_dict

__all__ = [
    "CLIP",
    "EOT_TOKEN_ID",
    "IMAGENET_CLASSNAMES",
    "IMAGENET_TEMPLATES",
    "IMAGENET_TEMPLATES_7",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "MAX_ASPECT_RATIO",
    "RELEASED",
    "SOT_TOKEN_ID",
    "AttentionPool2d",
    "Bottleneck",
    "CLIPConfig",
    "CSVCaptions",
    "LayerNorm",
    "LinearProbe",
    "ModelNotFoundError",
    "ModifiedResNet",
    "Preprocess",
    "QuickGELU",
    "ResidualAttentionBlock",
    "StateDictMismatchError",
    "TextTooLongError",
    "Tokenizer",
    "Transformer",
    "VisionTransformer",
    "available_models",
    "build_model",
    "config_from_state_dict",
    "contrastive_loss",
    "convert_weights",
    "download_weights",
    "export_onnx",
    "from_transformers",
    "get_tokenizer",
    "linear_probe",
    "load",
    "load_image",
    "normalize",
    "read_state_dict",
    "resize_positional_embedding",
    "resize_state_dict",
    "retrieval_recall",
    "to_transformers",
    "tokenize",
    "zero_shot_classifier",
    "zero_shot_equivalent_k",
]


def __getattr__(name):
    # zero_shot_classifier is imported on first use, not here: ``python -m
    # clip_ref.zeroshot`` runs that module as a script, and runpy warns when the package
    # has already imported it under its own name.
    if name == "zero_shot_classifier":
        from .zeroshot import zero_shot_classifier

        return zero_shot_classifier
    raise AttributeError(f"module 'clip_ref' has no attribute {name!r}")
