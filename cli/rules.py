"""`bank rules publish|list|show|diff|backtest`: fraud analysts' rule sets, versioned on bank.risk.rules.

A published version never changes: publishing it again with other text is refused, with the same text it
becomes live again (a rollback). The newest record on the topic is the live rule set; scoring workers tail the
topic and switch to it without a restart. While nothing is published they use BANK_RULES_FILE.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.risk_topics import History, Published, publish, read_history, read_published, versions
from core.money import format_amount
from core.risk.backtest import BacktestReport, Change, RuleCounts, backtest
from core.risk.features import Movement
from core.risk.records import RuleSetPublished
from core.risk.rules import ACTIONS, RuleSet, RuleSetError, diff, load_rule_set
from core.risk.sanctions import load_sanctions
from core.settings import get_settings
from core.topics import RISK_ASSESSMENTS, RISK_RULES
from infra.kafka import TopicMissing

app = typer.Typer(help="Fraud and AML rule sets: publish, list, show, diff, back-test.", no_args_is_help=True)

T = TypeVar("T")
RuleFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A rule-set YAML file.")]
_SINCE = re.compile(r"^([1-9][0-9]{0,5})([mhdw])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def _out() -> Console:
    # Made per command, not at import, so COLUMNS (and a test runner's stdout) are the invocation's.
    return Console(soft_wrap=True, highlight=False)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(message: str, code: int = 1) -> typer.Exit:
    _err().print(f"[red]✗[/] {escape(message)}")
    return typer.Exit(code)


def _kafka(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except TopicMissing as error:
        raise _fail(str(error)) from None
    except KafkaError as error:
        raise _fail(f"Kafka at {get_settings().kafka}: {type(error).__name__}: {error}") from None


# ---------------------------------------------------------------- rule sets: files, versions, the live one


@dataclass(frozen=True)
class Resolved:
    rule_set: RuleSet
    text: str
    label: str                    # what it is, for people: "candidate.yaml", "2026-11-24.1 (live, published ...)"


def _load_file(path: Path) -> Resolved:
    """A rule-set file, validated; a broken one exits 2 naming the file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
        return Resolved(load_rule_set(text, str(path)), text, str(path))
    except RuleSetError as error:
        raise _fail(str(error), 2) from None
    except UnicodeDecodeError as error:
        raise _fail(f"{path}: not UTF-8 text: {error}", 2) from None


def _load_published(p: Published, live: bool = False) -> Resolved:
    r = p.record
    label = f"{r.version} ({'live, ' if live else ''}published {r.published_at:%Y-%m-%d %H:%M} UTC by {r.published_by})"
    try:
        return Resolved(load_rule_set(r.text, f"{r.version} (published)"), r.text, label)
    except RuleSetError as error:   # validated when published; only a newer, stricter loader can get here
        raise _fail(f"published version {r.version} no longer validates: {error}") from None


def _default() -> Resolved:
    path = get_settings().rules_file
    resolved = _load_file(path)
    return Resolved(resolved.rule_set, resolved.text, f"{resolved.rule_set.version} ({path}; nothing published yet)")


def _live(published: list[Published]) -> Resolved:
    current = versions(published)
    return _load_published(current[-1], live=True) if current else _default()


def _version(published: list[Published], version: str) -> Published:
    current = versions(published)
    found = next((p for p in current if p.record.version == version), None)
    if found is None:
        known = ", ".join(p.record.version for p in current) or "none"
        raise _fail(f"no published version {version!r} (published: {known})")
    return found


def _resolve(ref: str, published: list[Published]) -> Resolved:
    """A rule-set file if `ref` names one, else a published version."""
    if Path(ref).is_file():
        return _load_file(Path(ref))
    found = _version(published, ref)
    return _load_published(found, live=found is versions(published)[-1])


def _rule_counts(text: str) -> tuple[int, int] | None:
    """(rules, disabled ones); None if the text no longer validates."""
    try:
        rules = load_rule_set(text).rules
    except RuleSetError:
        return None
    return len(rules), sum(1 for r in rules if not r.enabled)


def _shown_counts(counts: tuple[int, int] | None) -> str:
    if counts is None:
        return "[red]invalid[/]"
    return f"{counts[0]}" + (f" ({counts[1]} disabled)" if counts[1] else "")


