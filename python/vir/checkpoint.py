"""Checkpoints: a ViR's state dict in safetensors, with its config (JSON) and class names in the metadata."""
import json

from . import safetensors
from .config import ViRConfig
from .model import ViR

FORMAT = "vir-safetensors-1"


def save_checkpoint(model, path: str, labels=None):
    """Writes a ViR (or the reference ViT, whose metadata says architecture ViT)."""
    metadata = {"format": FORMAT, "config": model.config.to_json(), "architecture": type(model).__name__}
    if labels is not None:
        metadata["labels"] = json.dumps(list(labels))
    # BatchNorm's num_batches_tracked is bookkeeping, not a weight; the library has no use for it.
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    safetensors.save(state, path, metadata)


def load_checkpoint(path: str):
    """Returns (model in eval mode, class names or None). Every tensor must match the config's model exactly."""
    tensors, metadata = safetensors.load(path)
    if "config" not in metadata:
        raise ValueError(f"{path} has no 'config' in its metadata: it was not written by save_checkpoint or the library.")
    model = ViR(ViRConfig.from_json(metadata["config"]))
    expected = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [f"{k}: expected {list(expected[k])}, got {list(tensors[k].shape)}" for k in expected
             if k in tensors and tensors[k].shape != expected[k]]
    if missing or unexpected or wrong:
        raise ValueError(f"{path} does not fit the model its config describes: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}.")
    model.load_state_dict(tensors, strict=False)
    labels = json.loads(metadata["labels"]) if "labels" in metadata else None
    return model.eval(), labels
