"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (the copy that
check-jsonschema vendors), then for what the schema cannot know: every dependency exists and is
satisfiable, the services run real CLI commands, their CHECKOUT_* variables are real settings
that parse, the Kafka listeners and database URL agree with the servers' own settings. The
Dockerfile is checked for what the image needs: the package sources, `pip install .`, a
non-root user, the console script as entrypoint.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from ops.cli import cli
from ops.config_reference import environment_variables
from services.platform.settings import Settings
from services.runtime import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def _interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` with nothing set in the environment: the defaults."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(str(v)) for k, v in env.items()}


def _depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _app_services(services: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if "build" in s}


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the Compose Specification schema ---------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    result = _check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_an_invalid_compose_file(tmp_path: Path) -> None:
    """The validator is live: a wrong dependency condition and an unknown key both fail."""
    broken = _compose()
    broken["services"]["saga"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["relay"]["restart_policy"] = "always"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = _check_jsonschema(path)
    assert result.returncode != 0
    assert "service_finished" in result.stdout + result.stderr


ADMIN_PORT = 8081


# --- what the schema cannot know ---------------------------------------------------------------


def test_every_service_of_the_product_runs_in_its_own_container(
    services: dict[str, dict[str, Any]],
) -> None:
    runs = {
        name: s["command"]
        for name, s in _app_services(services).items()
        if s.get("command", [])[:1] == ["run"]
    }
    assert {name: cmd[1:] for name, cmd in runs.items() if name != "relay"} == {
        name: [name, "--no-relay", f"--admin-port={ADMIN_PORT}"] for name in SERVICES
    }
    assert runs["relay"] == ["run", "relay", f"--admin-port={ADMIN_PORT}"]
    assert services["migrate"]["command"] == ["migrate"]


def test_each_service_container_is_healthy_only_when_its_process_is_ready(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in (*SERVICES, "relay"):
        probe = " ".join(services[name]["healthcheck"]["test"])
        # The port the process serves its admin API on, and the endpoint that checks its
        # database and broker: a container is not healthy merely because it runs.
        assert f"http://127.0.0.1:{ADMIN_PORT}/health/ready" in probe, name


def test_app_services_share_one_image_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    apps = _app_services(services)
    assert set(apps) >= {*SERVICES, "relay", "migrate", "seed"}
    for name, service in apps.items():
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert service["image"] == "checkout-saga:local", name
    for name in set(services) - set(apps):
        assert ":" in services[name]["image"], f"{name}: pin the image's tag"
        assert not services[name]["image"].endswith(":latest"), name


def test_commands_are_real_cli_commands(services: dict[str, dict[str, Any]]) -> None:
    runner = CliRunner()
    for name, service in _app_services(services).items():
        if "entrypoint" in service:
            continue
        command = service.get("command", [])
        assert isinstance(command, list), f"{name}: use the exec form (a list)"
        result = runner.invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, f"{name}: {command}: {result.output}"
        if command[:1] == ["run"]:
            names = [arg for arg in command[1:] if not arg.startswith("-")]
            assert set(names) <= {*SERVICES, "relay"}, name


def test_the_seed_script_compiles_and_its_imports_exist(
    services: dict[str, dict[str, Any]],
) -> None:
    seed = services["seed"]
    assert seed["entrypoint"] == ["python", "-c"]
    (source,) = seed["command"]
    tree = ast.parse(source)
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imports
    for node in imports:
        assert node.module is not None
        module = importlib.import_module(node.module)
        for alias in node.names:
            assert hasattr(module, alias.name), f"{node.module}.{alias.name}"


def test_dependencies_exist_and_start_in_a_possible_order(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert condition in CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is one-shot"
    assert list(_start_order(services))  # raises on a cycle


def _start_order(services: Mapping[str, Mapping[str, Any]]) -> Iterator[str]:
    started: set[str] = set()
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(_depends_on(s)) <= started]
        if not ready:
            raise AssertionError(f"dependency cycle among {sorted(pending)}")
        for name in sorted(ready):
            started.add(name)
            del pending[name]
            yield name


def test_services_wait_for_migrations_and_healthy_servers(
    services: dict[str, dict[str, Any]],
) -> None:
    assert _depends_on(services["migrate"]) == {"postgres": "service_healthy"}
    for name in (*SERVICES, "relay", "seed"):
        deps = _depends_on(services[name])
        assert deps["migrate"] == "service_completed_successfully", name
        assert deps["kafka"] == "service_healthy", name
    # `up --wait` counts a one-shot as failed unless a long-running service waits for it.
    for one_shot in ("migrate", "seed"):
        waiters = [
            name
            for name, s in services.items()
            if _depends_on(s).get(one_shot) == "service_completed_successfully"
            and s.get("restart") != "no"
        ]
        assert waiters, one_shot
    for name in (*SERVICES, "relay", "cart-api", "postgres", "kafka"):
        assert services[name].get("restart") == "unless-stopped", name


def test_cart_api_listens_for_other_containers_on_its_published_port(
    services: dict[str, dict[str, Any]],
) -> None:
    api = services["cart-api"]
    assert api["command"] == ["cart-api"]
    env = _environment(api)
    assert env["CHECKOUT_CART__HTTP_HOST"] == "0.0.0.0"
    port = env["CHECKOUT_CART__HTTP_PORT"]
    assert f"127.0.0.1:{port}:{port}" in api["ports"]
    assert f"127.0.0.1:{port}/" in " ".join(api["healthcheck"]["test"])


def test_servers_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(postgres)
    kafka = " ".join(services["kafka"]["healthcheck"]["test"])
    # The apache/kafka image keeps its scripts in /opt/kafka/bin, not on PATH.
    assert "/opt/kafka/bin/kafka-topics.sh" in kafka
    port = re.search(r"--bootstrap-server localhost:(\d+)", kafka)
    assert port is not None
    assert port.group(1) in _kafka_listeners(services)["listeners"].values()


def test_environment_variables_are_real_settings_that_parse(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    known = {v.name for v in environment_variables()}
    for name, service in _app_services(services).items():
        env = _environment(service)
        checkout = {k: v for k, v in env.items() if k.startswith("CHECKOUT_")}
        assert set(checkout) <= known, f"{name}: unknown {sorted(set(checkout) - known)}"
        for key in [k for k in os.environ if k.startswith("CHECKOUT_")]:
            monkeypatch.delenv(key)
        for key, value in checkout.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.kafka.bootstrap_servers == env["CHECKOUT_KAFKA__BOOTSTRAP_SERVERS"]
        # Apache Kafka, not Tansu: the production-ish producer and group settings.
        assert settings.kafka.enable_idempotence, name
        assert settings.kafka.acks == "all", name
        assert settings.kafka.session_timeout_ms >= 6000, name  # broker's minimum
        assert settings.kafka.heartbeat_interval_ms * 3 <= settings.kafka.session_timeout_ms


def _kafka_listeners(services: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    env = _environment(services["kafka"])

    def parse(value: str) -> dict[str, str]:
        return {
            item.split("://")[0]: item.split("://")[1] for item in value.split(",") if item.strip()
        }

    listeners = {k: v.rsplit(":", 1)[1] for k, v in parse(env["KAFKA_LISTENERS"]).items()}
    return {"listeners": listeners, "advertised": parse(env["KAFKA_ADVERTISED_LISTENERS"])}


def test_kafka_runs_kraft_with_consistent_listeners(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    env = _environment(kafka)
    found = _kafka_listeners(services)
    listeners, advertised = found["listeners"], found["advertised"]
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["CLUSTER_ID"], "the image requires CLUSTER_ID in KRaft mode"
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners
    assert controller not in advertised
    voter_id, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    assert voter == f"{kafka['hostname']}:{listeners[controller]}"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for name, address in advertised.items():
        assert address.rsplit(":", 1)[1] == listeners[name], name
    # The services reach the broker on the listener it advertises to containers.
    bootstrap = _environment(services["saga"])["CHECKOUT_KAFKA__BOOTSTRAP_SERVERS"]
    assert bootstrap in advertised.values()
    assert bootstrap.split(":")[0] in {"kafka", kafka["hostname"]}
    # The host reaches it on the listener advertised as 127.0.0.1, published on the host.
    (host_listener,) = [a for a in advertised.values() if a.startswith("127.0.0.1:")]
    port = host_listener.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}:{port}" in kafka["ports"]


def test_database_url_matches_the_postgres_service(services: dict[str, dict[str, Any]]) -> None:
    postgres = _environment(services["postgres"])
    for name, service in _app_services(services).items():
        url = urlsplit(_environment(service)["CHECKOUT_DATABASE_URL"])
        assert url.scheme == "postgresql+asyncpg", name
        assert (url.hostname, url.port) == ("postgres", 5432), name
        assert url.username == postgres["POSTGRES_USER"], name
        assert url.password == postgres["POSTGRES_PASSWORD"], name
        assert url.path == f"/{postgres['POSTGRES_DB']}", name
    assert "127.0.0.1:5433:5432" in services["postgres"]["ports"]


def test_named_volumes_are_declared_and_ports_stay_on_loopback(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} not declared"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} open to the network"


def test_deployment_docs_give_the_host_command_for_this_stack() -> None:
    page = (ROOT / "docs" / "deployment.md").read_text()
    section = page.split("## Production with Docker Compose", 1)[1].split("\n## ", 1)[0]
    assert "docker compose up" in section
    url = "postgresql+asyncpg://checkout:checkout@127.0.0.1:5433/checkout"
    assert f"CHECKOUT_DATABASE_URL={url}" in section
    assert "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092" in section
    assert "checkout-saga demo" in section


# --- monitoring: Prometheus and Grafana (profile "monitoring") ---------------------------------

MONITORING = ROOT / "ops" / "monitoring"
SCRAPED = (*SERVICES, "relay")
"""Every process that serves an admin API, and so its own /metrics."""


def _mounts(service: Mapping[str, Any]) -> dict[PurePosixPath, Path]:
    """A service's bind mounts of repository files: path in the container -> the file."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[PurePosixPath(target)] = (ROOT / source).resolve()
    return mounts


def _provisioned(mounts: Mapping[PurePosixPath, Path], kind: str) -> list[dict[str, Any]]:
    folder = PurePosixPath("/etc/grafana/provisioning") / kind
    return [yaml.safe_load(f.read_text()) for t, f in mounts.items() if t.parent == folder]


def test_monitoring_is_opt_in(services: dict[str, dict[str, Any]]) -> None:
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
    for name in (*SCRAPED, "postgres", "kafka", "cart-api"):
        assert "profiles" not in services[name], name


def test_prometheus_loads_the_alerts_and_scrapes_every_process(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    mounts = _mounts(prometheus)
    (flag,) = [arg for arg in prometheus["command"] if arg.startswith("--config.file=")]
    config_path = PurePosixPath(flag.split("=", 1)[1])
    assert mounts[config_path] == MONITORING / "prometheus.yml"
    config = yaml.safe_load(mounts[config_path].read_text())
    # Rule files are read relative to the config file: both mounted from ops/monitoring/.
    rules = {mounts[config_path.parent / name] for name in config["rule_files"]}
    assert rules == {MONITORING / "alerts.yml"}
    (job,) = config["scrape_configs"]
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    assert targets == {f"{name}:{ADMIN_PORT}" for name in SCRAPED}
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # The target-down alert watches this job.
    assert f'up{{job="{job["job_name"]}"}}' in (MONITORING / "alerts.yml").read_text()


def test_prometheus_sends_the_token_the_admin_apis_want(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    prometheus = services["prometheus"]
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["authorization"].get("type", "Bearer") == "Bearer"
    token_file = PurePosixPath("/etc/prometheus") / job["authorization"]["credentials_file"]
    (mounted,) = [c for c in prometheus["configs"] if PurePosixPath(c["target"]) == token_file]
    token = _interpolate(compose["configs"][mounted["source"]]["content"])
    assert token
    for name in SCRAPED:
        env = _environment(services[name])
        assert env["CHECKOUT_ADMIN__TOKEN"] == token, name
        # Listening beyond the container's loopback, or Prometheus could not reach it.
        assert env["CHECKOUT_ADMIN__HTTP_HOST"] == "0.0.0.0", name


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    (source,) = [d for f in _provisioned(mounts, "datasources") for d in f["datasources"]]
    assert (source["type"], source["isDefault"]) == ("prometheus", True)
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert f"127.0.0.1:{url.port}:{url.port}" in services["prometheus"]["ports"]
    (provider,) = [p for f in _provisioned(mounts, "dashboards") for p in f["providers"]]
    folder = PurePosixPath(provider["options"]["path"])
    dashboards = {f for t, f in mounts.items() if t.parent == folder}
    assert dashboards == {MONITORING / "grafana-dashboard.json"}
    assert _depends_on(grafana) == {"prometheus": "service_healthy"}


# --- the Dockerfile ----------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_dockerfile_builds_from_python_311_slim() -> None:
    instructions = _instructions()
    args = dict(rest.split("=", 1) for kw, rest in instructions if kw == "ARG" and "=" in rest)
    images = [rest.split()[0] for kw, rest in instructions if kw == "FROM"]
    resolved = {re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image) for image in images}
    assert resolved == {"python:3.11-slim"}


def test_dockerfile_copies_the_package_and_installs_it_without_test_extras() -> None:
    copies = [rest.split() for kw, rest in _instructions() if kw == "COPY"]
    sources = {src for words in copies if not words[0].startswith("--") for src in words[:-1]}
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    project = _pyproject()
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in packages} <= sources
    assert {"pyproject.toml", project["project"]["readme"]} <= sources
    runs = " ".join(rest for kw, rest in _instructions() if kw == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs)
    assert "[test]" not in runs
    # Sources the image copies are not excluded by .dockerignore (an allow-list).
    allowed = {
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    assert {s.rstrip("/") for s in sources} <= allowed


def test_image_runs_as_a_non_root_user_with_the_cli_as_entrypoint() -> None:
    final = _final_stage()
    users = [rest for kw, rest in final if kw == "USER"]
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    (entrypoint,) = [rest for kw, rest in final if kw == "ENTRYPOINT"]
    assert entrypoint == '["checkout-saga"]'
    assert "checkout-saga" in _pyproject()["project"]["scripts"]
