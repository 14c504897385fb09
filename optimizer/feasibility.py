"""Pre-flight: decide, before any runner time is spent, whether a candidate is worth launching.

Called by the loop between `space.suggest` and the runner, for every sampler, on the candidate
the loop resolved once. Four layers, cheapest first; the first that objects rejects the
candidate, which the loop records as PRUNED with ``crash_class = rejected:<reason>`` and no
runner call:

1. The engine's own argument checks (the adapter's `resolve`): what the engine would refuse at
   start, e.g. a token budget below max-num-seqs.
2. Documented static rules (`optimizer.constraints`: TP not dividing the heads, GPUs of the
   node group, block-FP8 shards, the engines' scheduler checks, and the space file's own
   constraints) and the memory model (runners.sim): weights that cannot fit, no KV memory,
   max-model-len clearly above the KV capacity, no headroom left outside the budget, and a
   full token-budget step whose activations clearly exceed that headroom (the out-of-memory
   under load GPUStack measured for FP8 TP4 at 32K batched tokens). Near a boundary (within
   the memory model's uncertainty) the engine decides, so feasible configurations at the edge
   are not thrown away. The GPU memory model is not applied to CPU devices (vLLM's CPU
   backend sizes its KV cache from VLLM_CPU_KVCACHE_SPACE, not from a memory fraction).
   With a runner that measures a real engine (local, ray with local workers, the emulator)
   the memory model only rejects what is certain (`MemoryAssessment.certain`: weights that
   alone exceed the GPU, or a crash probability of at least 0.99); a configuration near the
   boundary runs, its crash probability goes with the verdict, and its outcome is recorded
   for the layers below to learn from. The simulated runner keeps the rules above.
3. What this study's own crashes already prove: a configuration that failed in a way that
   depends only on its arguments and the model (``invalid:*``, weights or KV memory at start)
   fails again, so it is never launched twice; and a context length the engine refused as
   above the model's limit (``invalid:max_model_len``) rules out every length at or above it.
   No amount of history is needed for these.
4. A crash model learned from this study's own history: configurations that ran and crashed
   (PRUNED by the runner) against those that completed, per engine. Two estimates, the larger
   wins: a kernel-weighted nearest-neighbour one (crashes near this point of the space) and
   an axis-aligned one (the crash rate of the candidate's categorical values, alone and in
   pairs, e.g. an MoE kernel with the BF16 checkpoint). Each is used only with enough
   evidence, and the rejection threshold adapts to the history (more runner crashes lately:
   stricter; many recent rejections: looser), so it is the same for every driver and resume.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from optimizer.constraints import violations
from optimizer.record import REJECTED_PREFIX, crash_class_of, is_rejection, is_runner_crash
from optimizer.space import ENGINE_PARAM, VARIANT_PARAM, candidate_from_params
from optimizer.spec.models import StudySpec
from runners.engines import Resolved, resolve
from runners.errors import ServingOptimizerError
from runners.sim.screen import assess_memory
from runners.types import Crash, CrashClass, ServingConfig

MIN_HISTORY = 6
MIN_CRASHES = 2
NEIGHBOURS = 7
BANDWIDTH = 0.2
MIN_EVIDENCE = 0.5
PRIOR_WEIGHT = 1.0
# Crashes decided by the arguments and the model alone, before any request: the same
# configuration fails the same way every time (a runtime OOM or a timeout may not).
DETERMINISTIC_CRASHES = frozenset(
    {
        CrashClass.WEIGHTS_OOM,
        CrashClass.NO_KV_MEMORY,
        CrashClass.KV_TOO_SMALL,
        *(c for c in CrashClass if c.value.startswith("invalid:")),
    }
)


@dataclass(frozen=True)
class Verdict:
    """Whether to launch. `reason` is the rule (`crash_class` suffix) when rejected."""

    launch: bool
    reason: str = ""
    message: str = ""
    crash_probability: float | None = None

    @property
    def crash_class(self) -> str:
        return f"{REJECTED_PREFIX}{self.reason}"


LAUNCH = Verdict(True)


class FeasibilityChecker:
    """Pre-flight checks for one study. Stateless between calls: everything comes from history."""

    def __init__(
        self,
        spec: StudySpec,
        learned: bool = True,
        strict: bool = False,
        real_runner: bool = False,
    ) -> None:
        """`strict`: launch only what the memory model calls safe, margins included (anchors).
        `real_runner`: trials measure a real engine, so the memory model rejects only what is
        certain and the boundary is learned from runs."""
        self._spec = spec
        self._learned = learned
        self._strict = strict
        self._real_runner = real_runner and not strict

    def check(
        self,
        candidate: Resolved,
        params: Mapping[str, object],
        distributions: Mapping[str, BaseDistribution],
        history: Sequence[FrozenTrial],
    ) -> Verdict:
        """Pre-flight of a candidate the caller resolved once (`resolve_candidate`)."""
        if candidate.problem is not None:
            return _reject(candidate.problem)
        resolved = candidate.config
        assert resolved is not None
        broken = violations(self._spec, candidate.candidate)
        if broken:
            rule = broken[0].rule.replace("user:", "user_")
            return Verdict(False, rule, "; ".join(v.message for v in broken), 1.0)
        memory = assess_memory(resolved, self._strict)
        if self._real_runner:
            if memory.certain:
                rule = memory.rule or memory.crash_rule
                message = memory.message or f"{rule}: certain by the memory model"
                message += f" (p(crash) = {memory.crash_probability:.2f})"
                return Verdict(False, rule, message, memory.crash_probability)
        elif not memory.fits:
            return Verdict(False, memory.rule, memory.message, 1.0)
        if self._learned:
            proven = proven_crash_verdict(self._spec, resolved, params, history)
            if not proven.launch:
                return proven
            learned = learned_verdict(params, distributions, history)
            return _with_memory_odds(learned, memory.crash_probability)
        return _with_memory_odds(LAUNCH, memory.crash_probability)


def _with_memory_odds(verdict: Verdict, memory_probability: float) -> Verdict:
    """A launch verdict carries the larger of the learned and the memory crash probability."""
    if not verdict.launch or memory_probability <= 0.0:
        return verdict
    learned = verdict.crash_probability or 0.0
    return Verdict(True, crash_probability=max(learned, memory_probability))


def _reject(crash: Crash) -> Verdict:
    reason = str(crash.crash_class).split(":", 1)[-1]
    return Verdict(False, reason, crash.message, 1.0)


def adaptive_threshold(history: Sequence[FrozenTrial], window: int = 12) -> float:
    """Crash probability above which to reject, derived from recent history only."""
    finished = [t for t in history if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    ran = [t for t in finished if not is_rejection(t)][-window:]
    recent = finished[-window:]
    crash_rate = sum(is_runner_crash(t) for t in ran) / len(ran) if ran else 0.0
    reject_rate = sum(is_rejection(t) for t in recent) / len(recent) if recent else 0.0
    threshold = 0.8 - 0.3 * crash_rate + 0.3 * max(0.0, reject_rate - 0.4)
    return float(min(0.95, max(0.55, threshold)))


def proven_crash_verdict(
    spec: StudySpec,
    config: ServingConfig,
    params: Mapping[str, object],
    history: Sequence[FrozenTrial],
) -> Verdict:
    """Reject what a deterministic crash of this study already proves will fail (layer 3)."""
    for trial in history:
        if not is_runner_crash(trial):
            continue
        crash_class = crash_class_of(trial)
        if crash_class not in DETERMINISTIC_CRASHES:
            continue
        if trial.params == dict(params):
            return Verdict(
                False,
                "known_crash",
                f"trial {trial.number} ran this exact configuration and failed at start with "
                f"{crash_class}, which depends only on the arguments and the model",
                1.0,
            )
        if crash_class != CrashClass.MODEL_LEN or any(
            trial.params.get(key) != params.get(key) for key in (ENGINE_PARAM, VARIANT_PARAM)
        ):
            continue
        refused = _context_length(spec, trial)
        if refused is not None and config.max_model_len >= refused:
            return Verdict(
                False,
                "known_crash",
                f"trial {trial.number} showed that {config.engine} refuses a context length of "
                f"{refused} for this model ({crash_class}); this candidate asks for "
                f"{config.max_model_len}",
                1.0,
            )
    return LAUNCH


def _context_length(spec: StudySpec, trial: FrozenTrial) -> int | None:
    """The context length `trial` resolved to, or None if the current space cannot rebuild it."""
    try:
        candidate = candidate_from_params(spec, trial.params)
    except (ServingOptimizerError, KeyError, ValueError):
        return None
    resolved = resolve(candidate, spec.node_group)
    return None if isinstance(resolved, Crash) else resolved.max_model_len


def learned_verdict(
    params: Mapping[str, object],
    distributions: Mapping[str, BaseDistribution],
    history: Sequence[FrozenTrial],
) -> Verdict:
    engine = params.get(ENGINE_PARAM)
    ran = [
        t
        for t in history
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        and not is_rejection(t)
        and t.params.get(ENGINE_PARAM) == engine
    ]
    labels = np.array([is_runner_crash(t) for t in ran], dtype=np.float64)
    if len(ran) < MIN_HISTORY or labels.sum() < MIN_CRASHES:
        return LAUNCH
    for trial, crashed in zip(ran, labels, strict=True):
        if crashed and trial.params == dict(params):
            message = f"trial {trial.number} ran this exact configuration and crashed"
            return Verdict(False, "known_crash", message, 1.0)
    space = _feature_space([*(t.distributions for t in ran), distributions])
    points = np.array([_encode(t.params, space) for t in ran])
    query = _encode(params, space)
    distance = np.linalg.norm(points - query, axis=1) / math.sqrt(max(1, points.shape[1]))
    nearest = np.argsort(distance)[:NEIGHBOURS]
    weights = np.exp(-((distance[nearest] / BANDWIDTH) ** 2))
    evidence = float(weights.sum())
    knn = float((weights * labels[nearest]).sum() / evidence) if evidence >= MIN_EVIDENCE else 0.0
    prior = float(labels.mean())
    axis, because = _categorical_evidence(params, distributions, ran, labels, prior)
    probability = max(knn, axis)
    threshold = adaptive_threshold(history)
    if probability <= threshold:
        return Verdict(True, crash_probability=probability)
    if axis >= knn:
        reason = f"configurations with {because} crashed"
    else:
        closest = ran[int(nearest[0])]
        reason = (
            f"nearest tried configuration: trial {closest.number} "
            f"({crash_class_of(closest) or 'completed'})"
        )
    message = (
        f"learned crash model: p(crash) = {probability:.2f} > threshold {threshold:.2f}; {reason}"
    )
    return Verdict(False, "learned", message, probability)


def _categorical_evidence(
    params: Mapping[str, object],
    distributions: Mapping[str, BaseDistribution],
    ran: Sequence[FrozenTrial],
    labels: np.ndarray,
    prior: float,
) -> tuple[float, str]:
    """Highest smoothed crash rate over the candidate's categorical values and value pairs."""
    values = sorted(
        (name, repr(params[name]))
        for name, dist in distributions.items()
        if isinstance(dist, CategoricalDistribution) and name != ENGINE_PARAM and name in params
    )
    keys = [(v,) for v in values] + [(a, b) for i, a in enumerate(values) for b in values[i + 1 :]]
    rows = [{(k, repr(v)) for k, v in t.params.items()} for t in ran]
    best, because = 0.0, ""
    for key in keys:
        matches = [label for row, label in zip(rows, labels, strict=True) if set(key) <= row]
        crashes = sum(matches)
        if crashes < MIN_CRASHES:
            continue
        rate = (crashes + PRIOR_WEIGHT * prior) / (len(matches) + PRIOR_WEIGHT)
        if rate > best:
            best = float(rate)
            because = " and ".join(f"{name}={value}" for name, value in key)
    return best, because


