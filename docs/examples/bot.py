"""A chatbot: records the chat, then asks for a human and hands out a continuation code."""

import asyncio
import os
from datetime import UTC, datetime

from handoff.client import HandoffClient


def now() -> str:
    return datetime.now(UTC).isoformat()


async def main() -> None:
    visitor = {"identities": [{"kind": "chat", "value": "visitor-42"}]}
    async with HandoffClient(os.environ["HANDOFF_URL"], os.environ["HANDOFF_BOT_KEY"]) as bot:
        # Turn ids are yours: posting the same turn again (a retry) adds nothing.
        await bot.append_turns("web-7f3a", {
            "customer": visitor, "channel": "chat", "source": "acme-bot",
            "turns": [
                {"id": "t1", "role": "customer", "text": "I was charged twice", "ts": now()},
                {"id": "t2", "role": "bot", "text": "Which order?", "ts": now()},
                {"id": "t3", "role": "customer", "text": "A-1001. Let me talk to a human",
                 "ts": now()},
            ],
            "facts": {"order_number": "A-1001"}})
        # Retried on 429/503 with one Idempotency-Key: never two hand-offs for one request.
        handoff = await bot.request_handoff({
            "customer": visitor, "conversation_id": "web-7f3a", "reason": "customer_request",
            "priority": 2, "queue": "billing", "summary": "Charged twice for order A-1001",
            "continuation": True})
        await bot.append_turns("web-7f3a", {"turns": [{
            "id": "t4", "role": "bot", "ts": now(),
            "text": f"Call 0800 123 456 and enter {handoff.continuation_code}"}]})
        print(f"hand-off {handoff.id} {handoff.status}, code {handoff.continuation_code}")


asyncio.run(main())
