"""The Monday-morning report: serviceStats and the top hotspots of a window as CSV files and one HTML page
with plain inline SVG charts (no JavaScript, no external files)."""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from dispatch.rules import ServiceRules
from geo.areas import RegionConfig
from quality.common import window_of
from quality.hotspots import Hotspot, hotspots, index_keywords
from quality.rules import QualitySettings
from quality.stats import ServiceStats, service_stats

BRANCH_COLUMNS = ("branch", "manager", "tickets", "overdue_count", "resolved_count", "one_time_resolution_rate",
                  "mean_arrival_minutes", "arrival_within_sla_rate", "mean_restoration_minutes", "satisfaction_mean",
                  "unlocated_count", "flagged")


@dataclass(frozen=True)
class ReportFiles:
    summary_csv: Path
    branches_csv: Path
    html: Path


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def summary_rows(stats: ServiceStats, spots: list[Hotspot]) -> list[tuple[str, str, str, str]]:
    """(section, key, metric, value) rows: the long form of everything in the report."""
    rows: list[tuple[str, str, str, str]] = []
    for metric in ("ticket_count", "overdue_count", "resolved_count", "one_time_resolution_rate", "arrivals",
                   "mean_arrival_minutes", "p90_arrival_minutes", "arrival_within_sla_rate",
                   "mean_restoration_minutes", "p90_restoration_minutes", "satisfaction_mean", "satisfaction_count",
                   "unlocated_count"):
        rows.append(("overall", "", metric, _fmt(getattr(stats, metric), 4)))
    rows += [("kind", k, "tickets", str(n)) for k, n in sorted(stats.tickets_by_kind.items())]
    rows += [("channel", k, "tickets", str(n)) for k, n in sorted(stats.tickets_by_channel.items())]
    for area in stats.by_area_type:
        for metric, value in vars(area).items():
            if metric != "area_type":
                rows.append(("area_type", area.area_type, metric, _fmt(value, 4)))
    for branch in stats.by_branch:
        for metric in BRANCH_COLUMNS[1:]:
            rows.append(("branch", branch.branch, metric, _fmt(getattr(branch, metric), 4)))
    for rank, spot in enumerate(spots, 1):
        key = f"{rank}:{spot.branch}:{spot.category}:{spot.label}"
        rows += [("hotspot", key, "tickets", str(spot.ticket_count)), ("hotspot", key, "score", _fmt(spot.score, 2)),
                 ("hotspot", key, "previous", str(spot.previous_count)), ("hotspot", key, "trend", spot.trend)]
    return rows


def bar_chart(title: str, bars: list[tuple[str, float]], unit: str = "", marks: dict[str, float] | None = None,
              width: int = 460) -> str:
    """Horizontal bars as inline SVG; `marks` draws a commitment line per bar."""
    marks = marks or {}
    row, label_w, top = 26, 130, 28
    height = top + row * max(len(bars), 1) + 10
    biggest = max([v for _, v in bars] + list(marks.values()) + [1.0])
    scale = (width - label_w - 70) / biggest
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        w = max(value * scale, 0.5)
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" font-size="12" text-anchor="end">{html.escape(label)}'
                     f'</text><rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="16" fill="#2f6db5"/>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" font-size="11">{value:.0f}{unit}</text>')
        if label in marks:
            x = label_w + marks[label] * scale
            parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 22}" stroke="#c0392b" '
                         f'stroke-width="2"><title>commitment {marks[label]:.0f}{unit}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(stats: ServiceStats, spots: list[Hotspot], title: str) -> str:
    tiles = [("tickets", str(stats.ticket_count)), ("overdue now", str(stats.overdue_count)),
             ("one-time resolution", _pct(stats.one_time_resolution_rate)),
             ("on site within SLA", _pct(stats.arrival_within_sla_rate)),
             ("mean arrival", f"{_fmt(stats.mean_arrival_minutes) or '–'} min"),
             ("satisfaction", f"{_fmt(stats.satisfaction_mean, 2) or '–'} / 5"),
             ("without location", str(stats.unlocated_count))]
    kinds = bar_chart("Tickets by kind", sorted(stats.tickets_by_kind.items(), key=lambda kv: -kv[1]))
    arrival = bar_chart("Mean arrival vs commitment (red), minutes",
                        [(a.area_type, a.mean_arrival_minutes or 0.0) for a in stats.by_area_type], " min",
                        {a.area_type: float(a.arrival_commitment_minutes) for a in stats.by_area_type
                         if a.arrival_commitment_minutes})
    p90 = bar_chart("p90 arrival vs commitment (red), minutes",
                    [(a.area_type, a.p90_arrival_minutes or 0.0) for a in stats.by_area_type], " min",
                    {a.area_type: float(a.arrival_commitment_minutes) for a in stats.by_area_type
                     if a.arrival_commitment_minutes})
    overdue = bar_chart("Overdue tickets by branch", [(b.branch, float(b.overdue_count)) for b in stats.by_branch])
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in BRANCH_COLUMNS if c != "flagged")
    body = []
    for b in stats.by_branch:
        flag = ' class="flag" title="tickets without location counted here"' if b.flagged else ""
        body.append(f"<tr{flag}><td>{html.escape(b.branch)}</td><td>{html.escape(b.manager or '')}</td>"
                    f"<td>{b.tickets}</td><td>{b.overdue_count}</td><td>{b.resolved_count}</td>"
                    f"<td>{_pct(b.one_time_resolution_rate)}</td><td>{_fmt(b.mean_arrival_minutes)}</td>"
                    f"<td>{_pct(b.arrival_within_sla_rate)}</td><td>{_fmt(b.mean_restoration_minutes)}</td>"
                    f"<td>{_fmt(b.satisfaction_mean, 2)}</td><td>{b.unlocated_count}</td></tr>")
    spot_rows = "".join(
        f"<tr><td>{i}</td><td>{html.escape(s.label)}</td><td>{html.escape(s.branch)}</td><td>{s.category}</td>"
        f"<td>{s.ticket_count}</td><td>{s.previous_count}</td><td>{s.trend}</td></tr>"
        for i, s in enumerate(spots, 1))
    tile_html = "".join(f'<div class="tile"><div class="v">{html.escape(v)}</div><div>{html.escape(k)}</div></div>'
                        for k, v in tiles)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,"Noto Sans SC",sans-serif;margin:24px;color:#222;max-width:1000px}}
