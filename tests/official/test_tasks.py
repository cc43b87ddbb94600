"""The beat task claims each due source once, whoever else is claiming at the same time."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from official.models import OfficialSource
from official.state import official_sources_claim
from official.tasks import read_source

pytestmark = pytest.mark.django_db


def test_a_due_source_is_claimed_once_then_again_after_its_interval(platform):
    now = timezone.now()
    source = OfficialSource.objects.create(platform=platform, kind="statuspage", url=platform.base_url,
                                           poll_interval_s=60, next_poll_at=now - timedelta(seconds=1))
    assert official_sources_claim(now=now) == [source.id]
    assert official_sources_claim(now=now) == []  # a second worker at the same moment finds nothing due
    assert official_sources_claim(now=now + timedelta(seconds=59)) == []
    assert official_sources_claim(now=now + timedelta(seconds=60)) == [source.id]


def test_a_disabled_source_is_not_read(platform):
    OfficialSource.objects.create(platform=platform, kind="statuspage", url=platform.base_url, enabled=False,
                                  next_poll_at=timezone.now() - timedelta(minutes=5))
    assert official_sources_claim() == []


def test_the_read_task_reads_the_sandbox_page(platform):
    source = OfficialSource.objects.create(platform=platform, kind="statuspage", url=platform.base_url)
    assert read_source.apply(args=(source.id,)).get() == "none"
