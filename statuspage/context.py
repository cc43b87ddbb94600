"""What every public page's template knows: the page's name, time zone and language prefix."""
from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import get_language

from statuspage.i18n import PREFIXED


def site(request: HttpRequest) -> dict:
    language = get_language()
    return {
        "page_name": settings.VIGIE_PAGE_NAME,
        "time_zone": settings.TIME_ZONE,
        "lang_prefix": f"/{language}" if language in PREFIXED else "",
    }