h1{{font-size:20px;margin:0 0 4px}} .sub{{color:#666;margin-bottom:16px}}
.tiles{{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:18px}}
.tile{{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:110px;font-size:12px;color:#555}}
.tile .v{{font-size:20px;color:#111;font-weight:600}}
.charts{{display:flex;flex-wrap:wrap;gap:18px}}
table{{border-collapse:collapse;font-size:12px;margin:10px 0 18px}} th,td{{border:1px solid #ddd;padding:3px 7px}}
th{{background:#f3f5f8}} tr.flag td{{background:#fff4e0}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<div class="sub">Tickets reported {stats.start:%Y-%m-%d %H:%M} – {stats.end:%Y-%m-%d %H:%M} UTC{
        f", branch {html.escape(stats.branch)}" if stats.branch else ""}</div>
<div class="tiles">{tile_html}</div>
<div class="charts">{kinds}{overdue}{arrival}{p90}</div>
<h2 style="font-size:16px">Branches</h2>
<table><tr>{head}</tr>{"".join(body)}</table>
<h2 style="font-size:16px">Hotspots</h2>
<table><tr><th>#</th><th>keyword</th><th>branch</th><th>kind</th><th>tickets</th><th>previous window</th>
<th>trend</th></tr>{spot_rows}</table>
</body></html>
"""


def write_report(session: Session, rules: ServiceRules, region: RegionConfig, settings: QualitySettings,
                 start: datetime | None, end: datetime | None, out_dir: Path, branch: str | None = None,
                 now: datetime | None = None, top: int = 15) -> ReportFiles:
    """Write `service_summary.csv`, `service_branches.csv` and `service_report.html` into `out_dir`."""
    window = window_of(start, end, now)
    stats = service_stats(session, rules, region, settings, window.start, window.end, branch=branch, now=now)
    index_keywords(session)
    days = max(1, round(window.days))
    spots = hotspots(session, region, settings, days=days, branch=branch, limit=top, now=window.end)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / "service_summary.csv", out_dir / "service_branches.csv",
                        out_dir / "service_report.html")
    with files.summary_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("section", "key", "metric", "value"))
        writer.writerows(summary_rows(stats, spots))
    with files.branches_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(BRANCH_COLUMNS)
        for b in stats.by_branch:
            writer.writerow([_fmt(getattr(b, c), 4) if c != "flagged" else str(b.flagged).lower()
                             for c in BRANCH_COLUMNS])
    title = f"Service quality {window.start:%Y-%m-%d} – {window.end:%Y-%m-%d}"
    files.html.write_text(render_html(stats, spots, title), encoding="utf-8")
    return files
