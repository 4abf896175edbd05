"""Who may do what, and how often: API keys, continuation codes and windowed counters."""

from __future__ import annotations

from typing import Any

from handoff.kernel.memo import Memo
from handoff.store import codec, keys
from handoff.store.connection import Client, map_exceptions
from handoff.store.keys import Digester
from handoff.store.notices import Notices
from handoff.store.operations import operations


@operations()
class Access:
    """API keys (remembered briefly, forgotten everywhere at once when revoked), single-use
    continuation codes, and counters of attempts and of re-asks."""

    def __init__(self, client: Client, digester: Digester, notices: Notices) -> None:
        self.client: Any = client
        self.digester = digester
        self._api_keys: Memo[str, dict[str, str]] = Memo(size=10_000, ttl=5.0)
        # A key id names one secret digest for good (rotating makes a new id): kept long.
        self._key_digests: Memo[str, str] = Memo(size=10_000, ttl=3600.0)
        notices.drop_from("key", self._api_keys)

    # -- continuation codes ----------------------------------------------------------------------

    async def put_code(self, tenant: str, code: str, record: dict[str, Any], ttl_ms: int) -> bool:
        with map_exceptions():
            return bool(await self.client.set(keys.code(tenant, code), codec.pack(record),
                                              px=ttl_ms, nx=True))

    async def take_code(self, tenant: str, code: str) -> dict[str, Any] | None:
        """Single use: the code is gone once read."""
        with map_exceptions():
            record: dict[str, Any] | None = codec.unpack(
                await self.client.getdel(keys.code(tenant, code)))
        return record

    async def drop_codes(self, tenant: str, codes: list[str]) -> None:
        """Codes no one may redeem any more, whoever holds them."""
        with map_exceptions():
            for code in codes:
                await self.client.delete(keys.code(tenant, code))

    # -- counters --------------------------------------------------------------------------------

    async def reserve(self, counters: list[tuple[str, int]]) -> list[int]:
        """Increment windowed counters (name, ttl_ms) in one round trip; their new values."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for name, ttl in counters:
                    pipe.incr(name)
                    pipe.pexpire(name, ttl, nx=True)
                out = await pipe.execute()
        return [int(v) for v in out[::2]]

    async def release(self, names: list[str]) -> None:
        """Give back what `reserve` took (the attempt did not count)."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.decr(name)
                await pipe.execute()

    async def ttl_ms(self, name: str) -> int:
        with map_exceptions():
            return int(await self.client.pttl(name))

    def wrong_codes_key(self, tenant: str, source: str, window: int) -> str:
        """Wrong continuation codes from one key or address in one minute."""
        return keys.rate(tenant, f"codefail:{self.digester.digest(source)}", window)

    def auth_failures_key(self, address: str, window: int) -> str:
        return keys.auth_failures(self.digester.digest(address), window)

    def code_failures_key(self, tenant: str, conversation_id: str) -> str:
        return keys.code_failures(tenant, self.digester.digest(conversation_id))

    def caller_failures_key(self, tenant: str, identity: str) -> str:
        """Wrong continuation codes from one caller (an identity key), over all its calls."""
        return keys.caller_failures(tenant, self.digester.digest(identity))

    async def forget_failures(self, tenant: str, *, conversations: list[str],
                              callers: list[str]) -> None:
        """Drop the wrong-code counts of conversations and of callers (identity keys)."""
        with map_exceptions():
            for conversation in conversations:
                await self.client.delete(self.code_failures_key(tenant, conversation))
            for caller in callers:
                await self.client.delete(self.caller_failures_key(tenant, caller))

    async def reask_counts(self, tenant: str) -> dict[str, int]:
        """Re-asks by topic since the tenant began (counted by KpiStore.reasked)."""
        with map_exceptions():
            raw = await self.client.hgetall(keys.reasks(tenant))
        return {k.decode(): int(v) for k, v in raw.items()}

    # -- API keys --------------------------------------------------------------------------------

    async def put_api_key(self, secret_digest: str, record: dict[str, str]) -> None:
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(keys.api_key(secret_digest), mapping=record)
                pipe.hset(keys.key_ids(), record["id"], secret_digest)
                pipe.sadd(keys.tenant_keys(record["tenant"]), record["id"])
                pipe.sadd(keys.tenants(), record["tenant"])
                await pipe.execute()

    async def get_api_key(self, secret_digest: str) -> dict[str, str]:
        """A key's record; known keys are remembered for a few seconds (and forgotten at once
        when revoked: see `Notices`)."""
        cached = self._api_keys.get(secret_digest)
        if cached is not None:
            return cached
        with map_exceptions():
            record = codec.text_hash(await self.client.hgetall(keys.api_key(secret_digest)))
        if record:
            self._api_keys.set(secret_digest, record)
        return record

    async def api_key_digest(self, key_id: str) -> str | None:
        cached = self._key_digests.get(key_id)
        if cached is not None:
            return cached
        with map_exceptions():
            digest = codec.text(await self.client.hget(keys.key_ids(), key_id))
        if digest:
            self._key_digests.set(key_id, digest)
        return digest

    async def update_api_key(self, secret_digest: str, fields: dict[str, str]) -> None:
        with map_exceptions():
            await self.client.hset(keys.api_key(secret_digest), mapping=fields)

    async def list_api_keys(self, tenant: str) -> list[dict[str, str]]:
        with map_exceptions():
            ids = sorted(i.decode() for i in await self.client.smembers(keys.tenant_keys(tenant)))
            if not ids:
                return []
            digests = await self.client.hmget(keys.key_ids(), ids)
            async with self.client.pipeline(transaction=False) as pipe:
                for digest in digests:
                    pipe.hgetall(keys.api_key(digest.decode()) if digest else keys.key_ids())
                raw = await pipe.execute()
        return [codec.text_hash(r) for r, d in zip(raw, digests, strict=True) if d and r]
