"""How many chat sockets each person has open, counted across the workers.

With Redis (REDIS_URL) each person has a sorted set of open sockets: the
socket's channel name, scored with when its entry expires. Every worker
renews the entries of its own sockets each RENEW_SECONDS, so the sockets of a
worker that was killed drop out of the count after TTL_SECONDS. Without Redis
there is one process, and its own record is the count.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

import redis.asyncio as redis
from django.conf import settings

log = logging.getLogger(__name__)

TTL_SECONDS = 60.0
RENEW_SECONDS = 20.0

# Atomic, so that two workers can't both take the last place: drop the
# expired entries, count, add this socket when there is room.
_TAKE_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

# This process's open sockets, by user id.
_here: dict[int, set[str]] = {}
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.Redis] = (
    weakref.WeakKeyDictionary()
)
_renewers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


async def take_place(user_id: int, socket: str) -> bool:
    """Count ``socket`` as one of the person's open sockets; False when they have too many."""
    limit = settings.GLMWEB_MAX_SOCKETS_PER_USER
    if settings.REDIS_URL:
        now = time.time()
        try:
            taken = await _client().eval(  # type: ignore[misc]  # typed for sync and async clients
                _TAKE_PLACE,
                1,
                _key(user_id),
                now,
                now + TTL_SECONDS,
                limit,
                socket,
                int(TTL_SECONDS * 1000),
            )
        except redis.RedisError:
            # The cap is not worth refusing every socket while Redis is away.
            log.warning("socket not counted: Redis unavailable", exc_info=True)
            taken = 1
        if not taken:
            return False
    elif len(_here.get(user_id, ())) >= limit:
        return False
    _here.setdefault(user_id, set()).add(socket)
    if settings.REDIS_URL:
        _keep_renewing()
    return True


async def give_place(user_id: int, socket: str) -> None:
    sockets = _here.get(user_id, set())
    sockets.discard(socket)
    if not sockets:
        _here.pop(user_id, None)
    if settings.REDIS_URL:
        try:
            await _client().zrem(_key(user_id), socket)
        except redis.RedisError:
            log.warning("socket not uncounted: Redis unavailable", exc_info=True)


def _key(user_id: int) -> str:
    return f"{settings.REDIS_PREFIX}:sockets:{user_id}"


def _client() -> redis.Redis:
    # A client's connections belong to the event loop they were made on.
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = redis.Redis.from_url(settings.REDIS_URL)
    return _clients[loop]


def _keep_renewing() -> None:
    loop = asyncio.get_running_loop()
    renewer = _renewers.get(loop)
    if renewer is None or renewer.done():
        _renewers[loop] = loop.create_task(_renew_while_open(), name="socket-counts")


async def _renew_while_open() -> None:
    while _here:
        await asyncio.sleep(RENEW_SECONDS)
        try:
            await renew()
        except redis.RedisError:
            log.warning("socket counts not renewed", exc_info=True)


async def renew() -> None:
    """Push back the expiry of this process's sockets (not of ones closed meanwhile)."""
    expires = time.time() + TTL_SECONDS
    async with _client().pipeline(transaction=False) as pipe:
        for user_id, sockets in list(_here.items()):
            if sockets:
                pipe.zadd(_key(user_id), dict.fromkeys(sockets, expires), xx=True)
                pipe.pexpire(_key(user_id), int(TTL_SECONDS * 1000))
        await pipe.execute()
