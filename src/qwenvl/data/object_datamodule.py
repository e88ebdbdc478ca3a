"""ObjectMapDataModule: pictures and their object maps for the `objects` stage (encoder pretraining)."""

from __future__ import annotations

import lightning as L
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from qwenvl.data.sampler import ResumableSampler, resumable_loader
from qwenvl.data.synthetic.object_maps import SyntheticObjectMaps
from qwenvl.processor import QwenVLProcessor


class ObjectMapDataModule(L.LightningDataModule):
    """Batches {"pixel_values": [B, 3, S, S], "kind"/"colour"/"char": [B, patches, cells^2]}; the
    pictures alone with `maps=False`.

    Pictures come at the model's resolution through its processor; the sampler is the one the
    language stages use, so a killed run resumes at the same picture.
    """

    def __init__(
        self,
        processor: QwenVLProcessor,
        patch_size: int,
        cells: int = 4,
        seed: int = 0,
        batch_size: int = 8,
        num_workers: int = 0,
        train_size: int = 100_000,
        val_size: int = 64,
        maps: bool = True,
    ):
        super().__init__()
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        kw = dict(
            seed=seed,
            image_size=processor.image_size,
            patch_size=patch_size,
            cells=cells,
            transform=processor.transform,
            maps=maps,
        )
        self.train_set = SyntheticObjectMaps(split="train", size=train_size, **kw)
        self.val_set = SyntheticObjectMaps(split="val", size=val_size, **kw)
        self.train_sampler: ResumableSampler | None = None
        self.resume_samples = 0  # set on resume: this rank's samples the interrupted epoch consumed

    @classmethod
    def from_run(
        cls, cfg: DictConfig, processor: QwenVLProcessor, patch_size: int, learns: str, **kwargs
    ) -> ObjectMapDataModule:
        """From a composed run config: its seed and `data` batch settings. The pictures are the
        synthetic world's, so a run whose `data` is another dataset fails here, saying what the stage
        (`learns`: e.g. "object maps") needs."""
        target = str(OmegaConf.select(cfg, "data.train._target_", default=""))
        if not target.endswith("SyntheticWorld"):
            raise ValueError(
                f"stage={cfg.stage.name} learns {learns} on the synthetic world's pictures, but data.train "
                f"is {target or 'not set'}; use data=synthetic for this stage, or leave it out of `stages` "
                "when the encoder is pretrained (encoder.checkpoint=PATH)"
            )
        return cls(
            processor,
            patch_size=patch_size,
            seed=cfg.seed,
            batch_size=cfg.data.batch_size,
            num_workers=cfg.data.num_workers,
            val_size=cfg.data.val.size,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        skip, self.resume_samples = self.resume_samples, 0
        loader = resumable_loader(
            self.train_set, self.batch_size, self.num_workers, self.seed, shuffle=True, skip=skip
        )
        self.train_sampler = loader.sampler
        return loader

    def val_dataloader(self) -> DataLoader:
        return resumable_loader(self.val_set, self.batch_size, self.num_workers, self.seed, shuffle=False)

    def skipped(self) -> dict[str, int]:
        return {}  # generated pictures: nothing to skip
