"""The users API, the way the Flask articles build it: a BASELINE for
dynagate's benchmarks, not part of the library.

Flask + Flask-Limiter (Redis storage, per API key, else per client IP) + a
per-IP Redis counter in front of everything + boto3 with the SDK's standard
retry mode and the application's own exponential backoff around DynamoDB
calls. Same routes, status codes and error shape as dynagate's users API for
the parts the benchmark drives (POST /api/v1/users, GET /api/v1/users/<id>),
against the same `users` and `api_keys` tables (keys checked by SHA-256 hash).

Served by gunicorn: see gunicorn.conf.py. Settings come from the environment:
AWS_ENDPOINT_URL / AWS_REGION / credentials (boto3 reads them itself),
REDIS_URL, USERS_TABLE, API_KEYS_TABLE, IP_PER_MINUTE, LIMITER_PREFIX.
"""

import hashlib
import hmac
import os
import random
import re
import time

import boto3
import redis
from botocore.config import Config
from botocore.exceptions import ClientError
from flask import Flask, g, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
USERS_TABLE = os.environ.get("USERS_TABLE", "users")
API_KEYS_TABLE = os.environ.get("API_KEYS_TABLE", "api_keys")
IP_PER_MINUTE = int(os.environ.get("IP_PER_MINUTE", "3000"))
LIMITER_PREFIX = os.environ.get("LIMITER_PREFIX", "flask:")

# boto3 as the articles configure it: the SDK's standard retry mode (3
# attempts), a connection pool per process, and below, the application's own
# backoff loop for throttling on top of it.
BOTO_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=10,
)
# boto3 reads AWS_DEFAULT_REGION; the Rust SDK and the stack's env use AWS_REGION.
REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
dynamodb = boto3.resource("dynamodb", region_name=REGION, config=BOTO_CONFIG)
users = dynamodb.Table(USERS_TABLE)
api_keys = dynamodb.Table(API_KEYS_TABLE)
redis_client = redis.Redis.from_url(REDIS_URL, socket_timeout=0.5)

THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
}
MAX_TRIES = 5
BASE_DELAY = 0.05
MAX_DELAY = 2.0


def with_backoff(call, *args, **kwargs):
    """Exponential backoff with full jitter on throttling (the articles' loop)."""
    for attempt in range(MAX_TRIES):
        try:
            return call(*args, **kwargs)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code not in THROTTLED or attempt == MAX_TRIES - 1:
                raise
            time.sleep(random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2**attempt)))
    raise AssertionError("unreachable")


def error(status, code, message):
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


app = Flask(__name__)

# API keys: looked up by SHA-256 hash in the api_keys table and cached per
# process for 30 s, as dynagate's example does.
KEY_RE = re.compile(r"^dg_[0-9a-fA-F]{64}$")
KEY_CACHE_SECONDS = 30.0
_key_cache = {}


def lookup_key(api_key):
    if not KEY_RE.match(api_key):
        return None
    key_hash = hashlib.sha256(api_key.encode()).hexdigest()
    cached = _key_cache.get(key_hash)
    if cached and time.monotonic() - cached[0] < KEY_CACHE_SECONDS:
        return cached[1]
    item = with_backoff(api_keys.get_item, Key={"key_hash": key_hash}).get("Item")
    record = None
    if item and hmac.compare_digest(item["key_hash"], key_hash):
        record = {
            "id": key_hash[:16],
            "limit": f"{int(item['per_second'])}/second;{int(item['per_day'])}/day",
        }
    if len(_key_cache) > 10_000:
        _key_cache.clear()
    _key_cache[key_hash] = (time.monotonic(), record)
    return record


@app.before_request
def per_ip_counter_and_key():
    if request.endpoint == "healthz":
        return None
    # The per-IP counter of the articles: INCR + EXPIRE on a one-minute
    # window, in one round trip (MULTI/EXEC pipeline).
    ip = get_remote_address()
    window = int(time.time() // 60)
    pipe = redis_client.pipeline()
    counter = f"{LIMITER_PREFIX}ip:{ip}:{window}"
    pipe.incr(counter)
    pipe.expire(counter, 60)
    count, _ = pipe.execute()
    if count > IP_PER_MINUTE:
        response = error(429, "rate_limited", "too many requests from this address")
        response.headers["Retry-After"] = str(60 - int(time.time()) % 60)
        return response
    api_key = request.headers.get("X-API-Key")
    g.api_key = lookup_key(api_key) if api_key else None
    if g.api_key is None:
        return error(401, "unauthorized", "send a valid API key in X-API-Key")
    return None


def rate_limit_key():
    return f"key:{g.api_key['id']}" if g.get("api_key") else f"ip:{get_remote_address()}"


def key_limits():
    return g.api_key["limit"] if g.get("api_key") else "10/second;1000/day"


# Registered after the key check above, so the limiter sees g.api_key.
limiter = Limiter(
    rate_limit_key,
    app=app,
    storage_uri=REDIS_URL,
    strategy="fixed-window",
    key_prefix=LIMITER_PREFIX,
    headers_enabled=True,
    default_limits=[key_limits],
)


@app.errorhandler(429)
def too_many(exc):
    return error(429, "rate_limited", str(exc.description))


USER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$")


@app.post("/api/v1/users")
def create_user():
    if not request.is_json:
        return error(415, "unsupported_media_type", "send application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or set(body) != {"user_id", "email", "name"}:
        return error(400, "invalid_input", "the body must be {user_id, email, name}")
    user_id, email, name = body["user_id"], body["email"], body["name"]
    if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
        return error(400, "invalid_input", "user_id must be 1 to 64 of A-Z a-z 0-9 _ -")
    if not isinstance(email, str) or len(email) > 254 or not EMAIL_RE.match(email):
        return error(400, "invalid_input", "email is not a plausible address")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        return error(400, "invalid_input", "name must be 1 to 100 characters")
    user = {"user_id": user_id, "email": email, "name": name, "version": 1}
    try:
        with_backoff(
            users.put_item,
            Item=user,
            ConditionExpression="attribute_not_exists(user_id)",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return error(409, "conflict", f"user `{user_id}` already exists")
        return error(503, "unavailable", "DynamoDB is unavailable, retry later")
    response = jsonify(user)
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/users/{user_id}"
    response.headers["ETag"] = '"1"'
    return response


@app.get("/api/v1/users/<user_id>")
def get_user(user_id):
    if not USER_ID_RE.match(user_id):
        return error(400, "invalid_input", "user_id must be 1 to 64 of A-Z a-z 0-9 _ -")
    try:
        item = with_backoff(
            users.get_item, Key={"user_id": user_id}, ConsistentRead=True
        ).get("Item")
    except ClientError:
        return error(503, "unavailable", "DynamoDB is unavailable, retry later")
    if item is None:
        return error(404, "not_found", f"no user `{user_id}`")
    version = int(item.get("version", 1))
    response = jsonify(
        user_id=item["user_id"], email=item["email"], name=item["name"], version=version
    )
    response.headers["ETag"] = f'"{version}"'
    return response


@app.get("/healthz")
@limiter.exempt
def healthz():
    return jsonify(status="ok")
