"""Model files in a folder: scorecards as JSON points tables, pipelines as skops with an allowlist
(never pickle), each checked against the SHA-256 the registry recorded; and training with
scikit-learn (``adapters.modeling``) behind the same object, the use cases' ``ModelLab``.

scikit-learn and skops load on first use (about 3 s): every CLI command builds this object, and
most never touch a model (a scorecard loads without them)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.domain.screening.model_registry import check_kind
from engine.domain.screening.scoring import Band, Scorecard, Scored
from engine.domain.screening.uplift import UPLIFT, UpliftBands
from engine.domain.shared.errors import HuokeError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from engine.adapters.modeling import PipelineScorer, Trained
    from engine.adapters.uplift_modeling import UpliftScorer
    from engine.application.screening.datasets import Dataset


@dataclass(frozen=True)
class Artefact:
    path: Path
    sha256: str


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ModelFiles:
    """Model files in a folder: scorecards as JSON points tables, pipelines as skops (never pickle)."""

    TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.", "scipy.")

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, trained: Trained, version: int) -> Artefact:
        self.folder.mkdir(parents=True, exist_ok=True)
        if trained.kind == "credit":
            path = self.folder / f"credit-v{version}.scorecard.json"
            doc = trained.scorer.to_json()
            doc["meta"] = {"version": version, "features": trained.features}
            _write_atomically(path, json.dumps(doc, indent=1, ensure_ascii=False).encode())
        elif trained.kind == UPLIFT:
            path = self.folder / f"uplift-v{version}.skops"
            import skops.io as sio

            uplift: UpliftScorer = trained.scorer
            payload = {
                "prep": uplift.prep,
                "uplift_model": uplift.model,
                "columns": uplift.columns,
                "kinds": uplift.kinds,
                "uplift_bands": uplift.bands.as_dict(),
                "typical": uplift.typical,
                "interaction_scale": uplift.scale,
            }
            _write_atomically(path, sio.dumps(payload))
        else:
            path = self.folder / f"{trained.kind}-v{version}.skops"
            import skops.io as sio

            scorer: PipelineScorer = trained.scorer
            payload = {
                "pipeline": scorer.pipeline,
                "columns": scorer.columns,
                "kinds": scorer.kinds,
                "bands": [[b.id, b.min] for b in scorer.bands],
                "calibrator": scorer.calibrator,
            }
            _write_atomically(path, sio.dumps(payload))
        return Artefact(path, sha256_of(path))

    def load(self, kind: str, file_name: str, sha256: str) -> Any:
        """Load a registered model file, refusing one whose SHA-256 differs from the registry's."""
        path = self.folder / file_name
        if not path.exists():
            raise HuokeError(f"model file {path} is missing (registered with SHA-256 {sha256[:12]}…)")
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise HuokeError(
                f"model file {path} has SHA-256 {actual[:12]}…, the registry says {sha256[:12]}…: "
                "it was changed after training; retrain or restore it"
            )
        if file_name.endswith(".scorecard.json"):
            return Scorecard.from_json(json.loads(data))
        import skops.io as sio

        from engine.adapters.modeling import PipelineScorer

        untrusted = sio.get_untrusted_types(data=data)
        unknown = [t for t in untrusted if not t.startswith(self.TRUSTED_PREFIXES)]
        if unknown:
            raise HuokeError(f"model file {path} holds types huoke does not trust: {', '.join(unknown)}")
        payload = sio.loads(data, trusted=untrusted)
        if "uplift_model" in payload:
            from engine.adapters.uplift_modeling import UpliftScorer

            return UpliftScorer(
                payload["prep"],
                payload["uplift_model"],
                list(payload["columns"]),
                dict(payload["kinds"]),
                UpliftBands.of(dict(payload["uplift_bands"])),
                {str(k): [list(p) for p in v] for k, v in dict(payload["typical"]).items()},
                float(payload["interaction_scale"]),
            )
        bands = [Band(str(b[0]), float(b[1])) for b in payload["bands"]]
        calibrator = payload.get("calibrator")  # files from before calibration have none
        return PipelineScorer(payload["pipeline"], list(payload["columns"]), dict(payload["kinds"]), bands, calibrator)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class ModelLab(ModelFiles):
    """Model files plus training and evaluation with scikit-learn: what the model use cases need."""

    def fit(self, kind: str, data: Dataset) -> Trained:
        """Train (and evaluate on the later window) without registering anything."""
        from engine.adapters.modeling import train_credit, train_propensity

        if check_kind(kind) == UPLIFT:
            from engine.adapters.uplift_modeling import train_uplift

            return train_uplift(data)
        return train_credit(data) if kind == "credit" else train_propensity(data)

    def evaluate(self, y: NDArray[Any], scored: Sequence[Scored]) -> dict[str, Any]:
        from engine.adapters.model_evaluation import evaluate

        return evaluate(y, scored)

    def evaluate_uplift(self, y: NDArray[Any], treatment: NDArray[Any], scored: Sequence[Scored]) -> dict[str, Any]:
        from engine.adapters.uplift_modeling import evaluate_uplift

        return evaluate_uplift(y, treatment, scored)
