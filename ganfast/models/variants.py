"""The GAN methods: each paper's networks, losses and optimiser settings as defaults.

Every default below comes from the method's paper; the citation sits beside
it.  Architectures scale to the data: convolutional (DCGAN-style) networks on
images, MLPs on points (the 2-D mixtures of the mode-collapse literature) and
wherever the paper used an MLP.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .. import losses as L
from .base import GANModel

REGISTRY: Dict[str, type] = {}


def register(cls: type) -> type:
    REGISTRY[cls.name] = cls
    return cls


@register
class GAN(GANModel):
    # Goodfellow et al. 2014: MLPs (maxout D with dropout), the minimax game with
    # the non-saturating generator loss the paper recommends in practice (section 3),
    # SGD with momentum there; we use Adam as every later reproduction does.
    name = "gan"
    summary = "Goodfellow et al. 2014: MLP generator and discriminator, non-saturating loss"
    defaults = {"arch": "mlp", "loss": "non-saturating", "batch_norm_g": False, "batch_norm_d": False,
                "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999), "init": "default"}
    # 2-D mixtures: the budget of the unrolled-GAN experiment's baseline (batch 512, 20k+ steps;
    # about a minute on a CPU)
    recommended = {"points": {"steps": 20000, "batch_size": 512}}


@register
class DCGAN(GANModel):
    # Radford et al. 2015, section 3-4: strided convs in D, fractionally strided in G,
    # BatchNorm in both (not on G's output or D's input), ReLU/Tanh in G, LeakyReLU(0.2)
    # in D, Adam lr 2e-4 beta1 0.5, weights N(0, 0.02).
    name = "dcgan"
    summary = "Radford et al. 2015: strided/fractionally strided convs, BatchNorm, Adam 2e-4 (0.5, 0.999)"
    defaults = {"loss": "non-saturating", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999)}
    # `ganfast train` with no arguments: 16x16 digits, batch 128 as in the paper, about 4
    # minutes on a 2-core CPU
    recommended = {"image": {"steps": 3000, "batch_size": 128}}


@register
class CGAN(GANModel):
    # Mirza & Osindero 2014: the label is fed to both networks (embedding concatenated to
    # z in G; one-hot label maps concatenated to the input of D).
    name = "cgan"
    conditional = True
    summary = "Mirza & Osindero 2014: conditional GAN, labels fed to G and D"
    defaults = {"loss": "non-saturating", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999)}


@register
class ACGAN(GANModel):
    """Odena et al. 2017: G is conditional; D predicts real/fake and the class.

    D maximises L_S + L_C, G maximises L_C - L_S (section 3): both add the
    class cross-entropy on fakes, D also on reals.
    """

    name = "acgan"
    conditional = True
    summary = "Odena et al. 2017: auxiliary classifier GAN (D predicts the class)"
    defaults = {"loss": "non-saturating", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999)}
    extra_options = {"class_weight": 1.0}

    def discriminator_classes(self) -> int:
        return 0  # D sees images only; the classifier head predicts the label

    def build_networks(self) -> None:
        if self.num_classes < 2:
            raise ValueError("model 'acgan' needs labelled data with at least 2 classes (num_classes)")
        super().build_networks()
        self.classifier = nn.Linear(self.discriminator.feature_dim, self.num_classes)

    def discriminator_modules(self) -> List[nn.Module]:
        return [self.discriminator, self.classifier]

    def discriminator_loss(self, real, y, fake, y_fake, ctx):
        real_out, f_real = self.d_forward(self._noisy(real, ctx), None, features=True)
        fake_out, f_fake = self.d_forward(self._noisy(fake, ctx), None, features=True)
        c = self.config
        adv = L.discriminator_loss(self.loss, real_out, fake_out, **self.label_kwargs())
        cls = (F.cross_entropy(self.classifier(f_real).float(), y)
               + F.cross_entropy(self.classifier(f_fake).float(), y_fake))
        total = adv + c["class_weight"] * cls
        with torch.no_grad():
            acc = (self.classifier(f_real).argmax(1) == y).float().mean()
        return total, {"d_loss": adv.detach(), "d_class": cls.detach(), "d_real_acc": acc,
                       "d_real": real_out.detach().float().mean(), "d_fake": fake_out.detach().float().mean()}

    def generator_loss(self, fake, y_fake, real, y, ctx):
        fake_out, f_fake = self.d_forward(self._noisy(fake, ctx), None, features=True)
        adv = L.generator_loss(self.loss, fake_out)
        cls = F.cross_entropy(self.classifier(f_fake).float(), y_fake)
        return adv + self.config["class_weight"] * cls, {"g_loss": adv.detach(), "g_class": cls.detach()}


@register
class InfoGAN(GANModel):
    """Chen et al. 2016: latent codes c whose mutual information with G(z, c) is maximised.

    The lower bound L_I (eq. 5) is estimated by a head Q on D's trunk:
    categorical codes by cross-entropy, continuous codes by a factored
    Gaussian with fixed unit variance (the paper's choice on MNIST), so the
    continuous term is 0.5 * squared error.  min_{G,Q} max_D V - lambda L_I:
    D's optimiser trains Q with the trunk; G gets the same term.
    Defaults from the paper's MNIST setup: one 10-way categorical code, two
    continuous codes in U(-1, 1), lambda 1 for the categorical and 0.1 for
    the continuous part, D lr 2e-4, G lr 1e-3.
    """

    name = "infogan"
    summary = "Chen et al. 2016: categorical/continuous codes, Q head on D's trunk, mutual-information term"
    defaults = {"loss": "non-saturating", "lr_g": 1e-3, "lr_d": 2e-4, "betas": (0.5, 0.999)}
    extra_options = {"categorical_codes": [10], "continuous_codes": 2, "info_weight": 1.0,
                     "continuous_weight": 0.1, "noise_dim": None}

    def _normalise(self, c):
        c = super()._normalise(c)
        cats = c["categorical_codes"]
        if isinstance(cats, int):
            cats = [cats]
        if not isinstance(cats, (list, tuple)) or not all(isinstance(k, int) and k >= 2 for k in cats):
            raise ValueError(f"option 'categorical_codes' must be a list of category counts >= 2; got {cats!r}")
        c["categorical_codes"] = [int(k) for k in cats]
        cont = c["continuous_codes"]
        if isinstance(cont, bool) or not isinstance(cont, int) or cont < 0:
            raise ValueError(f"option 'continuous_codes' must be an int >= 0; got {cont!r}")
        if not c["categorical_codes"] and cont == 0:
            raise ValueError("model 'infogan' needs at least one code (categorical_codes or continuous_codes)")
        if c["noise_dim"] is None:
            c["noise_dim"] = 62 if len(c["sample_shape"]) == 3 else 16  # paper: 62 noise variables on MNIST
        return c

    @property
    def code_dim(self) -> int:
        return sum(self.config["categorical_codes"]) + self.config["continuous_codes"]

    def generator_input_dim(self) -> int:
        return self.config["noise_dim"] + self.code_dim

    def build_networks(self) -> None:
        super().build_networks()
        f = self.discriminator.feature_dim
        hidden = 128
        self.q_head = nn.Sequential(nn.Linear(f, hidden), nn.LeakyReLU(0.2),
                                    nn.Linear(hidden, self.code_dim))

    def discriminator_modules(self) -> List[nn.Module]:
        return [self.discriminator, self.q_head]

    def sample_latent(self, n, *, device=None, generator=None, codes: Optional[Dict[str, Tensor]] = None):
        c = self.config
        noise = torch.randn(n, c["noise_dim"], device=device, generator=generator)
        parts = [noise]
        for k in c["categorical_codes"]:
            idx = torch.randint(0, k, (n,), device=device, generator=generator)
            parts.append(F.one_hot(idx, k).to(noise.dtype))
        if c["continuous_codes"]:
            parts.append(torch.rand(n, c["continuous_codes"], device=device, generator=generator) * 2 - 1)
        return torch.cat(parts, 1)

    def _info_loss(self, z: Tensor, features: Tensor) -> Tensor:
        c = self.config
        q = self.q_head(features).float()
        codes = z[:, c["noise_dim"]:].float()
        loss = q.new_zeros(())
        at = 0
        for k in c["categorical_codes"]:
            loss = loss + F.cross_entropy(q[:, at:at + k], codes[:, at:at + k].argmax(1))
            at += k
        if c["continuous_codes"]:
            loss = loss + c["continuous_weight"] * 0.5 * ((q[:, at:] - codes[:, at:]) ** 2).sum(1).mean()
        return c["info_weight"] * loss

    def discriminator_loss(self, real, y, fake, y_fake, ctx):
        c = self.config
        real_out = self.d_forward(self._noisy(real, ctx), None)
        fake_out, f_fake = self.d_forward(self._noisy(fake, ctx), None, features=True)
        adv = L.discriminator_loss(self.loss, real_out, fake_out, **self.label_kwargs())
        info = self._info_loss(self._last_z, f_fake)
        return adv + info, {"d_loss": adv.detach(), "info": info.detach(),
                            "d_real": real_out.detach().float().mean(), "d_fake": fake_out.detach().float().mean()}

    def generator_loss(self, fake, y_fake, real, y, ctx):
        fake_out, f_fake = self.d_forward(self._noisy(fake, ctx), None, features=True)
        adv = L.generator_loss(self.loss, fake_out)
        info = self._info_loss(self._last_z, f_fake)
        return adv + info, {"g_loss": adv.detach(), "g_info": info.detach()}

    def _fake(self, n, device):
        z, y, x = super()._fake(n, device)
        self._last_z = z
        return z, y, x


@register
class WGAN(GANModel):
    # Arjovsky et al. 2017, Algorithm 1: critic clipped to [-0.01, 0.01], RMSProp lr 5e-5,
    # n_critic 5; no sigmoid, no log. BatchNorm kept in G (their DCGAN generator), removed
    # from the critic so its output does not depend on the rest of the batch.
    name = "wgan"
    summary = "Arjovsky et al. 2017: Wasserstein critic, weight clipping 0.01, RMSProp 5e-5, n_critic 5"
    defaults = {"loss": "wasserstein", "optimizer": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5,
                "n_critic": 5, "clip_d": 0.01, "batch_norm_d": False}


@register
class WGANGP(GANModel):
    # Gulrajani et al. 2017, Algorithm 1: lambda 10, n_critic 5, Adam lr 1e-4 betas (0, 0.9);
    # no BatchNorm in the critic (the penalty is per sample). On the 2-D toys the paper uses
    # ReLU MLPs with three hidden layers of 512.
    name = "wgan-gp"
    summary = "Gulrajani et al. 2017: gradient penalty 10, Adam 1e-4 (0, 0.9), n_critic 5"
    defaults = {"loss": "wasserstein", "gradient_penalty": 10.0, "n_critic": 5, "lr_g": 1e-4, "lr_d": 1e-4,
                "betas": (0.0, 0.9), "batch_norm_d": False}

    # The 2-D mixtures within minutes on a CPU (the paper's toy runs took 100k iterations):
    # the released toy code's penalty weight 0.1 (a smaller lambda lets the critic be steep
    # enough to pull samples into 0.02-wide modes) and Adam betas (0.5, 0.9); Adam at 1e-3
    # decayed linearly to 0 (the decay is what tightens the clusters at the end), batch 512
    # and 128-unit layers (more, cheaper steps beat a wider network at equal time), and a
    # short EMA (0.99: a long one blurs clusters that are still moving). Measured: README.
    recommended = {"points": {"steps": 8000, "batch_size": 512, "lr_schedule": "linear", "ema_decay": 0.99,
                              "options": {"hidden": [128, 128, 128], "gradient_penalty": 0.1,
                                          "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.5, 0.9]}}}

    def _normalise(self, c):
        c = super()._normalise(c)
        if c["arch"] == "mlp" and c["hidden"] is None and len(c["sample_shape"]) == 1:
            c["hidden"] = [512, 512, 512]
        if c["arch"] == "mlp" and len(c["sample_shape"]) == 1:
            c["batch_norm_g"] = False  # the paper's toy generator has none
        return c


@register
class LSGAN(GANModel):
    # Mao et al. 2017: least-squares loss with a-b-c = 0-1-1 (eq. 9), Adam lr 2e-4 beta1 0.5.
    name = "lsgan"
    summary = "Mao et al. 2017: least-squares loss (0-1-1 coding), Adam 2e-4 (0.5, 0.999)"
    defaults = {"loss": "least-squares", "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999)}


@register
class SNGAN(GANModel):
    # Miyato et al. 2018: spectral normalisation on every D layer (no BatchNorm there), the
    # hinge loss, and setting C of table 1 for the standard CNN (Adam 2e-4, (0.5, 0.999), n_dis 1).
    name = "sngan"
    summary = "Miyato et al. 2018: spectral norm in D, hinge loss, Adam 2e-4 (0.5, 0.999)"
    defaults = {"loss": "hinge", "spectral_norm_d": True, "batch_norm_d": False,
                "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999)}


@register
class SAGAN(GANModel):
    # Zhang et al. 2018: self-attention in G and D at a middle resolution, spectral norm in
    # both, hinge loss, TTUR (Heusel et al. 2017): lr_G 1e-4, lr_D 4e-4, Adam (0, 0.9).
    name = "sagan"
    summary = "Zhang et al. 2018: self-attention in G and D, spectral norm, hinge, TTUR 1e-4/4e-4"
    defaults = {"loss": "hinge", "spectral_norm_g": True, "spectral_norm_d": True, "batch_norm_d": False,
                "lr_g": 1e-4, "lr_d": 4e-4, "betas": (0.0, 0.9)}

    def _normalise(self, c):
        c = super()._normalise(c)
        if c["arch"] != "conv":
            raise ValueError("model 'sagan' is convolutional (self-attention over feature maps): it needs image data")
        if c["self_attention"] is None:
            side = c["sample_shape"][1]
            # the paper's best placement is a middle-to-late feature map (32x32 of 128x128):
            # here the last hidden resolution of G, which D also produces
            c["self_attention"] = max(4, side // 2)
        return c


@register
class Unrolled(GANModel):
    """Metz et al. 2016: the generator's loss through k unrolled discriminator updates.

    f_K(theta_G, theta_D) = f(theta_G, theta_D^K), with theta_D^{k+1} =
    theta_D^k + eta * df/dtheta_D^k (eq. 5-7).  The unrolled steps use Adam's
    update rule with the discriminator optimiser's current moments, and the
    gradient flows through them (``unroll_grad=True``, the paper's full
    surrogate); ``unroll_grad=False`` treats the unrolled parameters as
    constants (cheaper, the "first order" variant).  The real discriminator
    still takes its ordinary step; the unrolled copies are thrown away.
    Defaults follow the 2-D mixture experiment released with the paper: MLPs
    with two hidden layers of 128 units, Adam with beta1 0.5, D lr 1e-4,
    G lr 1e-3, k = 5.
    """

    name = "unrolled"
    summary = "Metz et al. 2016: G's loss through k unrolled D steps (k=5, gradient through the unroll)"
    defaults = {"loss": "non-saturating", "batch_norm_g": False, "batch_norm_d": False,
                "lr_g": 1e-3, "lr_d": 1e-4, "betas": (0.5, 0.999), "init": "default"}
    extra_options = {"unroll_steps": 5, "unroll_grad": True}
    # 2-D mixtures: the paper's batch of 512, and as many steps as fit in about 4 CPU minutes
    # (each step is ~10 discriminator passes with their double backward)
    recommended = {"points": {"steps": 8000, "batch_size": 512}}

    def _normalise(self, c):
        c = super()._normalise(c)
        k = c["unroll_steps"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"option 'unroll_steps' must be an int >= 0; got {k!r}")
        if not isinstance(c["unroll_grad"], bool):
            raise ValueError(f"option 'unroll_grad' must be a bool; got {c['unroll_grad']!r}")
        return c

    def generator_step_loss(self, real, y, ctx, optimizers):
        k = self.config["unroll_steps"]
        if k == 0:
            return super().generator_step_loss(real, y, ctx, optimizers)
        d = self.discriminator
        names = [n for n, _ in d.named_parameters()]
        params = {n: p.detach().clone().requires_grad_(True) for n, p in d.named_parameters()}
        buffers = {n: b.clone() for n, b in d.named_buffers()}
        opt = optimizers["d"]
        group = opt.param_groups[0]
        lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
        state = {n: opt.state.get(p, {}) for n, p in d.named_parameters()}
        create_graph = self.config["unroll_grad"]
        kw = self.label_kwargs()
        m = {n: (state[n]["exp_avg"].clone() if "exp_avg" in state[n] else torch.zeros_like(params[n])) for n in names}
        v = {n: (state[n]["exp_avg_sq"].clone() if "exp_avg_sq" in state[n] else torch.zeros_like(params[n])) for n in names}
        t0 = int(float(state[names[0]].get("step", 0))) if names and state[names[0]] else 0

        def d_out(x, p):
            return functional_call(d, {**p, **buffers}, (x,))

        # the generator's sample is part of the graph: the unrolled D adapts to *this* G,
        # and dL/dtheta_G includes how that adaptation depends on theta_G
        z, y_fake, fake = self._fake(real.shape[0], real.device)
        cur = params
        for i in range(k):
            fk = fake if create_graph else fake.detach()
            loss = L.discriminator_loss(self.loss, d_out(real, cur), d_out(fk, cur), **kw)
            grads = torch.autograd.grad(loss, [cur[n] for n in names], create_graph=create_graph)
            t = t0 + i + 1
            nxt = {}
            for n, g in zip(names, grads):
                m[n] = b1 * m[n] + (1 - b1) * g
                v[n] = b2 * v[n] + (1 - b2) * g * g
                mhat = m[n] / (1 - b1 ** t)
                vhat = v[n] / (1 - b2 ** t)
                nxt[n] = cur[n] - lr * mhat / (vhat.sqrt() + eps)
            cur = nxt if create_graph else {n: p.detach().requires_grad_(True) for n, p in nxt.items()}
        out = d_out(fake, cur)
        g_loss = L.generator_loss(self.loss, out)
        return g_loss, {"g_loss": g_loss.detach()}


def names() -> List[str]:
    """Every registered method, in the order of the literature."""
    return list(REGISTRY)


def describe() -> List[Tuple[str, str]]:
    return [(n, REGISTRY[n].summary) for n in REGISTRY]


def build(name: str, *, dataset: Any = None, **options: Any) -> GANModel:
    """Build method ``name`` with its paper's defaults, overridden by ``options``.

    ``dataset`` (a :class:`ganfast.data.GANDataset`) fills ``sample_shape``
    and ``num_classes``; a conditional method on data without labels is an
    error that says so.
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {names()}")
    cls = REGISTRY[name]
    if dataset is not None:
        options.setdefault("sample_shape", tuple(dataset.sample_shape))
        options.setdefault("num_classes", int(dataset.num_classes))
        if cls.conditional:
            dataset.require_labels(name)
    elif cls.conditional and int(options.get("num_classes", 0)) < 1:
        raise ValueError(f"model {name!r} is conditional: pass num_classes (the label count) or a labelled dataset")
    return cls(**options)
