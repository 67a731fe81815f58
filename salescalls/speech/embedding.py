"""CAM++ speaker embedding (3D-Speaker) as a pyannote.audio Model, for offline diarization.

pyannote.audio 4.0.7's SpeakerDiarization accepts a Model *instance* as `embedding`: it wraps it
in PyannoteAudioPretrainedSpeakerEmbedding, which only uses `model.audio.sample_rate`,
`model.dimension` and `model(waveforms, weights=masks)`. So this small subclass is the whole
adapter; the network itself is 3D-Speaker's own code from the `speakerlab` package.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchaudio.compliance.kaldi as kaldi
from pyannote.audio import Model
from pyannote.audio.core.plda import PLDA
from pyannote.audio.models.blocks.pooling import StatsPool
from speakerlab.models.campplus.DTDNN import CAMPPlus


class CAMPPlusEmbedding(Model):
    """192-dim CAM++ embedding with pyannote's mask-aware statistics pooling.

    Features follow 3D-Speaker's inference recipe: 80-bin Kaldi fbank (25 ms window, 10 ms hop,
    no dither) with per-chunk mean normalisation. CAM++'s own pooling is replaced by pyannote's
    StatsPool so the per-speaker frame weights the pipeline passes are honoured.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_channels: int = 1,
        num_mel_bins: int = 80,
        embedding_size: int = 192,
        task=None,
    ):
        super().__init__(sample_rate=sample_rate, num_channels=num_channels, task=task)
        self.save_hyperparameters("num_mel_bins", "embedding_size")
        self.campplus = CAMPPlus(feat_dim=num_mel_bins, embedding_size=embedding_size)
        self.pooling = StatsPool()

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> CAMPPlusEmbedding:
        """Build from a raw CAM++ state dict such as campplus_cn_en_common.pt."""
        model = cls()
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        model.campplus.load_state_dict(state, strict=True)
        return model.eval()

    @property
    def dimension(self) -> int:
        return self.hparams.embedding_size

    def frame_features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) -> CAM++ frame-level features (batch, channels, frames)."""
        fbank = torch.stack(
            [
                kaldi.fbank(
                    waveform,
                    num_mel_bins=self.hparams.num_mel_bins,
                    sample_frequency=self.hparams.sample_rate,
                    dither=0.0,
                )
                for waveform in waveforms
            ]
        )
        fbank = fbank - fbank.mean(dim=1, keepdim=True)
        x = self.campplus.head(fbank.permute(0, 2, 1))
        for name, layer in self.campplus.xvector.named_children():
            if name == "stats":
                break
            x = layer(x)
        return x

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings (batch, dimension), one per (waveform, weights) row.

        The diarization pipeline asks for one embedding per (chunk, local speaker): the same
        10 s waveform several times with different speaker masks. The network runs once per
        distinct waveform and only the pooling runs per mask, which gives identical embeddings
        for a fraction of the work.
        """
        if weights is None or waveforms.shape[0] == 1:
            features = self.frame_features(waveforms)
        else:
            new_run = torch.tensor(
                [True] + [not torch.equal(waveforms[r], waveforms[r - 1]) for r in range(1, waveforms.shape[0])]
            )
            run_of_row = torch.cumsum(new_run, dim=0) - 1
            features = self.frame_features(waveforms[new_run])[run_of_row]
        stats = self.pooling(features, weights=weights)  # (batch, 2C) or (batch, speakers, 2C)
        embeddings = self.campplus.xvector.dense(stats.reshape(-1, stats.shape[-1]))
        return embeddings.reshape(*stats.shape[:-1], -1)


class NoPLDA(PLDA):
    """Stand-in for SpeakerDiarization's `plda` argument, which 4.0.7 will not take as None.

    Only VBx clustering uses a PLDA; with agglomerative clustering it is never called.
    """

    def __init__(self):  # deliberately loads nothing
        pass
