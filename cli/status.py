"""`bank status`: the platform on one screen: services, topics, consumer lag, sagas in flight, parked events,
and the live fraud rule set."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import asyncpg
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from cli.devstack import Stack
from cli.lag import PartitionLag, collect, platform_groups
from cli.risk_topics import read_published, versions
from core.readmodel import PG_SCHEMA, PROJECTIONS
from core.risk.rules import load_rule_set
from core.settings import Settings
from infra.kafka import end_offsets
from infra.topics import load_registry
from streams.projections import create_store

PROBE_TIMEOUT_S = 2.0


@dataclass
class PlatformStatus:
    services: dict[str, tuple[str, bool]] = field(default_factory=dict)   # name -> (url, up)
    topics: dict[str, tuple[int, int]] = field(default_factory=dict)      # name -> (partitions, messages)
    lag: list[PartitionLag] = field(default_factory=list)
    sagas_in_flight: int | None = None
    parked: dict[str, int | None] = field(default_factory=dict)
    rule_set: str = "unknown"
    problems: list[str] = field(default_factory=list)


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S):
            return True
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


def _service_urls(settings: Settings) -> dict[str, str]:
    urls = Stack(settings).urls()
    probes = {"api": f"{urls['api']}/healthz", "lag-exporter": urls["lag-exporter"],
              "schema-registry": f"{urls['schema-registry']}/subjects"}
    probes |= {name: f"{url}/" for name, url in urls.items() if name.startswith("worker-")}
    probes |= {name: f"{url}/healthz" for name, url in urls.items() if name.startswith("projector-")}
    probes["gateway"] = urls["gateway"]
    if not settings.rail_url:   # the sandbox rail `bank up` runs; another rail is not ours to probe
        probes["rail"] = f"{urls['rail']}/health"
    if not settings.credit_bureau_url:   # likewise the bureau simulator
        probes["bureau"] = f"{urls['bureau']}/health"
    probes["notifier"] = f"{urls['notifier']}/healthz"
    if "mailbox" in urls:
        probes["smtp-sim"] = f"{urls['mailbox']}/healthz"
    if "sms" in urls:
        probes["sms-sim"] = f"{urls['sms']}/healthz"
    if "prometheus" in urls:
        probes["prometheus"] = f"{urls['prometheus']}/-/ready"
    return probes


async def gather(settings: Settings) -> PlatformStatus:
    status = PlatformStatus()
    probes = _service_urls(settings)
    ups = await asyncio.gather(*(asyncio.to_thread(_up, url) for url in probes.values()))
    status.services = {name: (url, up) for (name, url), up in zip(probes.items(), ups, strict=True)}
    await _kafka_figures(settings, status)
    await _rule_set_figure(settings, status)
    await _read_model_figures(settings, status)
    return status


async def _rule_set_figure(settings: Settings, status: PlatformStatus) -> None:
    """The newest version on bank.risk.rules, or the rules file the workers fall back to."""
    try:
        published = versions(await read_published(settings.kafka))
    except Exception as error:  # noqa: BLE001 - a summary reports what it cannot reach
        status.problems.append(f"rule set: {type(error).__name__}: {error}")
        return
    if published:
        live = published[-1].record
        status.rule_set = f"{live.version} (published {live.published_at:%Y-%m-%d %H:%M} by {live.published_by})"
    else:
        default = load_rule_set(settings.rules_file.read_text(), settings.rules_file.name)
        status.rule_set = f"{default.version} from {settings.rules_file.name} (nothing published yet)"


async def _kafka_figures(settings: Settings, status: PlatformStatus) -> None:
    try:
        status.lag = await collect(settings.kafka, platform_groups(settings))
        registry = load_registry(settings.topics_file)
        ends = await _end_offsets(settings.kafka, list(registry))
        status.topics = {name: (spec.partitions, ends.get(name, -1)) for name, spec in registry.items()}
    except Exception as error:  # noqa: BLE001 - a summary reports what it cannot reach
        status.problems.append(f"Kafka: {type(error).__name__}: {error}")


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Per topic, the sum of its partitions' end offsets (messages written, for a topic never compacted)."""
    totals: dict[str, int] = {}
    for tp, end in (await end_offsets(bootstrap, topics, isolation_level="read_uncommitted")).items():
        totals[tp.topic] = totals.get(tp.topic, 0) + end
    return totals


async def _read_model_figures(settings: Settings, status: PlatformStatus) -> None:
    try:
        conn = await asyncpg.connect(settings.pg, timeout=PROBE_TIMEOUT_S)
        try:
            status.sagas_in_flight = int(await conn.fetchval(
                f"SELECT coalesce(sum(transfers_out_in_flight), 0) FROM {PG_SCHEMA}.accounts"))
        finally:
            await conn.close()
    except Exception as error:  # noqa: BLE001
        status.problems.append(f"PostgreSQL: {type(error).__name__}: {error}")
    for name in PROJECTIONS:
        store = create_store(name, settings)
        try:
            await asyncio.wait_for(store.open(), PROBE_TIMEOUT_S * 3)
            status.parked[name] = (await store.status()).parked
        except Exception as error:  # noqa: BLE001
            status.parked[name] = None
            status.problems.append(f"{name} read model: {type(error).__name__}: {error}")
        finally:
            await store.close()


def render(status: PlatformStatus, console: Console) -> None:
    services = Table(show_header=False, box=None)
    for name, (url, up) in status.services.items():
        services.add_row(f"[{'green' if up else 'red'}]{'●' if up else '○'}[/] {name}", url)
    topics = Table("topic", "partitions", "end offsets", box=None)
    for name, (partitions, messages) in status.topics.items():
        topics.add_row(name, str(partitions), "?" if messages < 0 else f"{messages:,}")
    lag = Table("consumer group", "lag (messages)", "oldest waiting", box=None)
    for group in dict.fromkeys(r.group for r in status.lag):
        rows = [r for r in status.lag if r.group == group]
        behind = sum(r.lag for r in rows)
        oldest = max((r.lag_seconds or 0.0 for r in rows), default=0.0)
        lag.add_row(group, f"[{'yellow' if behind else 'green'}]{behind:,}[/]", f"{oldest:.1f}s" if behind else "-")
    facts = Table(show_header=False, box=None)
    facts.add_row("transfers in flight", "?" if status.sagas_in_flight is None else str(status.sagas_in_flight))
    for name, parked in status.parked.items():
        shown = "?" if parked is None else (f"[red]{parked}[/]" if parked else "0")
        facts.add_row(f"parked events ({name})", shown)
    facts.add_row("live fraud rule set", status.rule_set)
    parts = [Panel(services, title="services"), Panel(topics, title="topics"), Panel(lag, title="consumer lag"),
             Panel(facts, title="ledger and read models")]
    if status.problems:
        parts.append(Panel("\n".join(status.problems), title="[red]cannot reach[/]"))
    console.print(Group(*parts))


OPTIONAL_SERVICES = {"prometheus"}   # monitoring is not the platform: its absence is shown, not failed


def healthy(status: PlatformStatus) -> bool:
    return not status.problems and all(up for name, (_, up) in status.services.items()
                                       if name not in OPTIONAL_SERVICES)
