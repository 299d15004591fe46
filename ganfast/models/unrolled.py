"""Unrolled GAN (Metz, Poole, Pfau & Sohl-Dickstein 2017, ICLR; arXiv:1611.02163).

G's loss is taken through k unrolled discriminator updates:
f_K(theta_G, theta_D) = f(theta_G, theta_D^K), with theta_D^{k+1} =
theta_D^k + eta * df/dtheta_D^k (eq. 5-7).  The unrolled steps use Adam's
update rule with D's optimiser's current moments, and the gradient flows
through them (``unroll_grad=True``, the paper's full surrogate);
``unroll_grad=False`` treats the unrolled parameters as constants (cheaper,
the "first order" variant).  The real D still takes its ordinary step; the
unrolled copies are thrown away.  Defaults follow the 2-D mixture experiment
released with the paper: MLPs with two hidden layers of 128 units, Adam
with beta1 0.5, D at 1e-4, G at 1e-3, k = 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
from torch import Tensor
from torch.func import functional_call

from .. import losses as L
from ..data.batch import Batch
from .adversarial import AdversarialGAN, AdversarialOptions
from .options import option
from .phases import StepContext
from .registry import register


@dataclass
class UnrolledOptions(AdversarialOptions):
    batch_norm_g: bool = option(False, "Metz et al. 2017, appendix A (2-D mixture): plain MLPs")
    batch_norm_d: bool = option(False, "Metz et al. 2017, appendix A (2-D mixture): plain MLPs")
    lr_g: float = option(1e-3, "Metz et al. 2017, appendix A: generator learning rate 1e-3")
    lr_d: float = option(1e-4, "Metz et al. 2017, appendix A: discriminator learning rate 1e-4")
    init: str = option("default", "Metz et al. 2017, released code: the layers' own initialisation")
    unroll_steps: int = option(5, "Metz et al. 2017, fig. 1: k = 5 unrolling steps", min=0)
    unroll_grad: bool = option(True, "Metz et al. 2017, eq. 7: differentiate through the unrolled updates")


@register
class Unrolled(AdversarialGAN):
    name = "unrolled"
    family = "mode collapse"
    paper = "Metz, Poole, Pfau & Sohl-Dickstein 2017, Unrolled Generative Adversarial Networks, ICLR " \
            "(arXiv:1611.02163)"
    summary = "G's loss through k unrolled D steps (k=5, gradient through the unroll)"
    Options = UnrolledOptions
    # 2-D mixtures: the paper's batch of 512, and as many steps as fit in about 4 CPU minutes
    # (each step is ~10 discriminator passes with their double backward)
    recommended = {"points": {"steps": 8000, "batch_size": 512}}

    def g_phase(self, batch: Batch, ctx: StepContext) -> Tuple[Tensor, Dict[str, Tensor]]:
        k = self.options.unroll_steps
        if k == 0:
            return super().g_phase(batch, ctx)
        real, _ = self.real(batch)
        d = self.D
        names = [n for n, _ in d.named_parameters()]
        params = {n: p.detach().clone().requires_grad_(True) for n, p in d.named_parameters()}
        buffers = {n: b.clone() for n, b in d.named_buffers()}
        opt = ctx.optimizers["D"]
        group = opt.param_groups[0]
        lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
        state = {n: opt.state.get(p, {}) for n, p in d.named_parameters()}
        create_graph = self.options.unroll_grad
        kw = self.label_kwargs()
        m = {n: (state[n]["exp_avg"].clone() if "exp_avg" in state[n] else torch.zeros_like(params[n]))
             for n in names}
        v = {n: (state[n]["exp_avg_sq"].clone() if "exp_avg_sq" in state[n] else torch.zeros_like(params[n]))
             for n in names}
        t0 = int(float(state[names[0]].get("step", 0))) if names and state[names[0]] else 0

        def d_out(x, p):
            return functional_call(d, {**p, **buffers}, (x,))

        # the generator's sample is part of the graph: the unrolled D adapts to *this* G,
        # and dL/dtheta_G includes how that adaptation depends on theta_G
        z, y_fake, fake = self.fake(real.shape[0], real.device)
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
                nxt[n] = cur[n] - lr * mhat / (_sqrt0(vhat) + eps)
            cur = nxt if create_graph else {n: p.detach().requires_grad_(True) for n, p in nxt.items()}
        g_loss = L.generator_loss(self.loss, d_out(fake, cur))
        return g_loss, {"g_loss": g_loss.detach()}


def _sqrt0(v: Tensor) -> Tensor:
    """``sqrt(v)`` whose derivative is 0, not inf, where ``v == 0``.

    Adam's second moment is exactly 0 where every gradient so far was 0 (more
    often under bf16 autocast, where small gradients underflow); sqrt's
    derivative there is inf, and inf * dv/dg = inf * 0 makes the unrolled
    gradient NaN.  The value is sqrt's everywhere; at v = 0 the derivative
    of sqrt(v(g)) = c|g| is a subgradient, and 0 is one.
    """
    pos = v > 0
    return torch.where(pos, torch.where(pos, v, torch.ones_like(v)).sqrt(), torch.zeros_like(v))
