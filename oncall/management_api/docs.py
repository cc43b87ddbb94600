"""/api/docs/: a plain page that points to the schema and the browsable API (no CDN assets)."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_safe

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigie management API</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}}
code,pre{{background:#f4f4f4;padding:.1rem .3rem}}</style></head>
<body><h1>Vigie management API</h1>
<p>The API lives under <a href="{api}">{api}</a> (DRF's browsable API; send your token).
Its OpenAPI 3 schema: <a href="{schema}">{schema}</a> (YAML) or
<a href="{schema}?format=json">{schema}?format=json</a>; open it in any OpenAPI viewer.</p>
<h2>Tokens</h2>
<pre>python manage.py apitoken create "on-call bot" --scope write
python manage.py apitoken list
python manage.py apitoken revoke PREFIX</pre>
<p>Send a token as <code>Authorization: Bearer vigie_…</code>. A <code>read</code> token reads
everything; writing needs a <code>write</code> token (otherwise 403). A missing, unknown or revoked
token gets 401.</p>
</body></html>
"""


@require_safe
def docs(request: HttpRequest) -> HttpResponse:
    return HttpResponse(format_html(PAGE, api=reverse("api-root"), schema=reverse("api-schema")))
