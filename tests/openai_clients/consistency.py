"""What OpenAI's tests/test_consistency.py checks: the JIT and the eager model give the
same probabilities, for every released model (here the ones the stand-ins cover)."""

import os

import clip
import numpy as np
import skimage
import torch
from PIL import Image

probabilities = {}
for model_name in ["RN50", "ViT-B/32"]:
    jit_model, transform = clip.load(model_name, device="cpu", jit=True)
    py_model, _ = clip.load(model_name, device="cpu", jit=False)
    image = transform(Image.open(os.path.join(skimage.data_dir, "camera.png")))
    image = image.unsqueeze(0)
    text = clip.tokenize(["a diagram", "a dog", "a cat"])
    with torch.no_grad():
        logits_per_image, _ = jit_model(image, text)
        jit_probs = logits_per_image.softmax(dim=-1).cpu().numpy()
        logits_per_image, _ = py_model(image, text)
        py_probs = logits_per_image.softmax(dim=-1).cpu().numpy()
    assert np.allclose(jit_probs, py_probs, atol=0.01, rtol=0.1)
    probabilities[model_name] = py_probs

RESULTS = probabilities
