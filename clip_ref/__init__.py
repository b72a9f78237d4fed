"""The Annotated CLIP: a small, faithful reference implementation of CLIP.

Radford et al., 2021, "Learning Transferable Visual Models From Natural Language Supervision".
The public API mirrors OpenAI's ``clip`` module: ``available_models``, ``load``, ``tokenize``,
``build_model``, plus the model classes, the contrastive loss and zero-shot helpers.

Modules, in the order data flows (lower modules never import higher ones):
tokenizer, preprocess -> layers -> resnet, vit -> config, model -> checkpoint, download,
loading -> loss, zeroshot -> toy_data, train, evaluate.
"""

__version__ = "0.1.0"

# -- model exports --
from .config import CLIPConfig, StateDictMismatchError, available_models, config_from_state_dict
from .layers import LayerNorm, QuickGELU, ResidualAttentionBlock, Transformer
from .model import CLIP, build_model, convert_weights
from .resnet import AttentionPool2d, Bottleneck, ModifiedResNet
from .vit import VisionTransformer
from . import notebook
# -- tokenizer exports --
from .tokenizer import Tokenizer, get_tokenizer, tokenize
# -- preprocess exports --
from .preprocess import IMAGE_MEAN, IMAGE_STD, MAX_ASPECT_RATIO, Preprocess, load_image, transform
# -- weights exports --
from .checkpoint import read_state_dict
from .download import download_weights  # the module clip_ref.download also holds download(url, sha256)
from .loading import load
# -- loss exports --
from .loss import contrastive_loss
# -- zeroshot exports --
from .zeroshot import zero_shot_classifier
from .imagenet import IMAGENET_CLASSNAMES, IMAGENET_TEMPLATES, IMAGENET_TEMPLATES_7
