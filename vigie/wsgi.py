"""WSGI entry point for gunicorn or any WSGI server."""
import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigie.settings")
from statuspage.cache import front  # noqa: E402 (after the settings module is named)

# Pages Django has just served from the public cache are served again by `front` until they change.
application = front(get_wsgi_application())
# What a worker loaded at start (Django, Vigie, their modules: ~100,000 objects) stays for its
# life: out of the garbage collector's full passes, which otherwise walk all of it during renders.
gc.collect()
gc.freeze()
