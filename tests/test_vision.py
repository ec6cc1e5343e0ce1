"""
The vision models beyond the paper's invariants (those are in test_rins.py): ViT shapes and patches, which
SigLIP tower recurses, the sigmoid loss, text pooling, zero-shot classification and its held-out templates.
Tiny in-memory images; nothing is downloaded.

    python -m pytest tests/test_vision.py -v
"""

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import caption_batch, image_batch, tiny_siglip, tiny_vit
from siglip import sigmoid_loss
from vision import (CAPTION_LEN, CAPTION_VOCAB, CLASS_NAMES, FASHION_CLASSES, HELDOUT_TEMPLATES, TRAIN_TEMPLATES,
                    captions, encode_captions, zero_shot_prompts)


# -----------------------------------------------------------------------------
# ViT


def test_vit_shapes_and_rounds():
    model = tiny_vit(signature="A^rB", r=2)
    _, labels, x = image_batch()
    states = []
    logits, loss = model(x, torch.from_numpy(labels), states=states)
    assert logits.shape == (3, 10) and loss.shape == () and model(x)[1] is None
    assert model.plan.layers() == [0, 1, 0, 1, 2, 3] and len(states) == 6  # one per application
    assert states[0].shape == (3, 4, 16)  # (B, patches, C)
    assert abs(loss.item() - math.log(10)) < 0.1
    assert "pos" not in model.state_dict()  # fixed sin-cos positions: a buffer, never learned or saved
    assert model.get_num_params() == tiny_vit().get_num_params() and model.get_num_extra_params() == 0


def test_vit_patches_follow_the_image_grid():
    """Patch i of the flattened sequence is the i-th 4x4 block of the image in row-major order."""
    model = tiny_vit()
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4:, :4] = 1.0  # bottom-left block = patch 2
    seen = []
    model.patch_embed.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    model(x)
    assert seen[0][0].sum(-1).tolist() == [0.0, 0.0, 16.0, 0.0]


# -----------------------------------------------------------------------------
# SigLIP


@pytest.mark.parametrize("tower", ["image", "text", "both"])
def test_siglip_shapes_and_which_tower_recurses(tower):
    model = tiny_siglip(signature="A^rB", r=2, rins_tower=tower)
    x, tokens = caption_batch()
    logits, loss = model(x, tokens)
    assert logits.shape == (3, 3) and loss.shape == ()
    z_img, z_txt = model.encode_image(x), model.encode_text(tokens)
    assert z_img.shape == z_txt.shape == (3, 8)
    torch.testing.assert_close(z_img.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(z_txt.norm(dim=-1), torch.ones(3))
    plans = {"image": model.image.plan.layers(), "text": model.text.plan.layers()}
    for name, plan in plans.items():
        assert plan == ([0, 1, 0, 1, 2, 3] if tower in (name, "both") else [0, 1, 2, 3]), name
    assert model.get_num_params() == tiny_siglip().get_num_params()
    baseline = tiny_siglip()(x, tokens)[1].item()
    assert model(x, tokens, r=1)[1].item() == pytest.approx(baseline, abs=1e-6)  # r=1: the baseline


def test_sigmoid_loss_by_hand():
    """n = 2, t = 10, b = -10: logits = 10 z_img z_txt^T - 10 = [[0, -10], [-4, -2]], labels [[1, -1], [-1, 1]];
    loss = (log 2 + log(1 + e^-10) + log(1 + e^-4) + log(1 + e^2)) / 2."""
    z_img, z_txt = torch.tensor([[1.0, 0.0], [0.6, 0.8]]), torch.eye(2)
    logits, loss = sigmoid_loss(z_img, z_txt, torch.tensor(math.log(10.0)), torch.tensor(-10.0))
    torch.testing.assert_close(logits, torch.tensor([[0.0, -10.0], [-4.0, -2.0]]))
    by_hand = (math.log(2) + math.log1p(math.exp(-10)) + math.log1p(math.exp(-4)) + math.log1p(math.exp(2))) / 2
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    # the model starts at t = 10, b = -10 and its loss is this function of its two embeddings
    model = tiny_siglip()
    assert model.t_prime.exp().item() == pytest.approx(10.0) and model.b.item() == -10.0
    x, tokens = caption_batch()
    expected = sigmoid_loss(model.encode_image(x), model.encode_text(tokens), model.t_prime, model.b)[1]
    torch.testing.assert_close(model(x, tokens)[1], expected)


def test_text_pool_never_sees_trailing_padding():
    """Causal text tower pooled at the last word: the padded caption embeds like the unpadded one."""
    model = tiny_siglip().eval()
    tokens = torch.from_numpy(encode_captions(["a photo of a dark coat", "my bag"]))
    short = tokens[:, :6]  # the longest caption has 6 words
    torch.testing.assert_close(model.encode_text(tokens), model.encode_text(short))


def test_zero_shot_picks_the_nearest_class():
    """Encoders replaced by known maps: a prompt embeds as the one-hot of the class whose name's last word it
    contains, an image as the one-hot of its label plus noise. zero_shot must then return every label."""
    model = tiny_siglip(num_classes=10)
    ids = {w: i for i, w in enumerate(CAPTION_VOCAB)}
    name_ids = torch.tensor([ids[names[0].split()[-1]] for names in CLASS_NAMES])

    def encode_text(tokens, r=None):
        return F.normalize((tokens[:, :, None] == name_ids).any(1).float(), dim=-1)  # (B, classes)

    labels = torch.tensor([3, 0, 9, 6, 7, 1])
    noise = 0.3 * torch.rand(len(labels), 10, generator=torch.Generator().manual_seed(0))
    model.encode_text = encode_text
    model.encode_image = lambda images, r=None: F.normalize(F.one_hot(labels, 10).float() + noise, dim=-1)
    prompts = torch.from_numpy(np.stack([encode_captions(p) for p in zero_shot_prompts()]))  # (classes, templates, T)
    assert prompts.shape == (10, len(HELDOUT_TEMPLATES), CAPTION_LEN)
    assert torch.equal(model.zero_shot(torch.zeros(len(labels), 1, 8, 8), prompts), labels)


def test_held_out_templates_are_disjoint_from_training():
    assert not set(TRAIN_TEMPLATES) & set(HELDOUT_TEMPLATES)
    images, labels, _ = image_batch(B=2000)
    train = set(captions(labels, images, random.Random(0)))
    prompts = {p for per_class in zero_shot_prompts() for p in per_class}
    assert not train & prompts
    assert len(zero_shot_prompts()) == len(FASHION_CLASSES) == len(CLASS_NAMES)
    tokens = encode_captions(sorted(train))
    assert (tokens != 1).all() and (tokens[:, 0] != 0).all()  # training words are all in the vocabulary
    assert (encode_captions(sorted(prompts)) == 1).any()  # held-out words the model never saw map to <unk>