def _print_diff(console: Console, old: RuleSet, new: RuleSet) -> None:
    changes = diff(old, new)
    head, *lines = changes.lines()
    console.print(f"[bold]{escape(head)}[/]")
    if changes.is_empty:
        console.print("  no rule changes")
    for line in lines:
        colour = {"+": "green", "-": "red"}.get(line[0], "yellow")
        console.print(f"  [{colour}]{escape(line)}[/]")


# ---------------------------------------------------------------- publish, list, show, diff


@app.command("publish")
def publish_command(
    file: RuleFile,
    by: Annotated[str | None, typer.Option("--by", help="Who publishes (default: the OS user).")] = None,
) -> None:
    """Validate FILE and make it the live rule set. A version, once published, never changes."""
    candidate = _load_file(file)
    version = candidate.rule_set.version
    published = _kafka(read_published(get_settings().kafka))
    current = versions(published)
    same = next((p for p in current if p.record.version == version), None)
    if same is not None and same.record.text != candidate.text:
        r = same.record
        raise _fail(f"version {version} is already published with different text (sha256 {r.sha256[:12]}, "
                    f"{r.published_at:%Y-%m-%d %H:%M} UTC by {r.published_by}); a published version never changes: "
                    f"give {file} a new version")
    if same is not None and same is current[-1]:
        _out().print(f"{version} is already live (sha256 {same.record.sha256[:12]}); nothing published")
        return
    try:
        previous: Resolved | None = _live(published)
    except typer.Exit:      # the live version no longer validates (said why): a fix must still be publishable
        previous = None
    record = RuleSetPublished.of(version, candidate.text, file.name, datetime.now(UTC), by or _user())
    offset = _kafka(publish(get_settings().kafka, record))
    out = _out()
    again = " again (it was published before: a rollback)" if same is not None else ""
    out.print(f"[green]✓[/] published {escape(version)} (sha256 {record.sha256[:12]}, "
              f"{len(candidate.rule_set.rules)} rules) at {RISK_RULES} offset {offset}; it is live{again}. "
              "Scoring workers switch to it without a restart.")
    if previous is not None:
        out.print(f"changes since {escape(previous.label)}:")
        _print_diff(out, previous.rule_set, candidate.rule_set)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every published version, oldest first; the last one is live."""
    current = versions(_kafka(read_published(get_settings().kafka)))
    counts = [_rule_counts(p.record.text) for p in current]
    rows = [{"version": p.record.version, "live": p is current[-1], "published_at": p.record.published_at.isoformat(),
             "published_by": p.record.published_by, "sha256": p.record.sha256, "source": p.record.source,
             "rules": n and n[0], "disabled": n and n[1], "valid": n is not None, "offset": p.offset}
            for p, n in zip(current, counts, strict=True)]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out = _out()
    if not rows:
        out.print(f"nothing published yet; scoring uses {escape(_default().label)}")
        return
    table = Table(title=f"published rule sets ({RISK_RULES})")
    for column in ("", "version", "published (UTC)", "by", "sha256", "rules", "source"):
        table.add_column(column)
    for row, p, n in zip(rows, current, counts, strict=True):
        table.add_row("[green]● live[/]" if row["live"] else "", escape(row["version"]),
                      f"{p.record.published_at:%Y-%m-%d %H:%M:%S}", escape(row["published_by"]), row["sha256"][:12],
                      _shown_counts(n), escape(row["source"]))
    out.print(table)


@app.command("show")
def show_command(version: Annotated[str | None, typer.Argument(help="A published version (default: live).")] = None,
                 ) -> None:
    """Print a published rule set's YAML exactly as published (details on stderr, so the output can be saved)."""
    published = _kafka(read_published(get_settings().kafka))
    if version is None and not published:
        default = _default()
        _err().print(f"nothing published yet; scoring uses {escape(default.label)}:")
        typer.echo(default.text, nl=not default.text.endswith("\n"))
        return
    current = versions(published)
    chosen = _version(published, version) if version is not None else current[-1]
    r = chosen.record
    live = "live, " if chosen is current[-1] else ""
    _err().print(f"# {escape(r.version)} ({live}published {r.published_at:%Y-%m-%d %H:%M:%S} UTC by "
                 f"{escape(r.published_by)} from {escape(r.source)}, sha256 {r.sha256})")
    typer.echo(r.text, nl=not r.text.endswith("\n"))


