"""The usage example of OpenAI's README: one picture, three captions, probabilities."""

import os

import clip
import skimage
import torch
from PIL import Image

device = "cuda" if torch.cuda.is_available() else "cpu"
model, preprocess = clip.load("ViT-B/32", device=device)

picture = Image.open(os.path.join(skimage.data_dir, "astronaut.png"))
image = preprocess(picture).unsqueeze(0).to(device)
text = clip.tokenize(["a diagram", "a dog", "a cat"]).to(device)

with torch.no_grad():
    image_features = model.encode_image(image)
    text_features = model.encode_text(text)
    logits_per_image, logits_per_text = model(image, text)
    probs = logits_per_image.softmax(dim=-1).cpu().numpy()

RESULTS = {
    "probs": probs,
    "image_features": image_features.float().cpu().numpy(),
    "text_features": text_features.float().cpu().numpy(),
    "logits_per_text": logits_per_text.float().cpu().numpy(),
}
