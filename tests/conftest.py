"""Session fixtures: one dev stack per test session, in a fresh temp home on free ports, started lazily.

- `kafka_bootstrap`: just the broker (or BANK_KAFKA_BOOTSTRAP when set in the environment).
- `pg_dsn`: PostgreSQL with migrations applied (or BANK_PG_DSN).
- `redis_url`, `mongo_url`: the other servers (or their BANK_* URL).
- `schema_registry_url`: the embedded schema registry (or BANK_SCHEMA_REGISTRY_URL).
- `stack`: everything: infra, topics, migrations, stream workers and the API. Only tests that ask for it pay for it.
- `api_url`: the API's base URL (implies `stack`), and staff users (tests/support/__init__.py STAFF: teller, analyst,
  admin, with TOTP) that `Bank(api_url)` logs in as (a teller unless told otherwise).

os.environ gets the session's BANK_* settings for the whole session so code under test (get_settings()) sees the
same servers; everything is stopped at session end, pass or fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from cli.devstack import LOCALHOST, ServiceSpec, Stack, StackError, free_port
from cli.devstack import _api_ready as api_ready
from cli.migrate import migrate_sync
from cli.topics import apply_topics_sync
from core.settings import Settings, get_settings
from infra.topics import load_registry
from tests import support
from tests.support.http import share_one_ssl_context

share_one_ssl_context()   # see tests/support/http.py: 33 ms of CPU per httpx client otherwise

TIERS = ("unit", "integration", "e2e", "browser")


SLOW_TESTS = os.environ.get("BANK_SLOW_TESTS") == "1"
RUN_FIRST = ("test_chaos.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked by its directory's tier, so `-m unit` (no server) or `-m "not e2e"` picks a tier.
    Tests marked `slow` run only on demand (BANK_SLOW_TESTS=1), which keeps a clean-clone CI run in budget.
    The browser tier runs last: Playwright's sync API marks its event loop running in the main thread for as long
    as the session's browser lives (tests/support/browser.py), and other tiers call asyncio.run there.
    The tests in RUN_FIRST run before all others: they bring a whole stack of their own and put it under load, so
    they run while the session's stack is not started yet instead of beside it (chaos: 64 s alone, 115 s beside a
    busy session stack)."""
    # stable: the order within each group is kept
    items.sort(key=lambda item: ("browser" in item.path.parts, item.path.name not in RUN_FIRST))
    skip_slow = pytest.mark.skip(reason="slow: runs on demand with BANK_SLOW_TESTS=1")
    for item in items:
        tier = next((part for part in item.path.parts if part in TIERS), None)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
        if not SLOW_TESTS and item.get_closest_marker("slow") is not None:
            item.add_marker(skip_slow)


_URL_VARS = ("BANK_KAFKA_BOOTSTRAP", "BANK_PG_DSN", "BANK_REDIS_URL", "BANK_MONGO_URL", "BANK_SCHEMA_REGISTRY_URL")
UNLIMITED = 10**9


