"""Models: the shared base module, the baseline and one file per paper."""
from fashionbench.models.base import EvalConfig, MultiLabelModule
from fashionbench.models.baseline import Baseline
from fashionbench.models.cmsg import CMSG
from fashionbench.models.optim import OptimConfig

__all__ = ["Baseline", "CMSG", "EvalConfig", "MultiLabelModule", "OptimConfig"]
