"""The reliability report of one platform over one month: uptime per action over measured time
only, incidents with their durations and uncertainty, detection time, the time the platform took
to acknowledge each, and what it never acknowledged — as a page (print-ready) and a CSV file.

URLs are paths, not query strings, so the public cache and the static copy key them as any page:
`/reports/<id>/<YYYY-MM>` and `…/<YYYY-MM>.csv` (id: report_id, never the platform's slug);
`/reports/<id>` (and `?month=YYYY-MM`)
redirects to a month, the last full one by default.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language
from django.views.decorators.http import require_safe

from detection.models import Component, Incident
from detection.uptime import UptimeBar, uptime_bars
from official import selectors as official
from probes.models import Platform
from statuspage.cache import cached

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in the page's time zone; Http404 if it is
    not a month or has not begun."""
    match = MONTH.match(month)
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2000:
        raise Http404("No such month.")
    year, number = int(match[1]), int(match[2])
    start = datetime(year, number, 1, tzinfo=_zone())
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=_zone())
    if start > timezone.now():
        raise Http404("That month has not come yet.")
    return start, end


def last_full_month(now: datetime) -> str:
    first = timezone.localtime(now, _zone()).date().replace(day=1) - timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


@dataclass
class ComponentLine:
    component: Component
    bar: UptimeBar

    @property
    def uptime(self) -> float | None:
        return self.bar.uptime

    @property
    def measured_s(self) -> float:
        return sum(d.counted_s for d in self.bar.days)

    @property
    def major_s(self) -> float:
        return sum(d.major_s for d in self.bar.days)

    @property
    def partial_s(self) -> float:
        return sum(d.partial_s for d in self.bar.days)


@dataclass
class IncidentLine:
    incident: Incident
    ack: official.Acknowledgement | None

    @property
    def duration_s(self) -> float | None:
        return self.incident.duration.total_seconds() if self.incident.resolved_at else None

    @property
    def detection_s(self) -> float:
        return self.incident.time_to_detect.total_seconds()

    @property
    def acknowledgement(self) -> str:
        """"acknowledged", "never" (resolved without), "not yet" (open without), "" (no source)."""
        if self.ack is None:
            return ""
        if self.ack.acknowledged:
            return "acknowledged"
        return "never" if self.incident.resolved_at else "not yet"


@dataclass
class Report:
    platform: Platform
    month: str
    start: datetime
    end: datetime
    components: list[ComponentLine]
    incidents: list[IncidentLine]
    unseen: list
    declared: bool  # the platform has an official source

    @property
    def public_id(self) -> str:
        return report_id(self.platform)

    @property
    def acknowledged_times(self) -> list[float]:
        return [max(0.0, line.ack.time_to_acknowledge_s) for line in self.incidents
                if line.acknowledgement == "acknowledged"]

    @property
    def median_acknowledge_s(self) -> float | None:
        times = self.acknowledged_times
        return median(times) if times else None

    @property
    def never_acknowledged(self) -> int:
        return sum(1 for line in self.incidents if line.acknowledgement == "never")


def report_build(*, platform: Platform, month: str, now: datetime | None = None) -> Report:
    """The report's rows, in a fixed number of queries. Uptime is detection.uptime's: measured time
    only (time with no data counts neither way; maintenance neither), over the month's days."""
    now = now or timezone.now()
    start, end = month_bounds(month)
    until = min(end - timedelta(microseconds=1), now)
    days = (timezone.localtime(until, _zone()).date() - start.date()).days + 1
    components = list(Component.objects.filter(probes__platform=platform).distinct().order_by("position", "name"))
    bars = uptime_bars(components, now=until, days=days) if components else {}
    incidents = list(Incident.objects.filter(platform=platform, started_at__gte=start, started_at__lt=end)
                     .order_by("started_at").prefetch_related("components"))
    acks = official.acknowledgements(incidents)
    source = official.sources([platform.id])
    unseen = [o for o in official.unseen_official_incidents(since=start, until=end, source_ids=[s.id for s in source])
              if o.first_seen_at >= start]
    return Report(platform=platform, month=month, start=start, end=end,
                  components=[ComponentLine(c, bars[c.id]) for c in components],
                  incidents=[IncidentLine(i, acks.get(i.id)) for i in incidents],
                  unseen=list(reversed(unseen)), declared=bool(source))


