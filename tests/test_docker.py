"""The Docker image, checked without a container engine: the Dockerfile's stages and serving
settings, its install steps against `make setup`'s (which CI runs), and the compose file."""
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from shadowkv_engine.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions, the FROM line first, in file order; "" -> global ARGs."""
    result = {"": []}
    name = ""
    for keyword, args in instructions((DOCKER / "Dockerfile").read_text()):
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args, re.IGNORECASE)
            assert match, f"every stage is named: FROM {args}"
            name = match.group(2)
            result[name] = []
        result[name].append((keyword, args))
    return result


def values(stage, keyword):
    return [args for k, args in stage if k == keyword]


def test_stages_build_on_cuda_devel_and_python_bases():
    s = stages()
    assert list(s) == ["", "cuda-base", "build", "cpu", "cuda"]  # the last is the default target
    assert re.fullmatch(r"nvidia/cuda:\$\{CUDA_VERSION\}-devel-ubuntu24\.04",
                        values(s["cuda-base"], "FROM")[0].split()[0])
    assert values(s["build"], "FROM")[0].startswith("cuda-base ")
    assert values(s["cuda"], "FROM")[0].startswith("cuda-base ")
    assert values(s["cpu"], "FROM")[0].startswith("python:3.12")
    assert any(v.startswith("--from=build /opt/venv") for v in values(s["cuda"], "COPY"))


@pytest.mark.parametrize("name", ["cpu", "cuda"])
def test_serving_stages_run_the_server_as_non_root(name):
    stage = stages()[name]
    users = values(stage, "USER")
    assert users and users[-1] not in ("root", "0")
    (health,) = values(stage, "HEALTHCHECK")
    assert "/health" in health and "--start-period" in health
    assert values(stage, "STOPSIGNAL") == ["SIGTERM"]
    assert [json.loads(v) for v in values(stage, "ENTRYPOINT")] == [["shadowkv", "serve"]]
    assert any("SHADOWKV_HOST=0.0.0.0" in v for v in values(stage, "ENV"))


def test_the_extension_is_built_for_a100_and_hopper():
    env = " ".join(values(stages()["build"], "ENV"))
    arch = re.search(r'TORCH_CUDA_ARCH_LIST="([^"]+)"', env).group(1).split(";")
    assert {"8.0", "9.0a"} <= set(arch)


def pip_commands(lines: list[str]) -> list[list[str]]:
    """`python -m pip install ...` commands of shell lines, with the variable syntax of Make and
    Docker unified, leading VAR=value assignments dropped, and the interpreter named python."""
    commands = []
    for line in lines:
        for part in re.split(r"\s*&&\s*", line):
            tokens = [re.sub(r"\$[({](\w+)[)}]", r"\1", t) for t in shlex.split(part)]
            while tokens and re.fullmatch(r"\w+=\S*", tokens[0]):
                tokens.pop(0)
            if tokens[1:4] == ["-m", "pip", "install"]:
                commands.append(["python", *tokens[1:]])
    return commands


def project_install(command: list[str]) -> tuple[list[str], set[str], bool]:
    """(the command without -e/--no-build-isolation and extras, the extras, built in isolation)"""
    spec = next(t for t in command if t.startswith(".["))
    extras = set(spec[2:-1].split(","))
    rest = [t for t in command if t not in ("-e", "--no-build-isolation", spec)]
    return rest, extras, "--no-build-isolation" not in command


def test_install_steps_are_make_setups():
    makefile = (REPO / "Makefile").read_text()
    make_torch_pin = re.search(r"^TORCH \?= (\S+)$", makefile, re.M).group(1)
    make_torch, make_project = pip_commands(re.findall(r"^\t(.*)$", makefile, re.M))
    assert make_torch == ["python", "-m", "pip", "install", "-q", "TORCH"]
    s = stages()
    assert f"TORCH={make_torch_pin}" in values(s[""], "ARG")
    optional = declared_extras()
    for name, extras_wanted, isolated in (("cpu", {"server"}, True),
                                          ("build", {"server", "gpu"}, False)):
        commands = pip_commands(values(s[name], "RUN"))
        assert make_torch in commands, f"{name} installs torch as make setup does"
        (project,) = [c for c in commands if any(t.startswith(".[") for t in c)]
        rest, extras, in_isolation = project_install(project)
        assert rest == project_install(make_project)[0]
        assert extras == extras_wanted and extras <= optional
        assert in_isolation == isolated  # the CUDA build must see the installed torch and nvcc
        assert "TORCH" in values(s[name], "ARG"), "a stage sees a global ARG only if it names it"


def declared_extras() -> set[str]:
    """The extras pyproject.toml declares (tomllib is Python 3.11+; the project runs on 3.10)."""
    section = (REPO / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1]
    return set(re.findall(r"^(\w+) = \[", section.split("\n[")[0], re.M))


def test_dockerignore_lets_every_copied_path_through():
    allowed = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for stage in stages().values():
        for args in values(stage, "COPY"):
            if args.startswith("--from"):
                continue
            for source in args.split()[:-1]:
                assert source in allowed, f"COPY {source} is excluded by .dockerignore"
                assert (REPO / source).exists()


def test_compose_serves_one_model_with_prometheus_scraping_metrics():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    server, prometheus = compose["services"]["shadowkv"], compose["services"]["prometheus"]
    assert (DOCKER / server["build"]["context"] / server["build"]["dockerfile"]).is_file()
    assert server["ipc"] == "host"
    assert server["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
    assert server["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    config = server["command"][server["command"].index("--config") + 1]
    assert (REPO / "configs" / Path(config).name).is_file()
    mount = next(v for v in prometheus["volumes"] if v.endswith("/etc/prometheus/prometheus.yml:ro"))
    scrape = yaml.safe_load((DOCKER / mount.split(":")[0]).read_text())["scrape_configs"]
    (job,) = [j for j in scrape if j.get("metrics_path", "/metrics") == "/metrics"]
    port = server["ports"][0].split(":")[-1]
    assert job["static_configs"][0]["targets"] == [f"shadowkv:{port}"]


def test_the_images_environment_sets_where_the_server_listens(monkeypatch):
    env = " ".join(values(stages()["cuda"], "ENV"))
    for name in ("SHADOWKV_HOST", "SHADOWKV_PORT"):
        monkeypatch.setenv(name, re.search(rf"{name}=(\S+)", env).group(1))
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("0.0.0.0", 8000)
