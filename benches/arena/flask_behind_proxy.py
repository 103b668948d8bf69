"""The Flask baseline as it is deployed behind one trusted reverse proxy:
werkzeug's ProxyFix takes the client address from the last X-Forwarded-For
hop, so Flask-Limiter's and the per-IP counter's `request.remote_addr` is the
client the proxy saw, as dynagate's TRUSTED_PROXIES does for the users API.

    gunicorn -c ../compare/flask_baseline/gunicorn.conf.py \
        --pythonpath ../compare/flask_baseline flask_behind_proxy:app

The baseline itself (benches/compare/flask_baseline/app.py) is unchanged.
"""

from werkzeug.middleware.proxy_fix import ProxyFix

from app import app

app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)
