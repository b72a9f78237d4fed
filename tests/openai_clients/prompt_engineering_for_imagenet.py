"""What the notebook "Prompt Engineering for ImageNet" does: a zero-shot classifier from
class names and templates (each class the mean of its normalised prompt embeddings),
then top-1 and top-5 accuracy on labelled images."""

import os

import clip
import skimage
import torch
from PIL import Image

model, preprocess = clip.load("ViT-B/32", device="cpu")

classnames = ["astronaut", "cat", "coffee", "horse", "motorcycle", "rocket", "camera"]
templates = [
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a rendering of a {}.",
    "itap of a {}.",
    "a photo of the large {}.",
    "art of the {}.",
]
pictures = {
    "astronaut": 0,
    "chelsea": 1,
    "coffee": 2,
    "horse": 3,
    "motorcycle_right": 4,
    "rocket": 5,
    "camera": 6,
}


def zeroshot_classifier(classnames, templates):
    with torch.no_grad():
        zeroshot_weights = []
        for classname in classnames:
            texts = [template.format(classname) for template in templates]
            texts = clip.tokenize(texts)
            class_embeddings = model.encode_text(texts)
            class_embeddings /= class_embeddings.norm(dim=-1, keepdim=True)
            class_embedding = class_embeddings.mean(dim=0)
            class_embedding /= class_embedding.norm()
            zeroshot_weights.append(class_embedding)
        zeroshot_weights = torch.stack(zeroshot_weights, dim=1)
    return zeroshot_weights


def accuracy(output, target, topk=(1,)):
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [float(correct[:k].reshape(-1).float().sum()) for k in topk]


zeroshot_weights = zeroshot_classifier(classnames, templates)
images, target = [], []
for name, label in pictures.items():
    path = next(
        os.path.join(skimage.data_dir, f)
        for f in os.listdir(skimage.data_dir)
        if os.path.splitext(f)[0] == name
    )
    images.append(preprocess(Image.open(path)))
    target.append(label)
images, target = torch.stack(images), torch.tensor(target)
with torch.no_grad():
    image_features = model.encode_image(images)
    image_features /= image_features.norm(dim=-1, keepdim=True)
    logits = 100.0 * image_features @ zeroshot_weights
top1, top5 = accuracy(logits, target, topk=(1, 5))

RESULTS = {
    "zeroshot_weights": zeroshot_weights.numpy(),
    "logits": logits.numpy(),
    "top1": top1 / len(target) * 100,
    "top5": top5 / len(target) * 100,
}
