"""The pipeline YAML's ``review:`` section: how the review queue is built and leased.

Every setting here is operational (it changes who looks at which clip, not what a run produces),
so changing it never forces a re-run or a refilter.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReviewConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # QA samples: shares of automatically accepted / rejected clips that also enter the queue, so the
    # decisions measure the pipeline's precision and what it throws away. Drawn by a hash of the clip
    # id (the same clips every time); a sampled clip looks like any other to the annotator.
    qa_accepted_rate: float = Field(0.05, ge=0, le=1)
    qa_rejected_rate: float = Field(0.02, ge=0, le=1)
    # Share of queued clips that go to two different annotators (agreement is reported).
    double_review_rate: float = Field(0.0, ge=0, le=1)
    lease_s: float = Field(300.0, gt=0, description="a clip leased to an annotator returns to the queue after this")
    # The short list of reject reasons the page offers (free text is always possible).
    reject_reasons: list[str] = Field(default_factory=lambda: [
        "caption wrong", "bad quality", "no motion", "text or watermark", "transition or cut", "unsafe"])
    seed: int = Field(0, description="changes which clips the QA sample and the double review draw")
