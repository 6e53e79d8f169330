"""The PyTorch twin of Microsoft.ML.Retention's Vision Retention Network (ViR).

Same modules, same state-dict names and the same config (as JSON), so weights move both ways through
safetensors: train here with DistributedDataParallel, score in ML.NET, or the reverse.
"""
from .config import ViRConfig
from .model import ViR
from .retention import chunkwise, parallel, recurrent
from .checkpoint import load_checkpoint, save_checkpoint
from . import safetensors

__all__ = ["ViRConfig", "ViR", "parallel", "chunkwise", "recurrent", "load_checkpoint", "save_checkpoint", "safetensors"]
