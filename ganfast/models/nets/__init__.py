"""Network families, one per file, shared by the GAN methods (no method logic in them).

Four networks: :class:`MLPGenerator` / :class:`MLPDiscriminator` (the
fully connected nets of Goodfellow et al. 2014) and :class:`ConvGenerator` /
:class:`ConvDiscriminator` (DCGAN, Radford et al. 2015), each optionally
class-conditional (cGAN, Mirza & Osindero 2014), spectrally normalised
(Miyato et al. 2018), with SAGAN self-attention (Zhang et al. 2019) and the
minibatch layers of Salimans et al. 2016 and Karras et al. 2018.

Conventions the variants rely on:

* generators: ``forward(z, y=None)``; discriminators:
  ``forward(x, y=None, *, return_features=False)`` -> logits of shape (B,),
  or ``(logits, features)`` with features of shape (B, ``feature_dim``), the
  representation the final linear layer reads (before any minibatch
  discrimination columns are appended).
* ``num_classes > 0`` makes a network conditional: ``y`` (int64, shape (B,))
  is then required; a ``y`` for an unconditional network is an error.
* Conv blocks live in a ``blocks`` ``nn.Sequential``; every block's
  convolution is its child ``conv`` whether the block is a fused
  ``ganfast.nn`` layer (``batch_norm=True``) or an ``nn.Sequential`` of
  ``conv`` and ``act``, so the state_dict keys have the same shape either
  way (``blocks.1.conv.weight``, ``blocks.1.bn.running_mean``) and match a
  plain torch.nn network built with the same names.
* ``spectral_norm=True`` parametrizes every Linear / Conv2d /
  ConvTranspose2d weight with ``torch.nn.utils.parametrizations.spectral_norm``
  (keys ``...conv.parametrizations.weight.original``, ``..._u``, ``..._v``).

This module knows nothing of kernels or backends: the fused layers follow
the global choice (:func:`ganfast.use_backend`).
"""

from ._common import count_parameters, init_weights, stddev_group_size
from .cyclegan import ResNetGenerator
from .dcgan import ConvDiscriminator, ConvGenerator
from .lapgan import BandPassDiscriminator, BandPassGenerator
from .srgan import SRDiscriminator, SRResNetGenerator, VGG19Features
from .mlp import MLPDiscriminator, MLPGenerator
from .pix2pix import PatchDiscriminator, UNetGenerator
from .progan import ProGANDiscriminator, ProGANGenerator
from .stylegan import StyleGANDiscriminator, StyleGANGenerator
from .stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

#: network family -> (module, one line for ``ganfast list``)
FAMILIES = {
    "mlp": ("ganfast.models.nets.mlp", "fully connected G and D (Goodfellow et al. 2014); points and small images"),
    "dcgan": ("ganfast.models.nets.dcgan", "DCGAN conv G and D (Radford et al. 2015) on the fused conv + BN + act "
                                            "layers; optional SAGAN attention, minibatch stddev/discrimination"),
    "progan": ("ganfast.models.nets.progan", "ProGAN G and D (Karras et al. 2018): whole networks whose level of "
                                              "detail picks the blocks that run and fades the newest one in"),
    "stylegan": ("ganfast.models.nets.stylegan", "StyleGAN G (Karras et al. 2019): mapping network, constant "
                                                  "input, AdaIN layers with noise; ProGAN's D"),
    "pix2pix": ("ganfast.models.nets.pix2pix", "pix2pix U-Net G with skips and test-time dropout, 70x70 PatchGAN D "
                                                "(Isola et al. 2017)"),
    "cyclegan": ("ganfast.models.nets.cyclegan", "CycleGAN ResNet G with reflection padding and instance norm "
                                                  "(Zhu et al. 2017); pix2pix's PatchGAN D"),
    "lapgan": ("ganfast.models.nets.lapgan", "LAPGAN's conditional band-pass G and D (Denton et al. 2015); the "
                                              "coarsest level uses the MLP nets"),
    "srgan": ("ganfast.models.nets.srgan", "SRResNet G (16 residual blocks with BN and PReLU, PixelShuffle x4) and "
                                            "the 8-conv D of SRGAN (Ledig et al. 2017); VGG19 features"),
    "stylegan2": ("ganfast.models.nets.stylegan2", "StyleGAN2 G and D (Karras et al. 2020): mapping network, skip "
                                                    "generator of modulated convs with noise, residual discriminator"),
}

__all__ = [
    "FAMILIES",
    "MLPGenerator",
    "MLPDiscriminator",
    "ConvGenerator",
    "ConvDiscriminator",
    "ProGANGenerator",
    "ProGANDiscriminator",
    "StyleGANGenerator",
    "StyleGANDiscriminator",
    "StyleGAN2Generator",
    "StyleGAN2Discriminator",
    "UNetGenerator",
    "PatchDiscriminator",
    "ResNetGenerator",
    "BandPassGenerator",
    "BandPassDiscriminator",
    "SRResNetGenerator",
    "SRDiscriminator",
    "VGG19Features",
    "init_weights",
    "count_parameters",
    "stddev_group_size",
]
