"""What a run did, scene by scene: done, skipped (finished before), failed; windows and seconds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["RunSummary", "SceneError", "SceneResult"]


class SceneError(ValueError):
    """A scene could not be embedded (damaged or unreadable); with ``on_error="raise"`` it stops
    the run. ``summary``: the run so far (set by :func:`~torchgeo_moemae.scene.embed_scenes`)."""

    summary: RunSummary | None = None


@dataclass
class SceneResult:
    """One scene of a run.

    Attributes:
        id: the scene id (its outputs are named after it).
        status: ``"done"`` (embedded now), ``"skipped"`` (its verified outputs were already
            there) or ``"failed"``.
        windows: windows of its grid (map pixels).
        embedded: windows embedded; ``fill``/``cloud``: left out (nodata) as fill / cloud.
        seconds: time spent on it (this run).
        error: why it failed.
        path: its map.
        rank: the process that embedded it (``"done"``/``"failed"``).
    """

    id: str
    status: Literal["done", "skipped", "failed"]
    windows: int = 0
    embedded: int = 0
    fill: int = 0
    cloud: int = 0
    seconds: float = 0.0
    error: str | None = None
    path: str | None = None
    rank: int = 0


@dataclass
class RunSummary:
    """All scenes of a run (every rank's), the run's wall time, and the rank of the process
    holding it (0 prints; the others hold the same summary)."""

    scenes: list[SceneResult] = field(default_factory=list)
    seconds: float = 0.0
    rank: int = 0

    def count(self, status: str) -> int:
        """Scenes with this status."""
        return sum(s.status == status for s in self.scenes)

    @property
    def failed(self) -> list[SceneResult]:
        """The scenes that failed."""
        return [s for s in self.scenes if s.status == "failed"]

    def total(self, key: str) -> int:
        """Sum of a count (``"embedded"``, ``"cloud"``, ``"fill"``, ``"windows"``) over the
        scenes done in this run."""
        return sum(getattr(s, key) for s in self.scenes if s.status == "done")

    def lines(self) -> list[str]:
        """The summary as printed: one line, then one per failed scene."""
        embedded, seconds = self.total("embedded"), self.seconds
        rate = f", {embedded / seconds:.1f} windows/s" if seconds > 0 and embedded else ""
        head = (
            f"{len(self.scenes)} scene{'s' if len(self.scenes) != 1 else ''}: "
            f"{self.count('done')} done, {self.count('skipped')} skipped (done before), "
            f"{self.count('failed')} failed; {embedded} windows embedded, "
            f"{self.total('cloud')} cloud-masked, {self.total('fill')} fill, in {seconds:.1f} s{rate}"
        )
        return [head, *(f"failed: {s.id}: {s.error}" for s in self.failed)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: counts, totals and every scene."""
        return {
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "windows_embedded": self.total("embedded"),
            "windows_cloud": self.total("cloud"),
            "windows_fill": self.total("fill"),
            "seconds": self.seconds,
            "windows_per_s": self.total("embedded") / self.seconds if self.seconds > 0 else None,
            "scenes": [asdict(s) for s in self.scenes],
        }
