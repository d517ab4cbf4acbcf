"""The `bank` command line: `bank up`, `bank topics apply`, `bank migrate`, `bank projections ...`,
`bank schemas check|release`."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli import bench, books, catalog, chaos, cob, demo, messages, projections, replay, rules, tail, users
from cli.devstack import Stack, StackError, log_tail, prometheus_binary
from cli.migrate import migrate_sync
from cli.topics import TopicsReport, apply_topics_sync
from core.settings import Settings, get_settings
from infra import kafka_fetch
from infra.topics import load_registry

app = typer.Typer(help="bankstream: Kafka-native core banking.", no_args_is_help=True, add_completion=False)
topics_app = typer.Typer(help="Manage Kafka topics declared in topics.yaml.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(projections.app, name="projections")
app.add_typer(rules.app, name="rules")
app.add_typer(users.app, name="users")
app.add_typer(books.app, name="books")
app.add_typer(cob.app, name="cob")
app.command("mail")(messages.mail)   # the dev mailbox (simulators/smtp.py)
app.command("sms")(messages.sms)     # the SMS gateway simulator's log (simulators/sms.py)
app.command("bench")(bench.bench)
app.command("chaos")(chaos.chaos)
app.command("catalog")(catalog.catalog)
app.command("tail")(tail.tail)
app.command("replay")(replay.replay)
app.command("demo")(demo.demo)
console = Console()

_STATUS_STYLE = {"created": "green", "ok": "dim", "drift": "yellow", "error": "red"}


class _Terminate(Exception):
    """Raised by the SIGTERM handler so `bank up` stops like on Ctrl-C."""


@app.command()
def up(
    infra_only: Annotated[bool, typer.Option("--infra-only", help="Start servers, topics, migrations; no app.")] = False,
    workers: Annotated[int | None, typer.Option(help="Number of stream workers (default: BANK_WORKERS).")] = None,
    with_prometheus: Annotated[bool | None, typer.Option(
        "--with-prometheus/--without-prometheus",
        help="Run Prometheus (the system's `prometheus`) on BANK_PROMETHEUS_PORT, scraping every process. "
             "Default: on when it is installed, except with --infra-only.")] = None,
    with_demo: Annotated[bool, typer.Option(
        "--demo", help="Fill the stack with the demo bank (`bank demo`), business time control on.")] = False,
) -> None:
    """Start the dev stack (embedded servers unless BANK_*_URL is set), apply topics and migrations, run the app."""
    settings = get_settings()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    if with_demo:   # months of history need business time that moves (never in production)
        settings = settings.model_copy(update={"clock_control": True})
    if with_prometheus is None:
        with_prometheus = not infra_only and prometheus_binary() is not None
    stack = Stack(settings, echo=lambda msg: console.log(msg))
    signal.signal(signal.SIGTERM, _raise_terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    code = 0
    try:
        _bring_up(stack, infra_only, with_prometheus)
        _print_urls(stack, infra_only)
        if with_demo and not infra_only:
            demo.run_demo(stack.settings, stack.urls()["api"])
        console.print("[bold green]bank is up.[/] Press Ctrl-C to stop.")
        _watch(stack)
    except (KeyboardInterrupt, _Terminate):
        console.print("\n[bold]stopping...[/]")
    except StackError as exc:
        console.print(f"[bold red]startup failed:[/] {exc}")
        code = 1
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, stop the children before exiting
        console.print(f"[bold red]startup failed:[/] {type(exc).__name__}: {exc}")
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(stack)
    if code:
        raise typer.Exit(code)


def _raise_terminate(_sig: int, _frame: FrameType | None) -> None:
    raise _Terminate


def _bring_up(stack: Stack, infra_only: bool, with_prometheus: bool = False) -> None:
    """Infra, topics, migrations, then (unless infra_only) the app; Prometheus last, once its targets serve."""
    started = stack.start_infra()
    console.log(f"infra ready: {', '.join(started) or 'all external'}")
    registry = load_registry(stack.settings.topics_file, stack.settings.topic_replication)
    _print_topics(apply_topics_sync(stack.settings.kafka, registry))
    applied = migrate_sync(stack.settings.pg, stack.settings.migrations_dir)
    console.log(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
    if not infra_only:
        stack.start_workers()
        stack.start_projectors()
        stack.start_lag_exporter()
        stack.start_simulators()   # the dev SMTP server and SMS gateway, before the notifier that sends to them
        stack.start_notifier()
        stack.start_api()
        stack.start_rail()        # the sandbox payment rail (unless BANK_RAIL_URL names another), then its gateway
        stack.start_gateway()
        stack.start_bureau()      # the credit bureau simulator (unless BANK_CREDIT_BUREAU_URL names another)
        stack.start_scheduler()   # standing orders (issue 16)
    if with_prometheus:
        stack.start_prometheus()


def _watch(stack: Stack) -> None:
    """Block until interrupted; report children that die on their own."""
    while True:
        time.sleep(0.5)
        for name, code in stack.dead().items():
            log = stack.children[name].log_path
            console.print(f"[bold red]{name} exited unexpectedly (code {code}).[/] Tail of {log}:\n{log_tail(log)}")
            stack.forget(name)


def _stop(stack: Stack) -> None:
    stack.stop()
    console.print("[bold green]everything stopped cleanly.[/]")


def _print_urls(stack: Stack, infra_only: bool) -> None:
    table = Table(title="bankstream dev stack", show_header=True)
    table.add_column("what")
    table.add_column("where")
    urls = stack.urls()
    if not infra_only:
        table.add_row("customer app", urls["app"])
        table.add_row("admin panel", urls["admin"])
        table.add_row("API", urls["api"])
        table.add_row("OpenAPI docs", urls["docs"])
        for n in range(1, stack.settings.workers + 1):
            table.add_row(f"worker {n} web", urls[f"worker-{n}"])
        for n in range(1, stack.settings.projection_workers + 1):
            table.add_row(f"projection worker {n}", urls[f"projector-{n}"])
        table.add_row("lag exporter", urls["lag-exporter"])
        table.add_row("payment rail (sandbox)" if not stack.settings.rail_url else "payment rail", urls["rail"])
        table.add_row("payment gateway", urls["gateway"])
        table.add_row("credit bureau (simulator)" if not stack.settings.credit_bureau_url else "credit bureau",
                      urls["bureau"])
        table.add_row("notifier", urls["notifier"])
        for key, label in (("smtp", "dev SMTP server"), ("mailbox", "dev mailbox (`bank mail`)"),
                           ("sms", "SMS gateway simulator (`bank sms`)")):
            if key in urls:
                table.add_row(label, urls[key])
    if stack.running("prometheus"):
        table.add_row("Prometheus", stack.prometheus_url)
    labels = {"kafka": "Kafka bootstrap", "pg": "PostgreSQL DSN", "redis": "Redis", "mongo": "MongoDB",
              "schema-registry": "Schema registry"}
    for key, label in labels.items():
        table.add_row(label, urls[key])
    table.add_row("data dir", urls["home"])
    table.add_row("logs", str(stack.logs))
    console.print(table)
    if not infra_only:
        console.print(f"[bold]log in:[/] first admin: `bank users create-admin --email you@example.com`; then "
                      f"Authorize at {urls['docs']} (or POST {urls['api']}/v1/auth/token) and enrol MFA "
                      "(/v1/auth/mfa/setup, /verify); customers register at "
                      f"{urls['app']}register (or POST /v1/auth/register)")


@app.command("lag")
def lag_command(
    serve: Annotated[bool, typer.Option("--serve", help="Run as a Prometheus exporter instead of printing once.")] = False,
    port: Annotated[int | None, typer.Option(help="Exporter port (default: BANK_LAG_EXPORTER_PORT).")] = None,
    host: Annotated[str, typer.Option(help="Exporter address.")] = "127.0.0.1",
    interval: Annotated[float, typer.Option(help="Seconds between collections when serving.")] = 5.0,
) -> None:
    """Consumer lag of every platform consumer group, per partition: committed, end, lag, time lag."""
    import asyncio

    from cli.lag import LagExporter, collect, platform_groups
    from infra.logs import configure_logging

    settings = get_settings()
    if serve:
        configure_logging("lag-exporter", settings.log_level)
        kafka_fetch.install_for(settings)
        asyncio.run(LagExporter(settings, interval).run(port or settings.lag_exporter_port, host))
        return
    rows = asyncio.run(collect(settings.kafka, platform_groups(settings)))
    table = Table(title="consumer lag")
    for column in ("group", "topic", "partition", "committed", "end", "lag", "time lag"):
        table.add_column(column, justify="right" if column in {"partition", "committed", "end", "lag"} else "left")
    for row in rows:
        style = "yellow" if row.lag else "dim"
        waiting = f"{row.lag_seconds:.1f}s" if row.lag_seconds is not None else "-"
        table.add_row(row.group, row.topic, str(row.partition), "-" if row.committed is None else str(row.committed),
                      str(row.end), f"[{style}]{row.lag}[/]", waiting)
    console.print(table)
    console.print(f"total lag: {sum(r.lag for r in rows)} message(s)")


@app.command("status")
def status_command() -> None:
    """The platform on one screen: services, topics, consumer lag, transfers in flight, parked events."""
    import asyncio

    from cli.status import gather, healthy, render

    status = asyncio.run(gather(get_settings()))
    render(status, console)
    if not healthy(status):
        raise typer.Exit(1)


@topics_app.command("apply")
def topics_apply() -> None:
    """Create missing topics; report drift of existing ones (never alters or deletes)."""
    settings = get_settings()
    report = apply_topics_sync(settings.kafka, load_registry(settings.topics_file, settings.topic_replication))
    _print_topics(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_topics(report: TopicsReport) -> None:
    table = Table(title="topics")
    for column in ("topic", "status", "partitions", "details"):
        table.add_column(column)
    for r in report.results:
        style = _STATUS_STYLE[r.status]
        table.add_row(r.name, f"[{style}]{r.status}[/]", str(r.partitions or ""), "\n".join(r.details))
    console.print(table)


@app.command()
def migrate() -> None:
    """Apply migrations/*.sql not yet applied to BANK_PG_DSN."""
    settings: Settings = get_settings()
    applied = migrate_sync(settings.pg, settings.migrations_dir)
    console.print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


schemas_app = typer.Typer(help="Avro schemas: compatibility checks and releases.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")


@schemas_app.command("check")
def schemas_check() -> None:
    """Fail if a schema changed without a version bump, or cannot read a previous version's data."""
    from schemas.codec import current_schemas, load_schema, read_schema_ids, schema_fingerprint
    from schemas.compat import history_path, incompatibility, read_lock, version_of

    problems: list[str] = []
    lock, ids = read_lock(), read_schema_ids()
    for name, schema in current_schemas().items():
        version = version_of(schema)
        if lock.get(name, {}).get(str(version)) != schema_fingerprint(schema):
            problems.append(f"{name}: differs from its released v{version}; bump bankstream_version and release")
        elif str(version) not in ids.get(name, {}):
            problems.append(f"{name}: v{version} has no schema id in schemas/schema_ids.json; run `bank schemas release`")
        for older in range(1, version):
            path = history_path(name, older)
            if not path.exists():
                problems.append(f"{name}: previous version {path.name} is missing")
            elif (why := incompatibility(schema, load_schema(path))) is not None:
                problems.append(f"{name}: cannot read v{older} data: {why}")
    for problem in problems:
        console.print(f"[red]✗[/] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {len(current_schemas())} schemas compatible with every released version")


@schemas_app.command("release")
def schemas_release(
    registry: Annotated[str | None, typer.Option(
        help="Also register every released version in this schema registry (Confluent Schema Registry, Karapace "
             "or the embedded one), e.g. http://schema-registry:8081; it must hand out the ids writers use.")] = None,
    registry_only: Annotated[bool, typer.Option(
        "--registry-only", help="Only register what is already released; write no file (docker-compose's setup).")
    ] = False,
) -> None:
    """Record the current schemas' fingerprints and schema ids as released (after archiving the previous versions);
    with --registry, register them there under their subjects."""
    import httpx

    from infra.topics import load_registry as load_topics
    from schemas.compat import release_current
    from schemas.registry import SchemaCatalog, publish

    if not registry_only:
        lock = release_current()
        console.print(f"released fingerprints and ids of {len(lock)} schemas into schemas/fingerprints.json and "
                      "schemas/schema_ids.json")
    if registry is None:
        return
    catalog = SchemaCatalog(load_topics())
    try:
        with httpx.Client(base_url=registry, timeout=30) as client:
            problems = publish(catalog, client)
    except httpx.HTTPError as error:
        problems = [f"{registry}: {type(error).__name__}: {error}"]
    for problem in problems:
        console.print(f"[red]✗[/] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {len(catalog.versions)} schema versions registered under "
                  f"{len(catalog.subjects)} subjects at {registry}, with the writers' ids")


if __name__ == "__main__":
    app()