@app.command("diff")
def diff_command(refs: Annotated[list[str] | None, typer.Argument(
        help="[A] [B]: versions or rule-set files. With only B, A is the live rule set; with neither, what the "
             "last publish changed.")] = None) -> None:
    """What changes from rule set A to B: rules added, removed, and changed field by field."""
    refs = refs or []
    if len(refs) > 2:
        raise _fail("give at most two rule sets: `bank rules diff [A] [B]`", 2)
    published = _kafka(read_published(get_settings().kafka))
    if refs:
        old = _live(published) if len(refs) == 1 else _resolve(refs[0], published)
        new = _resolve(refs[-1], published)
    else:
        current = versions(published)
        if not current:
            raise _fail(f"nothing published yet; scoring uses {_default().label}")
        old = _load_published(current[-2]) if len(current) > 1 else _default()
        new = _load_published(current[-1], live=True)
    _print_diff(_out(), old.rule_set, new.rule_set)


# ---------------------------------------------------------------- backtest


def parse_since(text: str, now: datetime) -> datetime | None:
    """The start of a back-test: "30d", "12h", "90m" or "2w" before `now`, an ISO date or time (UTC unless it
    says otherwise), or None for "all"."""
    if text == "all":
        return None
    if match := _SINCE.match(text):
        return now - int(match[1]) * _UNITS[match[2]]
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f'expected a duration like "30d", "12h" or "90m", an ISO date, or "all"; '
                                 f'got "{text}"', param_hint="--since") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@app.command("backtest")
