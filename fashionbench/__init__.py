"""fashionbench: a PyTorch Lightning benchmark suite for multi-label image classification."""

__version__ = "0.1.0"
