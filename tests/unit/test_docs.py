"""The guide and the docs hold together: every relative link of README.md and docs/*.md names a file
of the checkout, and the README stays a guide (short), with the first screen a maintainer needs."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs" / "findings").rglob("*.md"))]
LINK_RE = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_names_a_file_of_the_checkout(page):
    broken = [
        target for target in LINK_RE.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]  # fmt: skip
    assert not broken, f"{page.relative_to(REPO)} links to missing {broken}"


def test_the_readme_is_a_guide_whose_first_screen_has_what_a_maintainer_types():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    first_screen = "\n".join(text.splitlines()[:30])
    for needed in ("make help", "make quick QEMU=", "FAILFAST=1", "TEST="):
        assert needed in first_screen, needed


def test_the_gitlab_template_names_only_what_the_makefile_has():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "ci" / "check-template.py")], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0 and "0 problem(s)" in done.stdout, done.stdout + done.stderr
