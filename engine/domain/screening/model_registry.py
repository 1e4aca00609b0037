"""The model registry: every trained scoring model, as events (DESIGN.md: decide once, record)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.screening.scoring import refuse_prohibited
from engine.domain.screening.uplift import UPLIFT, uplift_kind
from engine.domain.shared.errors import HuokeError
from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import JSONDict, derive_id

#: One registry per kind. The uplift registry holds every journey's uplift models (each version
#: names its journey in ``training["journey"]``); the newest version per journey is in use.
MODEL_KINDS = ("propensity", "credit", UPLIFT)


def check_kind(kind: str) -> str:
    if kind not in MODEL_KINDS:
        raise HuokeError(f"unknown model kind {kind!r}: use {', '.join(MODEL_KINDS[:-1])} or {MODEL_KINDS[-1]}")
    return kind


def score_kind(kind: str, entry: JSONDict) -> str:
    """The kind a version's scores are recorded under: its kind, or ``uplift:<journey>``."""
    return uplift_kind(entry["training"]["journey"]) if kind == UPLIFT else kind


class ModelRegistry(Aggregate):
    """All versions of one kind of model; the newest registered version is the one in use."""

    class Opened(Aggregate.Created):
        kind: str

    class VersionRegistered(Aggregate.Event):
        version: int
        features: list[str]
        kinds: JSONDict
        metrics: JSONDict
        training: JSONDict
        reference: JSONDict
        artefact: str
        sha256: str
        trained_by: str
        at: datetime

    class DriftMeasured(Aggregate.Event):
        """A model in use measured on today's population (the scheduled monitoring): PSI of its
        score and characteristics against its training sample, and its calibration on the
        latest settled outcomes (empty when too few)."""

        version: int
        population: str
        leads: int
        psi: list[JSONDict]
        calibration: list[JSONDict]
        at: datetime

    @event(Opened)
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.versions: list[JSONDict] = []
        self.drift: list[JSONDict] = []

    @staticmethod
    def create_id(kind: str, **_: Any) -> UUID:
        return registry_id(kind)

    def register(
        self,
        features: list[str],
        kinds: JSONDict,
        metrics: JSONDict,
        training: JSONDict,
        reference: JSONDict,
        artefact: str,
        sha256: str,
        trained_by: str,
        at: datetime,
    ) -> int:
        """Record a new version (features checked against the prohibited bases once more)."""
        refuse_prohibited(features)
        version = self.next_version
        self._registered(
            version=version,
            features=list(features),
            kinds=kinds,
            metrics=metrics,
            training=training,
            reference=reference,
            artefact=artefact,
            sha256=sha256,
            trained_by=trained_by,
            at=at,
        )
        return version

    @event(VersionRegistered)
    def _registered(
        self,
        version: int,
        features: list[str],
        kinds: JSONDict,
        metrics: JSONDict,
        training: JSONDict,
        reference: JSONDict,
        artefact: str,
        sha256: str,
        trained_by: str,
        at: datetime,
    ) -> None:
        self.versions.append(
            {
                "version": version,
                "features": features,
                "kinds": kinds,
                "metrics": metrics,
                "training": training,
                "reference": reference,
                "artefact": artefact,
                "sha256": sha256,
                "trained_by": trained_by,
                "at": at,
            }
        )

    def drift_measured(
        self,
        version: int,
        population: str,
        leads: int,
        psi: list[JSONDict],
        calibration: list[JSONDict],
        at: datetime,
    ) -> None:
        self._drift_measured(
            version=version, population=population, leads=leads, psi=psi, calibration=calibration, at=at
        )

    @event(DriftMeasured)
    def _drift_measured(
        self,
        version: int,
        population: str,
        leads: int,
        psi: list[JSONDict],
        calibration: list[JSONDict],
        at: datetime,
    ) -> None:
        self.drift.append({"version": version, "population": population, "leads": leads, "psi": psi,
                           "calibration": calibration, "at": at})  # fmt: skip

    def last_measured(self, version: int) -> datetime | None:
        """When a version's drift was last measured (None: never)."""
        return max((d["at"] for d in self.drift if d["version"] == version), default=None)

    @property
    def next_version(self) -> int:
        """The number the next registered version gets (its model file is named with it)."""
        return len(self.versions) + 1

    @property
    def active(self) -> JSONDict | None:
        return self.versions[-1] if self.versions else None

    def in_use(self) -> dict[str, JSONDict]:
        """The version in use per score kind: the newest one (uplift: the newest per journey)."""
        out: dict[str, JSONDict] = {}
        for entry in self.versions:
            out[score_kind(self.kind, entry)] = entry
        return out

    def get(self, version: int | None) -> JSONDict:
        if not self.versions:
            raise HuokeError(f"no {self.kind} model is registered yet: train one with huoke model train {self.kind}")
        if version is None:
            return self.versions[-1]
        if not 1 <= version <= len(self.versions):
            raise HuokeError(f"{self.kind} has versions 1-{len(self.versions)}, not {version}")
        return self.versions[version - 1]


def registry_id(kind: str) -> UUID:
    return derive_id("model-registry", kind)


keep_topics("engine.domain.model_registry", ModelRegistry)


#: A band whose predicted rate is off its observed rate by more than this share (of the observed)...
CALIBRATION_TOLERANCE = 0.20
#: ...among at least this many held-out leads flags the model (fewer say too little either way).
CALIBRATION_MIN_ROWS = 50


def calibration_warnings(calibration: list[dict[str, Any]]) -> list[str]:
    """What is wrong with a model's calibration on its later window, band by band: a band with
    enough leads whose average predicted probability is more than 20% off the share that did
    convert (the base rate moved since training, say). Empty when every such band is close."""
    out = []
    for band in calibration:
        rows, predicted, observed = int(band["rows"]), float(band["predicted"]), float(band["observed"])
        if rows < CALIBRATION_MIN_ROWS:
            continue
        off = abs(predicted - observed) / observed if observed else (1.0 if predicted >= 0.01 else 0.0)
        if off > CALIBRATION_TOLERANCE:
            out.append(
                f"band {band['band']}: predicts {predicted:.1%}, observed {observed:.1%} among {rows:,} leads "
                f"({off:.0%} off)"
            )
    return out