def backtest_command(
    file: RuleFile,
    since: Annotated[str, typer.Option(help='Count movements from: "30d", "12h", "90m", an ISO date, or "all". '
                                            "Earlier ones only warm the features up.")] = "30d",
    against: Annotated[str | None, typer.Option(help="Compare with this published version (default: live).")] = None,
    examples: Annotated[int, typer.Option(min=0, help="Movements that change outcome to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Replay the scoring history (bank.risk.assessments) through FILE and the live rule set; compare per rule."""
    cutoff = parse_since(since, datetime.now(UTC))
    candidate = _load_file(file)
    settings = get_settings()
    published = _kafka(read_published(settings.kafka))
    live = _load_published(_version(published, against)) if against else _live(published)
    sanctions = load_sanctions(settings.sanctions_file.read_text(encoding="utf-8"), str(settings.sanctions_file))
    with Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_err()) as bar:
        reading = bar.add_task(f"reading {RISK_ASSESSMENTS}", total=None)
        history = _kafka(read_history(settings.kafka, lambda done, total: bar.update(reading, completed=done,
                                                                                     total=total)))
        replaying = bar.add_task("replaying through both rule sets", total=len(history.movements))
        report = backtest(history.movements, candidate.rule_set, live.rule_set, sanctions, cutoff,
                          examples=examples, progress=lambda done: bar.update(replaying, completed=done))
    if as_json:
        print(json.dumps(_as_json(report, history, candidate, live), indent=2))
        return
    _render(_out(), report, history, candidate, live)


def _as_json(report: BacktestReport, history: History, candidate: Resolved, live: Resolved) -> dict[str, Any]:
    return {**report.to_dict(), "candidate": candidate.label, "live": live.label,
            "history": {"topic": RISK_ASSESSMENTS, "from_offsets": {str(p): o for p, o in history.starts.items()},
                        "to_offsets": {str(p): o for p, o in history.ends.items()},
                        "movements": len(history.movements), "duplicates": history.duplicates,
                        "skipped": history.skipped}}


def _render(out: Console, report: BacktestReport, history: History, candidate: Resolved, live: Resolved) -> None:
    out.print(f"[bold]back-test[/] of {escape(candidate.label)} (candidate) against {escape(live.label)}")
    since = f"since {report.since:%Y-%m-%d %H:%M} UTC" if report.since else "all history"
    span = f", {report.first_at:%Y-%m-%d %H:%M} to {report.last_at:%Y-%m-%d %H:%M} UTC" if report.first_at else ""
    out.print(f"{report.evaluated:,} movements counted ({since}{span}); {report.warm_up:,} earlier ones replayed "
              f"to warm the features up" + _history_note(history))
    if not report.evaluated and report.warm_up:
        out.print(f"[yellow]no movement since {report.since:%Y-%m-%d %H:%M} UTC[/]: the newest is from "
                  f"{history.movements[-1][0].at:%Y-%m-%d %H:%M} UTC; try a longer --since, or --since all")
    out.print(_rules_table(report))
    out.print(_totals_table(report))
    if not report.changed:
        out.print("no movement ends differently under the candidate")
        return
    share = f" ({report.changed / report.evaluated:.1%})" if report.evaluated else ""
    out.print(f"[bold]{report.changed:,} movements{share} end differently[/]: "
              + ", ".join(f"{a} → {b}: {n:,}" for (a, b), n in report.transitions.items()))
    if report.examples:
        out.print(_examples_table(report.examples))


def _history_note(history: History) -> str:
    notes = [f"{history.duplicates:,} re-delivered assessments replayed once"] if history.duplicates else []
    notes += [f"{history.skipped:,} unreadable records skipped"] if history.skipped else []
    return f" ({'; '.join(notes)})" if notes else ""


def _pair(live: int, candidate: int) -> str:
    return f"{live:,}" if live == candidate else f"{live:,} → {candidate:,}"


def _rules_table(report: BacktestReport) -> Table:
    table = Table(title="hits per rule (live → candidate)")
    for column in ("rule", "change", "hits live", "hits candidate", "Δ hits", "flagged", "held", "blocked"):
        table.add_column(column, justify="left" if column in {"rule", "change"} else "right")
    for row in report.rules:
        change = {"same": "", "added": "[green]new[/]", "removed": "[red]removed[/]"}.get(row.status)
        if change is None:
            change = "[yellow]" + escape("\n".join(row.changes)) + "[/]"
        delta = f"[yellow]{row.delta:+,}[/]" if row.delta else "0"
        table.add_row(escape(row.rule_id), change, _side(row.live, row.status != "added"),
                      _side(row.candidate, row.status != "removed"), delta,
                      _pair(row.live.flagged, row.candidate.flagged), _pair(row.live.held, row.candidate.held),
                      _pair(row.live.blocked, row.candidate.blocked))
    return table


def _side(counts: RuleCounts, present: bool) -> str:
    return f"{counts.hits:,}" if present else "[dim]-[/]"


def _totals_table(report: BacktestReport) -> Table:
    table = Table(title="final action per movement")
    for column in ("action", "live", "candidate", "Δ"):
        table.add_column(column, justify="left" if column == "action" else "right")
    for action in ACTIONS:
        a, b = report.live_totals[action], report.candidate_totals[action]
        table.add_row(action, f"{a:,}", f"{b:,}", f"[yellow]{b - a:+,}[/]" if b != a else "0")
    table.add_row("[bold]movements[/]", f"{report.evaluated:,}", f"{report.evaluated:,}", "")
    return table


def _examples_table(examples: tuple[Change, ...]) -> Table:
    table = Table(title="examples of movements that end differently")
    for column in ("at (UTC)", "account", "movement", "live", "candidate", "event"):
        table.add_column(column)
    for e in examples:
        table.add_row(f"{e.movement.at:%Y-%m-%d %H:%M:%S}", escape(e.movement.account_id), escape(_what(e.movement)),
                      _verdict(e.live, e.live_hits), _verdict(e.candidate, e.candidate_hits), escape(e.ref or ""))
    return table


def _what(m: Movement) -> str:
    """E.g. "withdrawal 9500.00 EUR cash", "transfer_out 120.00 EUR to acc-9 (IR)"."""
    to = m.counterparty_account_id or m.counterparty_name
    return f"{m.kind} {format_amount(m.amount, m.currency)} {m.currency}" \
        + (f" {m.channel}" if m.channel != "transfer" else "") + (f" to {to}" if to else "") \
        + (f" ({m.counterparty_country})" if m.counterparty_country else "")


def _verdict(action: str, hits: tuple[str, ...]) -> str:
    return f"[bold]{action}[/]" + (f"\n{escape(', '.join(hits))}" if hits else "")
