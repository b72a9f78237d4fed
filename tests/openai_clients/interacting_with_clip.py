"""What the notebook "Interacting with CLIP" does: inspect the model, tokenize, encode
eight sample pictures and their descriptions, compare them, and classify the pictures
among class names by "This is a photo of a {}"."""

import os

import clip
import numpy as np
import skimage
import torch
from PIL import Image
from torchvision.transforms import Compose, InterpolationMode, RandomResizedCrop

models = clip.available_models()
model, preprocess = clip.load("ViT-B/32", device="cpu")
model.eval()
facts = {
    "input_resolution": model.visual.input_resolution,
    "context_length": model.context_length,
    "vocab_size": model.vocab_size,
    "parameters": int(np.sum([int(np.prod(p.shape)) for p in model.parameters()])),
    "output_dim": model.visual.output_dim,
    "text_width": model.transformer.width,
    "text_layers": model.transformer.layers,
}
hello = clip.tokenize("Hello World!")

descriptions = {
    "page": "a page of text about segmentation",
    "chelsea": "a facial photo of a tabby cat",
    "astronaut": "a portrait of an astronaut with the American flag",
    "rocket": "a rocket standing on a launchpad",
    "motorcycle_right": "a red motorcycle standing in a garage",
    "camera": "a person looking at a camera on a tripod",
    "horse": "a black-and-white silhouette of a horse",
    "coffee": "a cup of coffee on a saucer",
}
images, texts = [], []
for filename in sorted(os.listdir(skimage.data_dir)):
    name, extension = os.path.splitext(filename)
    if name in descriptions and extension in (".png", ".jpg"):
        picture = Image.open(os.path.join(skimage.data_dir, filename)).convert("RGB")
        images.append(preprocess(picture))
        texts.append(descriptions[name])

image_input = torch.tensor(np.stack(images))
text_tokens = clip.tokenize(["This is " + text for text in texts])
with torch.no_grad():
    image_features = model.encode_image(image_input).float()
    text_features = model.encode_text(text_tokens).float()
image_features /= image_features.norm(dim=-1, keepdim=True)
text_features /= text_features.norm(dim=-1, keepdim=True)
similarity = text_features.numpy() @ image_features.numpy().T

classes = ["apple", "bicycle", "camel", "cup", "horse", "motorcycle", "rocket", "woman"]
class_tokens = clip.tokenize([f"This is a photo of a {c}" for c in classes])
with torch.no_grad():
    class_features = model.encode_text(class_tokens).float()
    class_features /= class_features.norm(dim=-1, keepdim=True)
text_probs = (100.0 * image_features @ class_features.T).softmax(dim=-1)
top_probs, top_labels = text_probs.topk(5, dim=-1)

# Reusing the transforms: a training pipeline with a random crop in front of the model's
# own last steps (to RGB, to tensor, normalise).
augment = Compose(
    [
        RandomResizedCrop(
            facts["input_resolution"], interpolation=InterpolationMode.BICUBIC
        ),
        *preprocess.transforms[-3:],
    ]
)
torch.manual_seed(0)
augmented = augment(Image.open(os.path.join(skimage.data_dir, "coffee.png")))
normalize = preprocess.transforms[-1]

RESULTS = {
    "models": models,
    **facts,
    "hello": hello.numpy(),
    "pixels": image_input.numpy(),
    "similarity": similarity,
    "top_probs": top_probs.numpy(),
    "top_labels": top_labels.numpy(),
    "augmented": augmented.numpy(),
    "mean": tuple(normalize.mean),
    "std": tuple(normalize.std),
}
