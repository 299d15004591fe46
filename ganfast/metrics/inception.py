"""Inception-v3 as the FID reference uses it: pool3 features (2048) and the 1008-way logits.

The network is Szegedy et al. 2016 ("Rethinking the Inception Architecture
for Computer Vision") in the form of the TensorFlow graph
``inception-2015-12-05`` that FID was defined with (Heusel et al. 2017).
That graph differs from the paper's and from torchvision's Inception-v3 in
small ways that move FID, and all are reproduced here:

* the average pools inside the mixed blocks ignore padding
  (``count_include_pad=False``: TensorFlow's ``SAME`` average pool divides
  by the number of real pixels);
* the last block (``Mixed_7c``) pools its fourth branch with a max pool,
  not an average pool;
* the classifier has 1008 classes;
* batch normalisation uses ``eps = 0.001``;
* the input is resized to 299 x 299 (bilinear, ``align_corners=False``) and
  scaled from [0, 1] to [-1, 1].

Module and parameter names follow torchvision's ``Inception3`` (``Conv2d_1a_3x3``,
``Mixed_5b.branch5x5_1``, ``conv`` / ``bn`` in every convolution, ``fc``), so
pytorch-fid's weights file ``pt_inception-2015-12-05-6726825d.pth`` (the
TensorFlow weights ported to a PyTorch ``state_dict``) loads as it is.

Nothing is downloaded, ever.  :func:`load_inception` takes the file from an
argument, else ``$GANFAST_INCEPTION_WEIGHTS``, else the places pytorch-fid and
ganfast would have left it, and otherwise raises an error that names the
file, where it comes from and where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_ENV = "GANFAST_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + INCEPTION_WEIGHTS_FILE
)
FEATURES = 2048
CLASSES = 1008
INPUT_SIZE = 299
#: Smallest input the network accepts without resizing (every stride-2 stage needs a 3x3 window).
MIN_INPUT_SIZE = 75


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU: every convolution of the network."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_same(x: Tensor) -> Tensor:
    # TensorFlow's SAME average pool: padded positions are not counted.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_same(x)),
        ], 1)


class ReductionB(nn.Module):
    """35x35 -> 17x17 (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)


class MixedC(nn.Module):
    """17x17 block with factorized 7x7 convolutions (Mixed_6b..e)."""

    def __init__(self, cin: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                     self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = conv(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool_same(x))], 1)


class ReductionD(nn.Module):
    """17x17 -> 8x8 (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = x
        for conv in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return torch.cat([
            self.branch3x3_2(self.branch3x3_1(x)),
            b7,
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)


class MixedE(nn.Module):
    """8x8 block with split 1x3 / 3x1 branches (Mixed_7b, Mixed_7c).

    ``pool="avg"`` for Mixed_7b, ``pool="max"`` for Mixed_7c: the FID graph
    max-pools the last block's pooling branch.
    """

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max'; got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _avg_pool_same(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd),
            self.branch_pool(pooled),
        ], 1)


class InceptionV3(nn.Module):
    """The FID Inception-v3: images in [0, 1] -> pool3 features ``(N, 2048)``.

    Built with random weights (see ``__init__``); :func:`load_inception` (or
    :meth:`load_weights`) puts the FID weights in.  ``forward`` returns the
    2048 pool3 features FID and KID use; :meth:`features_and_logits` also
    returns the 1008 logits the Inception Score uses.

    Args:
        resize_input: resize every input to 299 x 299 (bilinear,
            ``align_corners=False``), as the FID reference does.  Without it
            inputs must be at least 75 x 75.
        normalize_input: map inputs from [0, 1] to [-1, 1] (the network's
            range).  Turn off only for inputs already in [-1, 1].

    Inputs: ``(N, 3, H, W)`` floats in [0, 1] (one channel is repeated to
    three).  The network runs in float32 whatever the input dtype (FID is
    defined by float32 features).
    """

    def __init__(self, resize_input: bool = True, normalize_input: bool = True) -> None:
        super().__init__()
        self.resize_input = resize_input
        self.normalize_input = normalize_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = MixedA(192, pool_features=32)
        self.Mixed_5c = MixedA(256, pool_features=64)
        self.Mixed_5d = MixedA(288, pool_features=64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = MixedC(768, channels_7x7=128)
        self.Mixed_6c = MixedC(768, channels_7x7=160)
        self.Mixed_6d = MixedC(768, channels_7x7=160)
        self.Mixed_6e = MixedC(768, channels_7x7=192)
        self.Mixed_7a = ReductionD(768)
        self.Mixed_7b = MixedE(1280, pool="avg")
        self.Mixed_7c = MixedE(2048, pool="max")
        self.fc = nn.Linear(FEATURES, CLASSES)
        self.weights_file: Optional[str] = None
        # Variance-preserving random weights (He et al. 2015, fan-in, for
        # ReLU), so that an untrained network -- in tests, or as a sanity
        # check -- gives features of order 1 rather than ~1e-8.
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")

    def _prepare(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"images must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"images must have shape (N, 3, H, W) (or N, 1, H, W); got {tuple(x.shape)}")
        x = x.to(torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize_input:
            if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
                x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        elif min(x.shape[-2:]) < MIN_INPUT_SIZE:
            raise ValueError(
                f"images must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} without resize_input; got "
                f"{tuple(x.shape[-2:])}"
            )
        if self.normalize_input:
            x = 2.0 * x - 1.0
        return x

    def pool3(self, x: Tensor) -> Tensor:
        """Prepared input -> the 2048 pool3 features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(N, 3, H, W)`` in [0, 1] -> pool3 features ``(N, 2048)`` float32."""
        return self.pool3(self._prepare(x))

    def features_and_logits(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Images -> ``(pool3 features (N, 2048), logits (N, 1008))``."""
        f = self.pool3(self._prepare(x))
        return f, self.fc(f)

    def logits(self, x: Tensor) -> Tensor:
        """Images -> the 1008 class logits (for the Inception Score)."""
        return self.features_and_logits(x)[1]

    def load_weights(self, path: Union[str, "os.PathLike[str]"]) -> "InceptionV3":
        """Load a ``state_dict`` file (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``)."""
        path = os.fspath(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"cannot read Inception weights from {path}: {type(err).__name__}: {err}") from err
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state_dict (got {type(state).__name__})")
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
        fc = state.get("fc.weight")
        if isinstance(fc, Tensor) and tuple(fc.shape) == (1000, FEATURES):
            raise ValueError(
                f"{path} holds torchvision's ImageNet Inception-v3 weights (1000 classes), not the FID "
                f"network's (1008 classes, TensorFlow graph inception-2015-12-05): FID computed with them is "
                f"not comparable to published numbers. Use {INCEPTION_WEIGHTS_FILE} ({INCEPTION_WEIGHTS_URL})"
            )
        own = self.state_dict()
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in own and not k.startswith("AuxLogits.")]
        wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
            if wrong:
                k = wrong[0]
                parts.append(f"{len(wrong)} of the wrong shape (e.g. {k}: {tuple(state[k].shape)}, "
                             f"expected {tuple(own[k].shape)})")
            raise ValueError(
                f"{path} is not an FID Inception-v3 state_dict: keys {'; '.join(parts)}. Expected "
                f"{INCEPTION_WEIGHTS_FILE} ({INCEPTION_WEIGHTS_URL})"
            )
        self.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
        self.weights_file = path
        return self


