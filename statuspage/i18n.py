"""The page's language: English at /…, French at /fr/…, chosen from Accept-Language and switchable.

Each language has its own URLs, so every page can be cached, published as a static file and
linked to. A reader's choice (the `?hl=` of the language switch) is kept in a cookie; without
one, a reader whose browser prefers French is sent from an English page to its French twin.
Documents for machines (JSON, feeds, badges) have one URL and are never redirected.
"""
from __future__ import annotations

import functools

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve
from django.utils import translation
from django.utils.cache import patch_vary_headers

COOKIE = "vigie_language"
PREFIXED = {code for code, _ in settings.LANGUAGES if code != settings.LANGUAGE_CODE}


def _language_of_path(path: str) -> str | None:
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in PREFIXED else None


# Asked on every request of an English page (about 45 µs a resolve); the URLconf does not change
# while the process runs. Bounded: the paths come from requests, any of them.
@functools.lru_cache(maxsize=1024)
def has_twin(path: str, language: str) -> bool:
    """Whether the page at `path` exists in `language` under its prefix (pages do, documents don't)."""
    with translation.override(language):
        try:
            resolve(f"/{language}{path}")
        except Resolver404:
            return False
    return True


def _preferred(request: HttpRequest) -> str:
    chosen = request.GET.get("hl") or request.COOKIES.get(COOKIE)
    if chosen in dict(settings.LANGUAGES):
        return chosen
    return translation.get_language_from_request(request, check_path=False)


class LanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = _language_of_path(request.path_info)
        if language is None and request.method in ("GET", "HEAD"):
            wanted = _preferred(request)
            if wanted in PREFIXED and has_twin(request.path_info, wanted):
                response = HttpResponseRedirect(f"/{wanted}{request.path_info}")
                patch_vary_headers(response, ("Accept-Language", "Cookie"))
                return self._remember(request, response)
        language = language or settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        response.setdefault("Content-Language", language)
        if language == settings.LANGUAGE_CODE and any(has_twin(request.path_info, code) for code in PREFIXED):
            patch_vary_headers(response, ("Accept-Language", "Cookie"))
        translation.deactivate()
        return self._remember(request, response)

    @staticmethod
    def _remember(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        chosen = request.GET.get("hl")
        if chosen in dict(settings.LANGUAGES):
            response.set_cookie(COOKIE, chosen, max_age=365 * 86400, samesite="Lax")
        return response


def lowercase_french_months() -> None:
    """French writes month abbreviations in lower case mid-sentence ("5 déc 2026"); Django's `M`
    date format title-cases them in every language ("Déc"). Every date on the pages goes through
    `M`, so it is corrected there, once, for French only."""
    from django.utils import dateformat
    from django.utils.translation import get_language

    original = dateformat.DateFormat.M
    if getattr(original, "vigie_french_lower", False):
        return

    def month_abbreviation(self):
        text = original(self)
        return text.lower() if (get_language() or "").startswith("fr") else text

    month_abbreviation.vigie_french_lower = True
    dateformat.DateFormat.M = month_abbreviation
