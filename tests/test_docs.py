"""The user's guide stays a guide: short, its links alive, and nothing about how it was written."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO

README_LIMIT = 16_000  # characters: results, benchmarks and history belong in docs/


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text()) <= README_LIMIT


def test_every_relative_link_of_the_readme_and_docs_exists():
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_nothing_speaks_of_how_the_project_was_developed():
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md", "*.py", "*.yaml", "*.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # Spelled in pieces so that this file does not match itself.
    words = re.compile("|".join(["ses" + "sion", "is" + "sue [0-9]", "le" + "nt to"]), re.IGNORECASE)
    allowed = re.compile('scope="session"|start_new_session')  # pytest's fixture scope, subprocess's flag
    found = []
    for name in tracked:
        path = REPO / name
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if words.search(allowed.sub("", line)):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []
