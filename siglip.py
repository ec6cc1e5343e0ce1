"""
SigLIP-style two-tower model (Zhai et al. 2023): a ViT image tower and a causal GPT text tower trained with
the sigmoid loss, recursion in one tower or both. Where RINS helps, while a plain ViT is its negative control.
"""

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
from torch.nn import functional as F

from model import GPT, GPTConfig, Plan, PlanModel, RecursionConfig, ViT, ViTConfig, init_weights, linear_weights


@dataclass
class SigLIPConfig(ViTConfig):
    """The image tower is ViTConfig's; the text tower is a causal GPT of the same shape over caption words."""
    num_classes: int = 64  # the shared embedding width (the image tower's head is its projection)
    vocab_size: int = 64  # caption words; id 0 is <pad>
    text_len: int = 12  # caption tokens, padded at the end
    rins_tower: str = "image"  # where the recursion fields apply: 'image' | 'text' | 'both'; other towers run AB


def sigmoid_loss(z_img: torch.Tensor, z_txt: torch.Tensor, t_prime: torch.Tensor,
                 b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SigLIP: logits = exp(t') z_img z_txt^T + b for n pairs (L2-normalised rows), label +1 on the
    diagonal and -1 off it, loss = -(1/n) sum_ij log sigmoid(label_ij * logit_ij)."""
    logits = t_prime.exp() * z_img @ z_txt.T + b  # (n, n)
    labels = 2 * torch.eye(len(logits), device=logits.device) - 1
    return logits, -F.logsigmoid(labels * logits).sum() / len(logits)


class SigLIP(PlanModel):
    """Two towers trained with the sigmoid loss. Text: causal attention, pooled at each caption's last word,
    which trailing <pad>s cannot reach."""

    def __init__(self, config: SigLIPConfig):
        super().__init__()
        c = self.config = config
        if c.rins_tower not in ("image", "text", "both"):
            raise ValueError(f"rins_tower='{c.rins_tower}' is not one of image, text, both")

        def tower(cls, recursive: bool, **kw):  # the tower's fields from ours; a plain tower gets the default AB
            return cls(**{f.name: getattr(c, f.name) for f in fields(cls) if hasattr(c, f.name)} | kw
                       | ({} if recursive else asdict(RecursionConfig())))
        self.image = ViT(tower(ViTConfig, c.rins_tower != "text"))
        self.text = GPT(tower(GPTConfig, c.rins_tower != "image", block_size=c.text_len))
        self.text_proj = nn.Linear(c.n_embd, c.num_classes, bias=False)
        init_weights(self.text_proj, c.n_layer)
        self.t_prime = nn.Parameter(torch.tensor(math.log(10.0)))  # t = exp(t') = 10
        self.b = nn.Parameter(torch.tensor(-10.0))

    @property
    def plan(self) -> Plan:  # the recursive tower's plan (if both recurse they share one config)
        return self.text.plan if self.config.rins_tower == "text" else self.image.plan

    def _r(self, tower: str, r: int | None):  # an inference-depth override reaches recursive towers only
        return r if self.config.rins_tower in (tower, "both") else None

    def encode_image(self, images, r: int | None = None):
        return F.normalize(self.image(images, r=self._r("image", r))[0], dim=-1)  # (B, D)

    def encode_text(self, tokens, r: int | None = None):
        t = self.text.transformer
        x = t.drop(t.wte(tokens) + t.wpe(torch.arange(tokens.size(1), device=tokens.device)))  # (B, T, C)
        x = t.ln_f(self.text.run_plan(x, t.h, self._r("text", r)))  # the GPT's forward without its head
        last = (tokens != 0).sum(1) - 1  # each caption's last word
        return F.normalize(self.text_proj(x[torch.arange(len(x)), last]), dim=-1)  # (B, D)

    def forward(self, images, tokens, r: int | None = None):
        return sigmoid_loss(self.encode_image(images, r), self.encode_text(tokens, r), self.t_prime, self.b)

    @torch.no_grad()
    def zero_shot(self, images, prompts, r: int | None = None):
        """Class per image: the nearest renormalised mean of each class's prompt embeddings (CLIP's ensemble)."""
        text = self.encode_text(prompts.flatten(0, 1), r).unflatten(0, prompts.shape[:2])  # (K, P, D)
        classes = F.normalize(text.mean(1), dim=-1)  # (K, D)
        return (self.encode_image(images, r) @ classes.T).argmax(1)

    def flops_per_token(self, train: bool = True, r: int | None = None) -> float:
        """FLOPs per token of a pair (patches + words): the image tower (ViT's count), the text blocks at
        T = text_len, the text projection once per caption. Not counted: the n x n similarity (6*n*D per
        pair to train, < 0.5%)."""
        c, img, txt = self.config, self.image, self.text
        text = txt.blocks_flops(txt.transformer.h, c.text_len, train, self._r("text", r))
        pair = img.n_patches * img.flops_per_token(train, self._r("image", r)) + c.text_len * text
        return (pair + (6 if train else 2) * linear_weights(self.text_proj)) / (img.n_patches + c.text_len)
