"""Charts drawn on the server as SVG: no chart script in the browser, nothing computed there.

A balance over time (an account's page) and bars of amounts (the loan portfolio). The amounts come from the API
as decimal strings; they are read as Decimals only to place points on the canvas (coordinates, not money). Labels
show the API's strings as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from markupsafe import Markup

from web.formatting import money, when

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 12, 12, 16, 28


@dataclass(frozen=True)
class Point:
    at: datetime
    balance: str     # the API's decimal string


def _parse(moment: str | datetime) -> datetime:
    return moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment).replace("Z", "+00:00"))


def balance_points(transactions: list[dict[str, object]], current_balance: str, now: datetime) -> list[Point]:
    """The balance after each posting, oldest first, and the balance now (the line runs up to today)."""
    points = sorted((Point(_parse(str(tx["occurred_at"])), str(tx["balance_after"])) for tx in transactions),
                    key=lambda point: point.at)
    # postings carry the ledger's time; with business time moved forward (tests, demos) it may be ahead of ours
    return [*points, Point(max([now, *(point.at for point in points)]), current_balance)]


def balance_chart(points: list[Point], currency: str, title: str = "Balance over time") -> Markup:
    """A step line of the balance (it changes only at postings), with the lowest and highest balance labelled."""
    if len(points) < 2:
        return Markup("")
    values = [Decimal(point.balance) for point in points]
    low, high = min(min(values), Decimal(0)), max(max(values), Decimal(0))
    span = (high - low) or Decimal(1)
    start, end = points[0].at.timestamp(), points[-1].at.timestamp()
    duration = (end - start) or 1.0
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(point: Point) -> float:
        return LEFT + (point.at.timestamp() - start) / duration * inner_w

    def y(value: Decimal) -> float:
        return TOP + float((high - value) / span) * inner_h

    path = [f"M{x(points[0]):.1f},{y(values[0]):.1f}"]
    for point, value in zip(points[1:], values[1:], strict=True):
        path.append(f"H{x(point):.1f}V{y(value):.1f}")
    line = "".join(path)
    zero_y = y(Decimal(0))
    area = f"{line}V{zero_y:.1f}H{x(points[0]):.1f}Z"
    lowest = points[values.index(min(values))]
    highest = points[values.index(max(values))]
    description = (f"From {when(points[0].at, False)} to {when(points[-1].at, False)}: "
                   f"lowest {money(lowest.balance, currency)}, highest {money(highest.balance, currency)}, "
                   f"now {money(points[-1].balance, currency)}.")
    svg = f"""<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc"
     xmlns="http://www.w3.org/2000/svg">
  <title id="chart-title">{escape(title)}</title>
  <desc id="chart-desc">{escape(description)}</desc>
  <line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP}" y2="{TOP}"/>
  <line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + inner_h}" y2="{TOP + inner_h}"/>
  <path class="area" d="{area}"/>
  <line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero_y:.1f}" y2="{zero_y:.1f}"/>
  <path class="line" d="{line}"/>
  <text x="{LEFT}" y="{HEIGHT - 8}">{escape(when(points[0].at, False))}</text>
  <text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{escape(when(points[-1].at, False))}</text>
</svg>"""
    return Markup(svg)


@dataclass(frozen=True)
class Bar:
    label: str
    amount: str      # the API's decimal string


BAR_ROW, BAR_LABEL_W, BAR_AMOUNT_W, LABEL_CHARS = 30, 220, 140, 30


def bar_chart(bars: list[Bar], currency: str, title: str, chart_id: str = "bars") -> Markup:
    """Horizontal bars of amounts in one currency, one per label, each amount written beside its bar (a negative
    amount draws no bar). `chart_id` keeps the title's and description's ids unique on a page of several charts."""
    if not bars:
        return Markup("")
    values = [max(Decimal(bar.amount), Decimal(0)) for bar in bars]
    high = max(values) or Decimal(1)
    inner_w = WIDTH - BAR_LABEL_W - BAR_AMOUNT_W - RIGHT
    height = TOP + BAR_ROW * len(bars)
    rows = []
    for index, (bar, value) in enumerate(zip(bars, values, strict=True)):
        y = TOP + index * BAR_ROW
        width = float(value / high) * inner_w
        label = bar.label if len(bar.label) <= LABEL_CHARS else bar.label[:LABEL_CHARS - 1] + "…"
        rows.append(f'  <text x="{LEFT}" y="{y + 15}">{escape(label)}</text>\n'
                    f'  <rect class="bar" x="{BAR_LABEL_W}" y="{y + 4}" width="{width:.1f}" height="{BAR_ROW - 10}"/>\n'
                    f'  <text x="{BAR_LABEL_W + width + 6:.1f}" y="{y + 15}">{escape(money(bar.amount, currency))}</text>')
    description = "; ".join(f"{bar.label}: {money(bar.amount, currency)}" for bar in bars) + "."
    svg = f"""<svg class="chart chart--bars" viewBox="0 0 {WIDTH} {height}" role="img"
     aria-labelledby="{chart_id}-title {chart_id}-desc" xmlns="http://www.w3.org/2000/svg">
  <title id="{chart_id}-title">{escape(title)}</title>
  <desc id="{chart_id}-desc">{escape(description)}</desc>
{chr(10).join(rows)}
</svg>"""
    return Markup(svg)
