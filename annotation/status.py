"""A project's state as data (for ``status --json`` and the GUI) and as readable text."""

from __future__ import annotations

from .integrity import check_images
from .project import Project


def project_status(project: Project) -> dict:
    store = project.store
    problems = [str(p) for p in check_images(project)]
    counts = store.counts()
    models = store.models()
    current = store.current_model
    return {
        "project": str(project.root),
        "task": project.task,
        "schema_version": store.schema_version,
        **counts,
        "current_model": current,
        "model_versions": [
            {k: m[k] for k in ("version", "status", "round", "metrics", "n_corrected", "seconds", "created_at")}
            for m in models
        ],
        "excluded_images": [{"name": r.name, "reason": r.excluded} for r in store.images()
                            if r.excluded is not None],
        "problems": problems,
        "running_job": next(({"id": j["id"], "kind": j["kind"], "progress": j["progress"]}
                             for j in store.jobs("running")), None),
    }


def format_status(status: dict) -> str:
    labels = status["labels"]
    lines = [
        f"Project   {status['project']}",
        f"Task      {status['task']}",
        f"Images    {status['images']}"
        + (f"  ({', '.join(f'{n} {s}' for s, n in status['images_by_state'].items() if s != 'ok')})"
           if set(status["images_by_state"]) - {"ok"} else ""),
        "Review    " + ", ".join(f"{status['images_by_review'].get(s, 0)} {s.replace('_', ' ')}"
                                for s in ("done", "in_progress", "untouched")),
        "Labels    " + ", ".join(f"{n} {v}" for v, n in labels.items())
        + (f", {status['targets']} regression targets" if status.get("targets") else ""),
        f"Corrections {status['corrections']} edits, {status['seconds_correcting'] / 60:.1f} min spent",
    ]
    for image in status.get("excluded_images", []):
        lines.append(f"Excluded  {image['name']}: {image['reason']}")
    if status["model_versions"]:
        lines.append(f"Models    {len(status['model_versions'])} (current: v{status['current_model']})")
        for m in status["model_versions"]:
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in m["metrics"].items()
                                if isinstance(v, float) and not k.endswith("_n"))
            mark = "*" if m["version"] == status["current_model"] else " "
            lines.append(f"  {mark} v{m['version']:<3} {m['status']:<9} round {m['round']:<3} "
                         f"{m['n_corrected']:>4} corrected  {metrics}")
    else:
        lines.append("Models    none yet (run: im2im-active train PROJECT)")
    jobs = status["jobs"]
    if jobs:
        lines.append("Jobs      " + ", ".join(f"{n} {s}" for s, n in jobs.items()))
    if status["running_job"]:
        j = status["running_job"]
        lines.append(f"Running   job {j['id']} ({j['kind']}) {100 * j['progress']:.0f}%")
    for problem in status.get("problems", []):
        lines.append(f"Warning   {problem}")
    return "\n".join(lines)
