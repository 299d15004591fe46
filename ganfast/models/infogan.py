"""InfoGAN (Chen et al. 2016, NeurIPS; arXiv:1606.03657): latent codes G must keep visible.

G's input is noise z plus codes c; the mutual information I(c; G(z, c)) is
maximised through its variational lower bound L_I (eq. 5), estimated by a
head ``Q`` on D's trunk: categorical codes by cross-entropy, continuous
codes by a factored Gaussian with fixed unit variance (the paper's choice
on MNIST), so the continuous term is 0.5 * squared error.
min_{G,Q} max_D V - lambda L_I: D's optimiser trains Q with the trunk; G
gets the same term.  Defaults from the paper's MNIST setup (appendix C.1):
one 10-way categorical code, two continuous codes in U(-1, 1), lambda 1 for
the categorical and 0.1 for the continuous part, 62 noise variables, D at
2e-4 and G at 1e-3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses as L
from .adversarial import AdversarialGAN
from .dcgan import DCGANOptions
from .options import option
from .registry import register


@dataclass
class InfoGANOptions(DCGANOptions):
    lr_g: float = option(1e-3, "Chen et al. 2016, appendix C.1: G learning rate 1e-3")
    lr_d: float = option(2e-4, "Chen et al. 2016, appendix C.1: D learning rate 2e-4")
    categorical_codes: Any = option([10], "Chen et al. 2016, sec. 7.1: one 10-way categorical code (MNIST)")
    continuous_codes: int = option(2, "Chen et al. 2016, sec. 7.1: two continuous codes in U(-1, 1)", min=0)
    info_weight: float = option(1.0, "Chen et al. 2016, appendix C: lambda = 1 (discrete codes)", min=0.0)
    continuous_weight: float = option(0.1, "Chen et al. 2016, appendix C: a smaller lambda for continuous codes",
                                      min=0.0)
    noise_dim: Optional[int] = option(None, "Chen et al. 2016, appendix C.1: 62 noise variables (images; 16 for "
                                            "points)", min=1)

    def resolve(self, method: Any) -> None:
        super().resolve(method)
        cats = self.categorical_codes
        if isinstance(cats, int) and not isinstance(cats, bool):
            cats = [cats]
        if not isinstance(cats, (list, tuple)) or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 2 for k in cats):
            raise ValueError(f"option 'categorical_codes' must be a list of category counts >= 2; got {cats!r}")
        self.categorical_codes = [int(k) for k in cats]
        if not self.categorical_codes and self.continuous_codes == 0:
            raise ValueError("model 'infogan' needs at least one code (categorical_codes or continuous_codes)")
        if self.noise_dim is None:
            self.noise_dim = 62 if len(self.sample_shape) == 3 else 16


@register
class InfoGAN(AdversarialGAN):
    name = "infogan"
    family = "conditional"
    paper = "Chen et al. 2016, InfoGAN: Interpretable Representation Learning by Information Maximizing GANs, " \
            "NeurIPS (arXiv:1606.03657)"
    summary = "categorical/continuous codes, Q head on D's trunk, mutual-information term"
    Options = InfoGANOptions
    d_networks = ("D", "Q")

    @property
    def code_dim(self) -> int:
        return sum(self.options.categorical_codes) + self.options.continuous_codes

    def generator_input_dim(self) -> int:
        return self.options.noise_dim + self.code_dim

    def build_networks(self) -> Dict[str, nn.Module]:
        nets = super().build_networks()
        hidden = 128
        nets["Q"] = nn.Sequential(nn.Linear(nets["D"].feature_dim, hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, self.code_dim))
        return nets

    def sample_latent(self, n: int, *, device: Any = None, generator: Optional[torch.Generator] = None) -> Tensor:
        """``[noise, one-hot categorical codes, continuous codes in U(-1, 1)]``, (n, noise_dim + code_dim)."""
        o = self.options
        noise = torch.randn(n, o.noise_dim, device=device, generator=generator)
        parts: List[Tensor] = [noise]
        for k in o.categorical_codes:
            idx = torch.randint(0, k, (n,), device=device, generator=generator)
            parts.append(F.one_hot(idx, k).to(noise.dtype))
        if o.continuous_codes:
            parts.append(torch.rand(n, o.continuous_codes, device=device, generator=generator) * 2 - 1)
        return torch.cat(parts, 1)

    def info_loss(self, z: Tensor, features: Tensor) -> Tensor:
        """lambda * L_I for codes in ``z`` given D's trunk features of G(z)."""
        o = self.options
        q = self.Q(features).float()
        codes = z[:, o.noise_dim:].float()
        loss = q.new_zeros(())
        at = 0
        for k in o.categorical_codes:
            loss = loss + F.cross_entropy(q[:, at:at + k], codes[:, at:at + k].argmax(1))
            at += k
        if o.continuous_codes:
            loss = loss + o.continuous_weight * 0.5 * ((q[:, at:] - codes[:, at:]) ** 2).sum(1).mean()
        return o.info_weight * loss

    def discriminator_loss(self, real, y, fake, y_fake, z, ctx):
        real_out = self.d_forward(self.noisy(real, ctx), None)
        fake_out, f_fake = self.d_forward(self.noisy(fake, ctx), None, features=True)
        adv = L.discriminator_loss(self.loss, real_out, fake_out, **self.label_kwargs())
        info = self.info_loss(z, f_fake)
        return adv + info, {"d_loss": adv.detach(), "info": info.detach(),
                            "d_real": real_out.detach().float().mean(), "d_fake": fake_out.detach().float().mean()}

    def generator_loss(self, fake, y_fake, z, real, y, ctx):
        fake_out, f_fake = self.d_forward(self.noisy(fake, ctx), None, features=True)
        adv = L.generator_loss(self.loss, fake_out)
        info = self.info_loss(z, f_fake)
        return adv + info, {"g_loss": adv.detach(), "g_info": info.detach()}
