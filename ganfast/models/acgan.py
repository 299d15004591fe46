"""Auxiliary classifier GAN (Odena, Olah & Shlens 2017, ICML; arXiv:1610.09585).

G is conditional; D sees images only and has two heads on one trunk: the
real/fake output and a classifier ``C`` over the K classes.  With L_S the
log-likelihood of the right source and L_C that of the right class, D
maximises L_S + L_C and G maximises L_C - L_S (sec. 3): both add the class
cross-entropy on fakes, D also on reals.  ``C`` is trained by D's optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses as L
from .adversarial import AdversarialGAN
from .dcgan import DCGANOptions
from .options import option
from .registry import register


@dataclass
class ACGANOptions(DCGANOptions):
    class_weight: float = option(1.0, "Odena et al. 2017, sec. 3: L_S + L_C, equal weights", min=0.0)


@register
class ACGAN(AdversarialGAN):
    name = "acgan"
    family = "conditional"
    paper = "Odena, Olah & Shlens 2017, Conditional Image Synthesis with Auxiliary Classifier GANs, ICML " \
            "(arXiv:1610.09585)"
    summary = "auxiliary classifier GAN (D predicts the class)"
    Options = ACGANOptions
    conditional = True
    requires = ("image", "label")
    sample_conditions = ("label",)
    d_networks = ("D", "C")

    def discriminator_classes(self) -> int:
        return 0  # D sees images only; the classifier head predicts the label

    def build_networks(self) -> Dict[str, nn.Module]:
        if self.num_classes < 2:
            raise ValueError("model 'acgan' needs labelled data with at least 2 classes (num_classes)")
        nets = super().build_networks()
        nets["C"] = nn.Linear(nets["D"].feature_dim, self.num_classes)
        return nets

    def discriminator_loss(self, real, y, fake, y_fake, z, ctx):
        real_out, f_real = self.d_forward(self.noisy(real, ctx), None, features=True)
        fake_out, f_fake = self.d_forward(self.noisy(fake, ctx), None, features=True)
        adv = L.discriminator_loss(self.loss, real_out, fake_out, **self.label_kwargs())
        cls = (F.cross_entropy(self.C(f_real).float(), y) + F.cross_entropy(self.C(f_fake).float(), y_fake))
        total = adv + self.options.class_weight * cls
        with torch.no_grad():
            acc = (self.C(f_real).argmax(1) == y).float().mean()
        return total, {"d_loss": adv.detach(), "d_class": cls.detach(), "d_real_acc": acc,
                       "d_real": real_out.detach().float().mean(), "d_fake": fake_out.detach().float().mean()}

    def generator_loss(self, fake, y_fake, z, real, y, ctx):
        fake_out, f_fake = self.d_forward(self.noisy(fake, ctx), None, features=True)
        adv = L.generator_loss(self.loss, fake_out)
        cls = F.cross_entropy(self.C(f_fake).float(), y_fake)
        return adv + self.options.class_weight * cls, {"g_loss": adv.detach(), "g_class": cls.detach()}
