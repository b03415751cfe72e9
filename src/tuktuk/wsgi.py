"""The WSGI application every server runs (gunicorn or granian, tuktuk.wsgi:application).

The M-Pesa callbacks, the SMS delivery reports and /health go through a short middleware
chain (no sessions, auth, messages or CSRF); every other path through settings.MIDDLEWARE
(tuktuk.backoffice.webhook_wsgi)."""

import os

from tuktuk.backoffice.server import redact_granian_access_log
from tuktuk.backoffice.webhook_wsgi import wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuktuk.settings")
application = wsgi_application()
# Under granian, its access log is written in this process: the token must not reach it.
redact_granian_access_log()