def default_weight_paths() -> List[Path]:
    """Where :func:`load_inception` looks when neither an argument nor the environment names a file."""
    paths = [Path(os.path.expanduser("~/.cache/ganfast")) / INCEPTION_WEIGHTS_FILE]
    try:
        paths.append(Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE)  # pytorch-fid's cache
    except Exception:
        pass
    return paths


def _missing_weights(reason: str) -> FileNotFoundError:
    places = "\n".join(f"  - {p}" for p in default_weight_paths())
    return FileNotFoundError(
        f"{reason}\n"
        f"FID needs the Inception-v3 weights file {INCEPTION_WEIGHTS_FILE}: pytorch-fid's PyTorch port of "
        f"the TensorFlow FID network (inception-2015-12-05), a state_dict. ganfast never downloads it. Get it "
        f"once from\n  {INCEPTION_WEIGHTS_URL}\n"
        f"and either pass its path (weights=... in Python, --weights on the command line), set "
        f"{INCEPTION_WEIGHTS_ENV}=/path/to/{INCEPTION_WEIGHTS_FILE}, or put it at one of\n{places}"
    )


def resolve_weights(weights: Optional[Union[str, "os.PathLike[str]"]] = None) -> str:
    """The weights file to use: ``weights``, else ``$GANFAST_INCEPTION_WEIGHTS``, else a default place."""
    if weights is not None:
        p = os.fspath(weights)
        if not os.path.isfile(p):
            raise _missing_weights(f"The Inception weights file given does not exist: {p}")
        return p
    env = os.environ.get(INCEPTION_WEIGHTS_ENV, "").strip()
    if env:
        if not os.path.isfile(env):
            raise _missing_weights(f"{INCEPTION_WEIGHTS_ENV} names a file that does not exist: {env}")
        return env
    for p in default_weight_paths():
        if p.is_file():
            return str(p)
    raise _missing_weights(f"No Inception weights file was given and {INCEPTION_WEIGHTS_ENV} is not set.")


def load_inception(weights: Optional[Union[str, "os.PathLike[str]"]] = None, device: Any = None,
                   **options: Any) -> InceptionV3:
    """The FID Inception-v3 with its weights loaded, in eval mode, without gradients.

    ``weights``: path of the state_dict file; default ``$GANFAST_INCEPTION_WEIGHTS``,
    then ``~/.cache/ganfast/`` and torch hub's checkpoint folder (where
    pytorch-fid caches it).  Raises FileNotFoundError saying which file is
    needed and where to put it.  ``options`` go to :class:`InceptionV3`.
    """
    path = resolve_weights(weights)
    model = InceptionV3(**options).load_weights(path)
    model.eval().requires_grad_(False)
    if device is not None:
        model.to(device)
    return model


def state_dict_keys() -> Dict[str, Tuple[int, ...]]:
    """Parameter and buffer names of the network with their shapes (what a weights file must hold)."""
    return {k: tuple(v.shape) for k, v in InceptionV3().state_dict().items()}
