"""
Image data for the vision tasks: Fashion-MNIST batches for the ViT ('vit'), and for the two-tower
model ('siglip') captions drawn afresh for every batch plus the zero-shot prompts that score it.

A training caption is a template around "[tone] [style] name", the tone read from the item's pixels,
the style random. Zero-shot prompts put each class's first name into HELDOUT_TEMPLATES, which
training never uses; their words missing from training captions become <unk>.
"""

import os
import random

import numpy as np
import torch

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CLASS_NAMES = [("t-shirt", "tee", "top"), ("trousers", "pants", "jeans"), ("pullover", "sweater", "jumper"),
               ("dress", "gown", "frock"), ("coat", "jacket", "parka"), ("sandal", "flip-flop", "slipper"),
               ("shirt", "blouse", "button-up shirt"), ("sneaker", "trainer", "running shoe"),
               ("bag", "handbag", "purse"), ("ankle boot", "boot", "bootie")]  # in FASHION_CLASSES order
STYLES = ("plain", "stylish", "classic", "casual", "simple", "new", "old", "cheap", "fancy", "cosy")
TONES = ((125, "dark"), (170, "grey"), (256, "light"))  # mean nonzero pixel below the bound (train-set terciles)
TRAIN_TEMPLATES = ("a photo of a {}", "a {}", "an image of a {}", "a picture of the {}", "a close-up of a {}",
                   "my {}", "a catalogue photo of a {}", "this is a {}", "a grayscale photo of a {}",
                   "a small photo of a {}", "a product shot of a {}", "a picture of my {}")
HELDOUT_TEMPLATES = ("a blurry photo of the {}", "a low resolution image of a {}", "there is a {} here",
                     "a black and white photo of a {}", "a cropped photo of the {}")
CAPTION_VOCAB = ["<pad>", "<unk>"] + sorted({w for t in TRAIN_TEMPLATES for w in t.split() if w != "{}"}
                                             | {w for names in CLASS_NAMES for n in names for w in n.split()}
                                             | set(STYLES) | {word for _, word in TONES})
CAPTION_LEN = 12  # tokens per caption, <pad> (id 0) at the end; the longest caption has 9 words


def captions(labels, images, rng):
    """Training captions for uint8 images (B, H, W) of classes `labels`, drawn with `rng` (a random.Random)."""
    pixels = images.reshape(len(images), -1).astype(np.float32)
    levels = pixels.sum(1) / np.maximum((pixels > 0).sum(1), 1)  # mean nonzero pixel: the item's tone
    out = []
    for label, level in zip(labels.tolist(), levels.tolist()):
        tone = next(word for bound, word in TONES if level < bound)
        words = ([tone] * (rng.random() < 0.75) + [rng.choice(STYLES)] * (rng.random() < 0.5)
                 + [rng.choice(CLASS_NAMES[label])])
        out.append(rng.choice(TRAIN_TEMPLATES).format(" ".join(words)))
    return out


def zero_shot_prompts():
    """prompts[class][template]: every held-out template around each class's first name."""
    return [[t.format(names[0]) for t in HELDOUT_TEMPLATES] for names in CLASS_NAMES]


def encode_captions(texts, length=CAPTION_LEN):
    """Whitespace words -> ids (unknown words: <unk> = 1), padded with <pad> = 0: int64 (len(texts), length)."""
    ids = {w: i for i, w in enumerate(CAPTION_VOCAB)}
    out = np.zeros((len(texts), length), np.int64)
    for row, text in zip(out, texts):
        words = text.split()
        if not 0 < len(words) <= length:
            raise ValueError(f"caption {text!r} has {len(words)} words; 1 to {length} fit")
        row[:len(words)] = [ids.get(w, 1) for w in words]
    return out


def load(data_path: str, task: str, classes) -> dict:
    """{split}_images (N, H, W) uint8 and {split}_labels (N,) for train and val; a missing file or classes that
    have no captions raise ValueError saying what to do."""
    try:
        arrays = {f"{s}_{k}": np.load(os.path.join(data_path, f"{s}_{k}.npy")) for s in ("train", "val")
                  for k in ("images", "labels")}
    except FileNotFoundError as e:
        raise ValueError(f"{e.filename} is missing; task='{task}' needs images: python prepare.py fashion_mnist")
    if task == "siglip" and classes != FASHION_CLASSES:
        raise ValueError(f"task='siglip' has captions for Fashion-MNIST's classes only, not {classes}")
    return arrays


def prompt_ids() -> torch.Tensor:
    """The zero-shot prompts as caption ids: (classes, held-out templates, CAPTION_LEN)."""
    return torch.from_numpy(np.stack([encode_captions(p) for p in zero_shot_prompts()]))


def get_batch(arrays: dict, split: str, task: str, ix: torch.Tensor, generator: torch.Generator):
    """The images at ix as (B, 1, H, W) in [0, 1], with labels (vit) or caption ids (siglip, drawn from
    `generator`, so a resumed run replays them), on the CPU."""
    images, labels = arrays[f"{split}_images"][ix.numpy()], arrays[f"{split}_labels"][ix.numpy()]
    x = torch.from_numpy(images).unsqueeze(1).float() / 255  # (B, 1, H, W)
    if task == "vit":
        return x, torch.from_numpy(labels.astype(np.int64))
    rng = random.Random(torch.randint(2 ** 62, (1,), generator=generator).item())
    return x, torch.from_numpy(encode_captions(captions(labels, images, rng)))


def val_batches(arrays: dict, task: str, n: int, batch_size: int, generator: torch.Generator) -> list:
    """The first n val images in order (all 10,000 at 40 x 250) as (x, y, labels) batches, on the CPU."""
    out = []
    for ix in torch.arange(min(n, len(arrays["val_images"]))).split(batch_size):
        labels = torch.from_numpy(arrays["val_labels"][ix.numpy()].astype(np.int64))
        out.append((*get_batch(arrays, "val", task, ix, generator), labels))
    return out


def score(model, batches: list, r: int | None, prompts: torch.Tensor | None = None) -> tuple[float, float]:
    """Mean loss and accuracy at depth r: top-1 of the class logits, or (siglip, given prompts) zero-shot."""
    loss = correct = 0.0
    for x, y, labels in batches:
        logits, batch_loss = model(x, y, r=r)
        predicted = logits.argmax(1) if prompts is None else model.zero_shot(x, prompts, r=r)
        loss, correct = loss + batch_loss.item(), correct + (predicted == labels).sum().item()
    return loss / len(batches), correct / sum(len(labels) for *_, labels in batches)
