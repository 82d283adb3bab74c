"""What an echo canceller is to the pipeline: 16 kHz frames in, the near end out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class EchoCanceller(ABC):
    """Removes the far end (what the speaker played) from the near end (the microphone).

    ``process`` is called once per frame of ``frame_samples`` at 16 kHz, always with the
    far end of the same interval of time (zeros while nothing plays), from one thread.
    The canceller finds the acoustic delay between the two itself.
    """

    frame_samples: int
    name: str

    @abstractmethod
    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        """The near-end frame with the echo of ``far`` removed (float32, same length)."""

    def close(self) -> None:  # noqa: B027 (most cancellers hold nothing to release)
        """Release the native state."""
