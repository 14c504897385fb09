"""The workload section of a space file: what each trial sends, synthetic or from a file.

Place in the data flow: part of the space file's models (`optimizer.spec.models` uses it for
`workload` and `validation.workloads`); `workload(checkpoint)` gives the runners' `Workload`,
whose request list `runners.workload.make_requests` draws or reads (the space file's checks
read it once at load time, so a bad file is reported before anything is stored). Which fields
apply to which source is checked here; docs/space-language.md documents every field.
"""

from __future__ import annotations

import math

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from optimizer.spec.file_paths import from_space_file
from runners.types import DatasetName, Workload
from runners.workload import local_tokenizer

FILE_DATASETS = ("sharegpt", "jsonl", "csv", "mooncake", "azure")
ADDED_WORKLOAD_FIELDS = (
    "path",
    "burstiness",
    "prefix_len",
    "prefix_groups",
    "turns",
    "time_scale",
    "window_start_s",
    "window_s",
    "hash_block_size",
    "tokenizer",
)
"""Fields added after the first studies were stored (see `defaulted_additions`)."""


class WorkloadSection(BaseModel):
    """What each trial sends: a synthetic workload or a file (data set or trace); see
    docs/space-language.md. `path` is made absolute against the space file's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dataset: DatasetName
    path: str | None = None
    num_prompts: int = Field(ge=1, le=100_000)
    input_len: int | None = Field(default=None, ge=1)
    output_len: int | None = Field(default=None, ge=1)
    request_rate: float = Field(default=math.inf, gt=0)
    burstiness: float = Field(default=1.0, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    seed: int = 0
    prefix_len: int = Field(default=0, ge=0)
    prefix_groups: int = Field(default=0, ge=0)
    turns: int = Field(default=1, ge=1, le=1000)
    time_scale: float = Field(default=1.0, gt=0)
    window_start_s: float = Field(default=0.0, ge=0)
    window_s: float | None = Field(default=None, gt=0)
    hash_block_size: int = Field(default=512, ge=1, le=1_048_576)
    tokenizer: str = Field(default="auto", min_length=1)

    @field_validator("request_rate", mode="before")
    @classmethod
    def _inf(cls, value: object) -> object:
        return math.inf if value in ("inf", "Infinity", "infinity") else value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str | None, info: ValidationInfo) -> str | None:
        return from_space_file(value, info)

    @model_validator(mode="after")
    def _fields_fit_the_source(self) -> WorkloadSection:
        is_file = self.dataset in FILE_DATASETS
        if is_file and self.path is None:
            raise ValueError(f"path: dataset {self.dataset} reads a file; give its path")
        if not is_file:
            if self.path is not None:
                raise ValueError(
                    f"path: dataset {self.dataset} is synthetic and reads no file; remove "
                    f"path, or name the file's format ({', '.join(FILE_DATASETS)})"
                )
            trace_only = ("time_scale", "window_start_s", "window_s", "hash_block_size")
            for name in trace_only:
                if name in self.model_fields_set:
                    raise ValueError(f"{name}: applies to files only (dataset {self.dataset})")
        else:
            for name in ("input_len", "prefix_len", "prefix_groups", "turns"):
                if name in self.model_fields_set:
                    raise ValueError(
                        f"{name}: applies to synthetic datasets only; a file gives its own "
                        "prompt lengths, shared prefixes and sessions"
                    )
        if self.dataset == "random" and (self.input_len is None or self.output_len is None):
            raise ValueError("dataset random needs input_len and output_len")
        if (self.prefix_len > 0) != (self.prefix_groups > 0):
            raise ValueError("prefix_len and prefix_groups go together (both above 0)")
        if "burstiness" in self.model_fields_set and math.isinf(self.request_rate):
            raise ValueError("burstiness: shapes the gaps of a finite request_rate; set one")
        return self

    def defaulted_additions(self) -> set[str]:
        """Fields added after the first studies were stored that hold their defaults: left out
        of a study's identity, so studies made from older space files keep resuming."""
        fields = type(self).model_fields
        return {n for n in ADDED_WORKLOAD_FIELDS if getattr(self, n) == fields[n].default}

    def workload(self, checkpoint: str) -> Workload:
        """The runners' `Workload`; `checkpoint` is the model whose tokenizer "auto" means."""
        return Workload(
            name=self.name,
            dataset=self.dataset,
            num_prompts=self.num_prompts,
            input_len=self.input_len,
            output_len=self.output_len,
            request_rate=self.request_rate,
            max_concurrency=self.max_concurrency,
            seed=self.seed,
            burstiness=self.burstiness,
            prefix_len=self.prefix_len,
            prefix_groups=self.prefix_groups,
            turns=self.turns,
            path=self.path or "",
            time_scale=self.time_scale,
            window_start_s=self.window_start_s,
            window_s=math.inf if self.window_s is None else self.window_s,
            hash_block_size=self.hash_block_size,
            tokenizer=self._tokenizer(checkpoint),
        )

    def _tokenizer(self, checkpoint: str) -> str:
        """The tokenizer text prompts are counted with ("" = the estimate)."""
        if self.dataset not in TEXT_DATASETS or self.tokenizer == "estimate":
            return ""
        if self.tokenizer == "auto":
            return local_tokenizer(checkpoint)
        return self.tokenizer


TEXT_DATASETS = ("sharegpt", "jsonl", "csv")
