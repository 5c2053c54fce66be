"""Models: the shared base module, the baseline and one file per paper."""
from fashionbench.models.base import EvalConfig, MultiLabelModule
from fashionbench.models.baseline import Baseline
from fashionbench.models.cmsg import CMSG
from fashionbench.models.hmcnf import HierarchicalHMCNF
from fashionbench.models.optim import OptimConfig
from fashionbench.models.sdl import SDLZeroShot
from fashionbench.models.semantic_embed import CAMGenerator, SemanticEmbedResNeSt
from fashionbench.models.wdr import WideDeepRecurrent

__all__ = ["Baseline", "CAMGenerator", "CMSG", "EvalConfig", "HierarchicalHMCNF", "MultiLabelModule", "OptimConfig", "SDLZeroShot", "SemanticEmbedResNeSt", "WideDeepRecurrent"]
