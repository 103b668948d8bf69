# gunicorn settings of the Flask BASELINE (not part of dynagate).
#
# The usual recommendation for sync workers: 2 x cores + 1 worker processes
# (5 on a 2-core machine). Sync workers handle one request at a time each and
# close the connection after each response (no keep-alive), which is how the
# articles deploy Flask behind gunicorn. GUNICORN_WORKERS overrides the count.
#
# GUNICORN_WORKER_CLASS=gthread runs the other common deployment: the same
# worker processes, each with GUNICORN_THREADS threads (default 4) that keep
# connections alive (gunicorn's keepalive, 2 s by default), so a thread
# waiting on DynamoDB or Redis does not hold the whole process and a client
# does not reconnect per request.
import multiprocessing
import os

bind = os.environ.get("BIND_ADDR", "127.0.0.1:5000")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
if worker_class == "gthread":
    threads = int(os.environ.get("GUNICORN_THREADS", 4))
backlog = 2048
timeout = 30
graceful_timeout = 5
accesslog = None
errorlog = "-"
loglevel = "warning"
