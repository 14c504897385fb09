"""What a study is: its objectives' names and a description of the space it was created from.

Place in the data flow: the loop calls `describe_study` once per run, before any trial. It
names the two objectives for optuna-dashboard, stores a short hash of every space-file section
that changes what a trial means (`space_sections`; `workloads` only when the file has
several, and fields added later only when set, so older studies keep resuming), and refuses to
resume a study from a space file that differs in one of them (unless `allow_change`), since the
old and new trials would not be comparable. A study made by something else is refused
by the study command (`refuse_foreign`) unless ``--adopt`` (`optimizer.adoption`), and one
without this tool's two objectives by every command that reads a stored study's trials
(`refuse_other_objectives`). The
study's user attributes (model, hardware, workload, and on a GPU the simulator never measured
whose efficiencies it takes) head the report.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import optuna

from optimizer.adoption import adopt_foreign
from optimizer.errors import StudyError
from optimizer.objectives import metric_names
from optimizer.record import count_trials
from optimizer.spec.models import StudySpec
from runners.catalog import get_gpu
from runners.sim.params import efficiency_note

MEANINGFUL_SECTIONS = ("model", "hardware", "engines", "workload", "objectives", "baseline")


def space_sections(spec: StudySpec) -> dict[str, str]:
    """A short hash per space-file section that changes what trials mean."""
    dumped = spec.model_dump(
        mode="json",
        exclude={
            "workload": spec.workload.defaulted_additions(),
            "objectives": spec.objectives.defaulted_additions(),
        },
    )
    names = [*MEANINGFUL_SECTIONS, *(["workloads"] if spec.workloads else [])]
    return {
        name: hashlib.sha256(json.dumps(dumped[name], sort_keys=True).encode()).hexdigest()[:12]
        for name in names
    }


def refuse_other_objectives(study: optuna.Study) -> None:
    """Refuse a study whose number of objectives is not this tool's two (throughput, latency):
    nothing here can read its trials as serving configurations."""
    count = len(study.directions)
    if count != 2:
        raise StudyError(
            f"study {study.study_name!r} has {count} objective(s), but this tool's studies have "
            "two (throughput and latency): it was not made by this tool. Use another "
            "--study-name (or --storage) for this tool's study"
        )


def is_foreign(study: optuna.Study) -> bool:
    """Trials, but no space description: the study was made by something else."""
    return "space_sections" not in study.user_attrs and bool(study.get_trials(deepcopy=False))


def refuse_foreign(study: optuna.Study) -> None:
    """Refuse to run trials into a study this tool did not make (``--adopt`` accepts it:
    `optimizer.adoption`).

    A study of this tool has two objectives and, before its first trial, the description
    `describe_study` stores. One with trials but no description was made by something else (a
    plain Optuna script, say); adopting it would count its trials toward --n-trials and put
    them on the front with no serve command.
    """
    refuse_other_objectives(study)
    if is_foreign(study):
        raise StudyError(
            f"study {study.study_name!r} holds trials this tool did not make (it has no space "
            "description): they are not serving configurations. Use another --study-name (or "
            "--storage) for this tool's study, or pass --adopt to run this tool's trials into "
            "it and leave those out of counts, front and report"
        )


def describe_study(
    study: optuna.Study, spec: StudySpec, allow_change: bool, adopt: bool = False
) -> list[str]:
    """Name the objectives and describe the study; refuse a study this tool did not make, and
    refuse to resume one from a space that means something else, unless `adopt` (or
    `allow_change` for the space). What adoption did, as lines for the user."""
    notes: list[str] = []
    if adopt and is_foreign(study):
        refuse_other_objectives(study)
        notes += adopt_foreign(study)
    else:
        refuse_foreign(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metric_names(spec.objectives))
    sections = space_sections(spec)
    stored = study.user_attrs.get("space_sections")
    if isinstance(stored, dict) and stored != sections:
        changed = ", ".join(sorted(k for k in sections if stored.get(k) != sections[k]))
        if not (allow_change or adopt):
            raise StudyError(
                f"study {study.study_name!r} was created from a different space file (changed: "
                f"{changed}); its trials would not be comparable. Use another --study-name, or "
                "pass --allow-space-change (or --adopt) to continue it anyway"
            )
        if adopt:
            count = count_trials(study).finished
            notes.append(
                f"note: adopting study {study.study_name!r}, made by this tool from a different "
                f"space file (changed: {changed}): its {count} finished trial(s) keep their "
                "serve commands, count toward --n-trials and compete on one front with the new "
                "ones, although they were measured under the old "
                f"{changed}; the study now describes the new space file."
            )
    attrs = {
        "space": spec.name,
        "space_sections": sections,
        "model": spec.model.name,
        "node_group": f"{spec.node_group.name}: {spec.node_group.gpus_per_node} x "
        f"{spec.node_group.gpu}",
        "workload": f"{spec.workload.name} ({spec.workload.dataset}, "
        f"{spec.workload.num_prompts} prompts)",
        "objectives": metric_names(spec.objectives),
    }
    carried = efficiency_note(get_gpu(spec.node_group.gpu))
    if carried:
        attrs["efficiency_note"] = carried
    for key, value in attrs.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    return notes
