"""The README's quick-start commands are the ones CI runs."""

from __future__ import annotations

import re

from conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README must open with a bash block of quick-start commands"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_readme_opens_with_two_commands() -> None:
    cmds = _readme_commands()
    assert len(cmds) == 2, cmds
    assert "qyolo-trt build" in cmds[0] and cmds[0].startswith("pip install")
    assert "pytest" in cmds[1] and cmds[1].startswith("pip install")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_commands()[1] in ci