def _session_settings(home: Path) -> Settings:
    """Settings for the session: temp home, free ports; external URLs from the environment are kept."""
    worker_base = free_port() - 1  # worker n listens on worker_web_port + n, projectors after them
    # A long command timeout: `?wait=true` must see the outcome even on a loaded CI machine (no timing tests).
    # Request rate limits out of the way: the whole suite is one client on 127.0.0.1 running load tests; the
    # limits themselves are tested on an API of their own (tests/e2e/test_rate_limits.py). Lock-outs keep the defaults.
    # The session's tellers move cash without opening drawers (tests/e2e/test_drawers.py proves the rule on an API
    # of its own, with BANK_DRAWER_REQUIRED on as in production).
    # Business time may be moved (tests/e2e/test_clock.py; standing orders cannot wait a month); an API of its own
    # there proves the endpoint is off without the setting, as in production.
    # Password hashes at argon2id's cheapest allowed cost: the suite registers and signs in thousands of times on 2
    # cores; the production cost is the default (tests/unit/test_security.py checks it).
    # KYC tiers off, like the rate limits: tests of other things open accounts and move money for customers nobody
    # verified; tests/e2e/test_kyc.py proves the tiers on an API of its own with them on.
    return Settings(home=home, kafka_port=free_port(), pg_port=free_port(), redis_port=free_port(),
                    mongo_port=free_port(), schema_registry_port=free_port(), api_port=free_port(),
                    worker_web_port=worker_base,
                    lag_exporter_port=free_port(), prometheus_port=free_port(), rail_port=free_port(),
                    credit_bureau_port=free_port(),
                    scheduler_port=free_port(), gateway_port=free_port(), rail_settle_delay=timedelta(milliseconds=200),
                    notifier_web_port=free_port(), smtp_port=free_port(), mailbox_port=free_port(),
                    sms_port=free_port(), notify_retry_initial=timedelta(milliseconds=200),
                    notify_retry_max=timedelta(seconds=1),
                    command_timeout=timedelta(seconds=60), rate_limit_per_ip=UNLIMITED,
                    rate_limit_per_user=UNLIMITED, auth_rate_limit_per_ip=UNLIMITED, clock_control=True,
                    scheduler_interval=timedelta(milliseconds=200), drawer_required=False,
                    kyc_tiers=False, password_hash_memory_kib=8192, password_hash_time_cost=1,
                    password_hash_parallelism=1)


@pytest.fixture(scope="session")
def bank_home_factory() -> Iterator[Callable[[], Path]]:
    """Fresh data homes directly under /tmp, removed at session end.

    Not under pytest's tmp_path: pytest resets /tmp/pytest-of-<user> to mode 0700 whenever any session starts,
    which locks out postgres (it runs as a separate OS user) mid-run when sessions overlap."""
    homes: list[Path] = []

    def make() -> Path:
        home = Path(tempfile.mkdtemp(prefix="bank-test-"))
        homes.append(home)
        return home

    yield make
    if os.environ.get("BANK_KEEP_TEST_HOMES"):  # keep logs and data to debug a failure
        print(f"\nkept test homes: {', '.join(map(str, homes))}")
        return
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def bank_settings(bank_home_factory: Callable[[], Path]) -> Settings:
    return _session_settings(bank_home_factory())


@pytest.fixture(scope="session")
def _session_stack(bank_settings: Settings) -> Iterator[Stack]:
    stack = Stack(bank_settings)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session", autouse=True)
def bank_env(bank_settings: Settings, _session_stack: Stack) -> Iterator[Settings]:
    """Export the session's resolved BANK_* settings to os.environ (restored afterwards)."""
    saved = dict(os.environ)
    exported = {k: v for k, v in _session_stack.child_env().items() if k.startswith("BANK_")}
    os.environ.update(exported)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def kafka_bootstrap(_session_stack: Stack) -> str:
    _session_stack.start_infra(["kafka"])
    return _session_stack.settings.kafka


@pytest.fixture(scope="session")
def pg_dsn(_session_stack: Stack) -> str:
    _session_stack.start_infra(["pg"])
    migrate_sync(_session_stack.settings.pg, _session_stack.settings.migrations_dir)
    return _session_stack.settings.pg


@pytest.fixture(scope="session")
def redis_url(_session_stack: Stack) -> str:
    _session_stack.start_infra(["redis"])
    return _session_stack.settings.redis


@pytest.fixture(scope="session")
def mongo_url(_session_stack: Stack) -> str:
    _session_stack.start_infra(["mongo"])
    return _session_stack.settings.mongo


@pytest.fixture(scope="session")
def schema_registry_url(_session_stack: Stack) -> str:
    _session_stack.start_infra(["schema-registry"])
    return _session_stack.settings.schema_registry


@pytest.fixture(scope="session")
def topics_applied(kafka_bootstrap: str, bank_settings: Settings) -> None:
    registry = load_registry(bank_settings.topics_file, bank_settings.topic_replication)
    report = apply_topics_sync(kafka_bootstrap, registry)
    assert report.ok, f"topics apply failed: {report.errors}"