def report_id(platform: Platform) -> str:
    """The platform's id in report URLs: stable, 12 characters, and not its slug (a slug is
    configuration, never shown to the public; tests/statuspage/test_security.py)."""
    digest = hashlib.sha256(f"vigie-report:{platform.pk}:{settings.VIGIE_PUBLIC_URL}".encode()).digest()
    return "".join("abcdefghijklmnopqrstuvwxyz0123456789"[b % 36] for b in digest[:12])


def _platform(public: str) -> Platform:
    platform = next((p for p in Platform.objects.filter(enabled=True) if report_id(p) == public), None)
    if platform is None:
        raise Http404("No such platform.")
    return platform


@require_safe
def report_latest(request: HttpRequest, public: str) -> HttpResponse:
    """The last full month's report, or `?month=YYYY-MM`'s (not cached: it only redirects)."""
    platform = _platform(public)
    month = request.GET.get("month") or last_full_month(timezone.now())
    month_bounds(month)
    prefix = "" if get_language() == settings.LANGUAGE_CODE else f"/{get_language()}"
    return HttpResponseRedirect(f"{prefix}/reports/{report_id(platform)}/{month}")


@require_safe
@cached
def report_page(request: HttpRequest, public: str, month: str) -> HttpResponse:
    report = report_build(platform=_platform(public), month=month)
    return render(request, "statuspage/report.html", {"report": report, "now": timezone.now()})


def csv_cell(value) -> object:
    """A cell as written: text that a spreadsheet would run as a formula starts with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _iso(value: datetime | None) -> str:
    return timezone.localtime(value, _zone()).isoformat(timespec="seconds") if value else ""


def _number(value: float | None) -> int | str:
    """Whole seconds as a number (a negative one is a number, not text to guard)."""
    return "" if value is None else round(value)


CSV_HEADER = ["kind", "name", "started_at", "resolved_at", "duration_s", "uncertainty_s", "detection_s",
              "acknowledgement", "time_to_acknowledge_s", "official_incident", "official_url", "official_resolved_at",
              "uptime_percent", "measured_s", "major_outage_s", "partial_outage_s", "url"]


def report_csv_text(report: Report) -> str:
    """One row per component (uptime), per incident, and per official incident Vigie did not see."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    base = settings.VIGIE_PUBLIC_URL
    for line in report.components:
        uptime = f"{line.uptime * 100:.3f}" if line.uptime is not None else ""
        writer.writerow([csv_cell(v) for v in ["component", line.component.name, "", "", "", "", "", "", "", "", "",
                                               "", uptime, _number(line.measured_s), _number(line.major_s),
                                               _number(line.partial_s), ""]])
    for line in report.incidents:
        incident, ack = line.incident, line.ack
        writer.writerow([csv_cell(v) for v in [
            "incident", incident.title, _iso(incident.started_at), _iso(incident.resolved_at),
            _number(line.duration_s), _number(incident.duration_uncertainty_s), _number(line.detection_s),
            line.acknowledgement, _number(ack.time_to_acknowledge_s) if ack else "",
            ack.official_name if ack else "", ack.official_url if ack else "",
            _iso(ack.official_resolved_at) if ack else "", "", "", "", "", f"{base}/incidents/{incident.public_id}"]])
    for unseen in report.unseen:
        writer.writerow([csv_cell(v) for v in [
            "declared_not_seen", unseen.name, _iso(unseen.acknowledged_at),
            _iso(unseen.declared_resolved_at or unseen.resolved_seen_at), "", "", "", "", "", unseen.name,
            official.safe_url(unseen.url), "", "", "", "", "", ""]])
    return out.getvalue()


@require_safe
@cached
def report_csv(request: HttpRequest, public: str, month: str) -> HttpResponse:
    report = report_build(platform=_platform(public), month=month)
    response = HttpResponse(report_csv_text(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="vigie-report-{report.public_id}-{month}.csv"'
    return response
