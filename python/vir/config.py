"""ViRConfig: the model's shape, field for field the library's ViRConfig, with the same JSON."""
import dataclasses
import json


def default_preprocessing() -> dict:
    """The library's ImagePreprocessing: how an image becomes the model's input (see vir/data.py)."""
    return {"LumaRed": 0.299, "LumaGreen": 0.587, "LumaBlue": 0.114, "Mean": [0.5], "Std": [0.5]}


@dataclasses.dataclass(frozen=True)
class ViRConfig:
    ImageHeight: int = 224
    ImageWidth: int = 224
    Channels: int = 3
    PatchSize: int = 16
    Stem: str = "Patchify"  # or "Convolutional"
    Dim: int = 384
    Depth: int = 12
    Heads: int = 6
    MlpRatio: float = 4.0
    Dropout: float = 0.0
    DropPath: float = 0.1
    LayerScaleInit: float = 1e-5
    DecaySchedule: str = "RetNet"  # or "LogSpaced"
    NumClasses: int = 1000
    Preprocessing: dict = dataclasses.field(default_factory=default_preprocessing, hash=False)

    @property
    def patch_count(self) -> int:
        return (self.ImageHeight // self.PatchSize) * (self.ImageWidth // self.PatchSize)

    def replace(self, **changes) -> "ViRConfig":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @staticmethod
    def from_json(text: str) -> "ViRConfig":
        fields = {f.name for f in dataclasses.fields(ViRConfig)}
        # The library also writes derived values (PatchCount); only fields are read back.
        return ViRConfig(**{k: v for k, v in json.loads(text).items() if k in fields})


PRESETS = {
    "Tiny": ViRConfig(Dim=192, Depth=12, Heads=3),
    "Small": ViRConfig(Dim=384, Depth=12, Heads=6),
    "Base": ViRConfig(Dim=768, Depth=12, Heads=12),
    "Large": ViRConfig(Dim=1024, Depth=24, Heads=16),
    "Mini": ViRConfig(ImageHeight=28, ImageWidth=28, Channels=1, PatchSize=4, Stem="Convolutional", Dim=96, Depth=6,
                      Heads=3, MlpRatio=2.0, DropPath=0.05, LayerScaleInit=0.0, NumClasses=10),
}


if __name__ == "__main__":
    # The presets as JSON, for the library's test that they are its own.
    print(json.dumps({name: dataclasses.asdict(config) for name, config in PRESETS.items()}))
