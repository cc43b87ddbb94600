"""WSGI entry point for gunicorn or any WSGI server."""
import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")
application = get_wsgi_application()
# What a worker loaded at start (Django, Vigie, their modules: ~100,000 objects) stays for its
# life: out of the garbage collector's full passes, which otherwise walk all of it during renders.
gc.collect()
gc.freeze()
