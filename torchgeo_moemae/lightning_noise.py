"""Lightning's messages about Lightning itself, silenced where they arise.

Every ``torchgeo fit`` of this package's tasks printed lines that say nothing about the run:
Lightning's own use of a torch tree API that torch deprecated (a ``FutureWarning`` attributed to
``lightning.pytorch.utilities._pytree``) and its advertisements for ``litlogger`` and ``litmodels``
("💡 Tip: ..." on its ``rank_zero`` logger). :func:`silence_lightning_noise`, run when the tasks
are imported, filters exactly these, by source module and logger: the same warning raised by the
user's own code, and Lightning's other messages, are shown as before. (Lightning's note that
TensorBoard is not installed goes away where it arises too: the shipped configs name their logger.)
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["RANK_ZERO_LOGGER", "silence_lightning_noise"]

#: the logger Lightning's ``rank_zero_info`` writes to
RANK_ZERO_LOGGER = "lightning.pytorch.utilities.rank_zero"


class _NoAdvertisements(logging.Filter):
    """Drops Lightning's "💡 Tip: try installing ..." records."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def silence_lightning_noise() -> None:
    """Filter Lightning's deprecated-tree-API warning and its tips (idempotent)."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
    log = logging.getLogger(RANK_ZERO_LOGGER)
    if not any(isinstance(f, _NoAdvertisements) for f in log.filters):
        log.addFilter(_NoAdvertisements())
