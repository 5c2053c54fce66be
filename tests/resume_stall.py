"""A callback for tests/test_resume.py: stops a run in the middle of an epoch so the test can kill it.

``FB_STALL_AT="EPOCH:BATCH:MARKER"`` in the environment: after train batch ``BATCH`` of
epoch ``EPOCH`` (0-based) the callback creates the file ``MARKER`` and sleeps, so the
test's SIGKILL lands in the middle of that epoch, after the previous epoch's checkpoints
were written. Without the variable it does nothing: the uninterrupted run and the killed
run have the same config.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from lightning.pytorch import Callback


class StallAt(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        spec = os.environ.get("FB_STALL_AT")
        if not spec:
            return
        epoch, index, marker = spec.split(":", 2)
        if trainer.current_epoch == int(epoch) and batch_idx == int(index):
            Path(marker).write_text(f"epoch {epoch} batch {index} pid {os.getpid()}\n")
            time.sleep(600)  # the test kills the process here