FeatureSpace = list[tuple[str, BaseDistribution]]


def _feature_space(all_distributions: Sequence[Mapping[str, BaseDistribution]]) -> FeatureSpace:
    merged: dict[str, BaseDistribution] = {}
    for distributions in all_distributions:
        for name, dist in distributions.items():
            if name != ENGINE_PARAM:
                merged.setdefault(name, dist)
    return sorted(merged.items())


def _encode(params: Mapping[str, object], space: FeatureSpace) -> np.ndarray:
    """Numbers in [0, 1] (log-scaled where the range is), one-hot categories, -0.5 if absent."""
    features: list[float] = []
    for name, dist in space:
        value = params.get(name)
        if isinstance(dist, CategoricalDistribution):
            features.extend(
                (1.0 if value is not None and _same(value, c) else 0.0) for c in dist.choices
            )
        elif isinstance(dist, IntDistribution | FloatDistribution):
            if value is None or isinstance(value, bool) or not isinstance(value, int | float):
                features.append(-0.5)
                continue
            low, high, v = float(dist.low), float(dist.high), float(value)
            if dist.log:
                low, high, v = math.log(low), math.log(high), math.log(max(v, 1e-12))
            features.append((v - low) / (high - low) if high > low else 0.0)
    return np.array(features, dtype=np.float64)


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b