@pytest.fixture(scope="session")
def stack(_session_stack: Stack, topics_applied: None, pg_dsn: str, redis_url: str, mongo_url: str) -> Stack:
    """The whole stack running: infra, topics, migrations, workers, API."""
    _session_stack.start_infra()
    for n in range(1, _session_stack.settings.workers + 1):
        if not _session_stack.running(f"worker-{n}"):
            _session_stack.start_worker(n)
    for n in range(1, _session_stack.settings.projection_workers + 1):
        if not _session_stack.running(f"projector-{n}"):
            _session_stack.start_projector(n)
    if not _session_stack.running("lag-exporter"):
        _session_stack.start_lag_exporter()
    _session_stack.start_simulators()   # the dev SMTP server and SMS gateway the notifier sends to
    if not _session_stack.running("notifier"):
        _session_stack.start_notifier()
    if not _session_stack.running("api"):
        _session_stack.start_api()
    if not _session_stack.running("rail"):
        _session_stack.start_rail()
    if not _session_stack.running("gateway"):
        _session_stack.start_gateway()
    if not _session_stack.running("bureau"):   # the credit bureau simulator
        _session_stack.start_bureau()
    if not _session_stack.running("scheduler"):   # standing orders
        _session_stack.start_scheduler()
    if not support.STAFF:   # a teller, an analyst and an admin, with TOTP, for tests/support/__init__.py's Bank
        support.STAFF.update(asyncio.run(support.create_staff(pg_dsn)))
    if not _STACK_AS_STARTED:
        _STACK_AS_STARTED.update({name: child.spec for name, child in _session_stack.children.items()})
    return _session_stack


# Every process of the session's stack as the `stack` fixture started it: what `_stack_as_started` puts back.
_STACK_AS_STARTED: dict[str, ServiceSpec] = {}


def _spec_key(spec: ServiceSpec) -> tuple[object, ...]:
    return spec.name, tuple(spec.argv), spec.port, tuple(sorted(spec.env.items())), spec.user


@pytest.fixture(autouse=True)
def _stack_as_started(_session_stack: Stack) -> Iterator[None]:
    """After each test, every process of the session's stack is running as the `stack` fixture started it.

    Tests kill and restart workers, projectors, the scheduler and the simulators, some with test-only settings (a
    failpoint that kills the worker). A test that fails half-way may leave one dead or still armed, and every later
    test on the shared stack would then fail too, each after its own timeout (a CI run that lost its worker this
    way ran out of its 90 minutes). This puts such a process back as it was started and fails the test's teardown,
    naming it, so the test that left it so is reported and the tests after it run on a whole stack."""
    yield
    put_back = []
    for name, spec in _STACK_AS_STARTED.items():
        child = _session_stack.children.get(name)
        if child is not None and child.alive and _spec_key(child.spec) == _spec_key(spec):
            continue
        _session_stack.kill(name)
        try:
            _session_stack.start(spec)
        except StackError as error:   # every later test would fail after its own timeout: stop here instead
            pytest.exit(f"the session stack's {name} does not start again: {error}", returncode=1)
        put_back.append(name)
    if put_back:
        pytest.fail(f"the test left the session stack's {', '.join(put_back)} stopped or changed; started again")


@pytest.fixture(scope="session")
def api_url(stack: Stack) -> str:
    return stack.api_url


@pytest.fixture(scope="module")
def extra_api(stack: Stack) -> Iterator[Callable[[dict[str, str]], str]]:
    """Starts more API processes on the session's servers with some settings changed (signing keys, rate
    limits): `url = extra_api({"BANK_RATE_LIMIT_PER_IP": "5"})`. Stopped at the end of the module."""
    started: list[str] = []

    def start(env: dict[str, str]) -> str:
        port = free_port()
        url = f"http://{LOCALHOST}:{port}"
        argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", LOCALHOST, "--port", str(port)]
        spec = ServiceSpec(f"api-extra-{port}", argv, port, env=env | {"BANK_API_PORT": str(port)},
                           death_signal=signal.SIGKILL, ready=partial(api_ready, url))
        stack.start(spec)
        started.append(spec.name)
        return url

    yield start
    for name in started:
        stack.kill(name)
