"""The Celery application: configuration comes from Django settings (CELERY_* names)."""
import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# filesystem:// (the embedded default) is kombu's transport with atomic writes; see statuspage/broker.py.
TRANSPORT_ALIASES["filesystem"] = "statuspage.broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")

app = Celery("vigie")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
