"""Training: the Trainer, checkpoints, EMA, distributed helpers, logging and sample grids.

``Trainer(TrainConfig(model="wgan-gp", data="ring8")).fit()`` is what
``ganfast train --model wgan-gp --data ring8`` runs.
"""

from .evaluate import Evaluator
from .trainer import TrainConfig, Trainer, check_checkpoint, model_from_checkpoint, recommended, upgrade_checkpoint

__all__ = ["Evaluator", "TrainConfig", "Trainer", "check_checkpoint", "model_from_checkpoint", "recommended",
           "upgrade_checkpoint"]
