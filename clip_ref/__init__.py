"""The Annotated CLIP: a small, faithful reference implementation of CLIP.

Radford et al., 2021, "Learning Transferable Visual Models From Natural Language
Supervision". The public API mirrors OpenAI's ``clip`` module: ``available_models``,
``load``, ``tokenize``, ``build_model``, plus the model classes, the contrastive loss
and zero-shot helpers.

Modules, in the order data flows (lower modules never import higher ones): tokenizer,
preprocess -> captions, layers -> resnet, vit -> config, model -> checkpoint, download,
loading -> loss, evaluate, retrieval, probe -> zeroshot -> toy_data, train -> toy,
supervised, objectives. (``notebook`` holds the chapters' helpers.)
"""

__version__ = "0.1.0"

from . import notebook
from .captions import CSVCaptions
from .checkpoint import read_state_dict
from .config import (
    CLIPConfig,
    StateDictMismatchError,
    available_models,
    config_from_state_dict,
)

# the module clip_ref.download also holds download(url, sha256)
from .download import (
    download_weights,
)
from .imagenet import IMAGENET_CLASSNAMES, IMAGENET_TEMPLATES, IMAGENET_TEMPLATES_7
from .layers import LayerNorm, QuickGELU, ResidualAttentionBlock, Transformer
from .loading import load
from .loss import contrastive_loss
from .model import CLIP, build_model, convert_weights
from .preprocess import (
    IMAGE_MEAN,
    IMAGE_STD,
    MAX_ASPECT_RATIO,
    Preprocess,
    load_image,
    normalize,
    transform,
)
from .probe import LinearProbe, linear_probe, zero_shot_equivalent_k
from .resnet import AttentionPool2d, Bottleneck, ModifiedResNet
from .retrieval import retrieval_recall
from .tokenizer import Tokenizer, get_tokenizer, tokenize
from .vit import VisionTransformer, resize_positional_embedding, resize_state_dict


def __getattr__(name):
    # zero_shot_classifier is imported on first use, not here: ``python -m
    # clip_ref.zeroshot`` runs that module as a script, and runpy warns when the package
    # has already imported it under its own name.
    if name == "zero_shot_classifier":
        from .zeroshot import zero_shot_classifier

        return zero_shot_classifier
    raise AttributeError(f"module 'clip_ref' has no attribute {name!r}")
