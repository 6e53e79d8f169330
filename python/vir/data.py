"""Images from an ImageNet-style folder (root/<label>/<image>, or root/train/<label>/<image>), preprocessed as the
config's Preprocessing says (the library's ImagePreprocessing): luma (1 channel) or RGB, (value - Mean) / Std, then
resized bilinearly with antialiasing."""
import os

import torch
from PIL import Image

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def evaluation_folder(root: str):
    """root/val or root/test beside root/train, or None."""
    if not os.path.isdir(os.path.join(root, "train")):
        return None
    return next((os.path.join(root, s) for s in ("val", "test") if os.path.isdir(os.path.join(root, s))), None)


def image_files(root: str):
    """Sorted (path, label) pairs and the sorted class names."""
    if os.path.isdir(os.path.join(root, "train")):
        root = os.path.join(root, "train")
    labels = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    files = [(os.path.join(root, label, f), label) for label in labels
             for f in sorted(os.listdir(os.path.join(root, label))) if os.path.splitext(f)[1].lower() in EXTENSIONS]
    if not files:
        raise FileNotFoundError(f"No images in {root!r}: expected <label>/<image>.png subfolders.")
    return files, labels


def load_image(path: str, config) -> torch.Tensor:
    """[C, H, W] float32, as the library's image column makes it."""
    p = config.Preprocessing
    with Image.open(path) as image:
        rgb = image.convert("RGBA" if config.Channels == 4 else "RGB")
        planes = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, -1).permute(2, 0, 1).float() / 255
    if config.Channels == 1:
        planes = (p["LumaRed"] * planes[0] + p["LumaGreen"] * planes[1] + p["LumaBlue"] * planes[2]).unsqueeze(0)
    elif config.Channels != planes.shape[0]:
        raise ValueError(f"The model has {config.Channels} channels; images can feed 1, 3 or 4.")
    per_channel = lambda values: torch.tensor(values if isinstance(values, list) else [values], dtype=torch.float32).view(-1, 1, 1)
    planes = (planes - per_channel(p["Mean"])) / per_channel(p["Std"])
    if planes.shape[1:] != (config.ImageHeight, config.ImageWidth):
        planes = torch.nn.functional.interpolate(planes[None], size=(config.ImageHeight, config.ImageWidth), mode="bilinear",
                                                 align_corners=False, antialias=True)[0]
    return planes


class ImageFolder(torch.utils.data.Dataset):
    def __init__(self, root: str, config, max_per_class: int = None):
        files, self.classes = image_files(root)
        if max_per_class is not None:
            kept, counts = [], {}
            for path, label in files:
                counts[label] = counts.get(label, 0) + 1
                if counts[label] <= max_per_class:
                    kept.append((path, label))
            files = kept
        self.files = files
        self.config = config
        self.index = {label: i for i, label in enumerate(self.classes)}

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        path, label = self.files[i]
        return load_image(path, self.config), self.index[label]

