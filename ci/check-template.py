#!/usr/bin/env python3
"""Check ci/gitlab-ci.yml against this checkout: it parses (GitLab's !reference
tag included), every `extends`, `!reference` and `needs` names a job of the file,
every `make -C "$TXNSTORM_DIR" TARGET VAR=...` names a target of the Makefile
and settings it reads (txnstorm/settings.py), every "$TXNSTORM_DIR/..." script exists, and each junit
report lies under its job's artifact paths.  Needs PyYAML (.venv has it).
Usage: ci/check-template.py [FILE]   (default ci/gitlab-ci.yml; exit 1 and one line per problem if wrong)"""

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from txnstorm.settings import BY_NAME  # noqa: E402 - the checkout's own, found from this file


class Reference(list):
    pass


class Loader(yaml.SafeLoader):
    pass


Loader.add_constructor("!reference", lambda loader, node: Reference(loader.construct_sequence(node)))


def merged(jobs: dict, name: str) -> dict:
    """A job with its `extends` chain merged the way GitLab does (hashes deep, the rest replaced)."""

    def deep(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            out[key] = deep(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    job = jobs[name]
    parents = job.get("extends", [])
    result: dict = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        result = deep(result, merged(jobs, parent))
    return deep(result, {k: v for k, v in job.items() if k != "extends"})


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "ci/gitlab-ci.yml"
    doc = yaml.load(path.read_text(), Loader=Loader)
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", makefile, re.MULTILINE))
    problems = []
    jobs = {k: v for k, v in doc.items() if k not in ("variables", "include", "stages", "default", "workflow")}
    for name, job in jobs.items():
        for parent in [job["extends"]] if isinstance(job.get("extends"), str) else job.get("extends", []):
            if parent not in jobs:
                problems.append(f"{name}: extends unknown {parent}")
        full = merged(jobs, name)
        for need in full.get("needs", []):
            needed = need["job"] if isinstance(need, dict) else need
            if needed not in jobs:
                problems.append(f"{name}: needs unknown job {needed}")
        lines = []
        for key in ("before_script", "script", "after_script"):
            for item in full.get(key, []):
                if isinstance(item, Reference):
                    ref_job, ref_key = item
                    if ref_key not in jobs.get(ref_job, {}):
                        problems.append(f"{name}: !reference [{ref_job}, {ref_key}] names nothing")
                else:
                    lines.append(item)
        for line in lines:
            for target, args in re.findall(r'make -C "\$TXNSTORM_DIR" (\S+)((?: \w+=\S+)*)', line):
                if target not in targets:
                    problems.append(f"{name}: make target {target} is not in the Makefile")
                for var in re.findall(r" (\w+)=", args):
                    setting = BY_NAME.get(var)  # txnstorm/settings.py: which targets read each setting
                    if setting is None or not {target, "inputs"} & set(setting.targets) and target != "inputs":
                        problems.append(f"{name}: make variable {var} is not read by make {target}")
            for script in re.findall(r'"\$TXNSTORM_DIR/([^"]+)"', line):
                if "/" in script and not script.startswith("results") and not (REPO / script).exists():
                    problems.append(f"{name}: {script} does not exist in txnstorm")
        artifacts = full.get("artifacts", {})
        for report in (artifacts.get("reports") or {}).values():
            if not any(report.startswith(p.rstrip("/") + "/") for p in artifacts.get("paths", [])):
                problems.append(f"{name}: report {report} is outside the artifact paths")
    for p in problems:
        print(f"check-template: {p}")
    print(f"check-template: {len(jobs)} jobs, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
