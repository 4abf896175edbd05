"""An agent desk: takes the most urgent hand-off, shows the brief, greets the customer and
follows the conversation live until the customer answers."""

import asyncio
import os
from datetime import UTC, datetime

from handoff.client import ConflictError, HandoffClient


async def main() -> None:
    async with HandoffClient(os.environ["HANDOFF_URL"], os.environ["HANDOFF_AGENT_KEY"],
                             agent_id="agent-7") as desk:
        async for handoff in desk.iter_handoffs(queue="billing"):
            try:
                taken = await desk.accept(handoff.id, "agent-7")
                break
            except ConflictError:
                continue  # another agent was quicker: take the next one
        else:
            print("the queue is empty")
            return
        brief = taken.context
        print(f"accepted {taken.handoff.id}: {brief.summary}")
        print("do not ask for:", ", ".join(brief.do_not_ask))
        for key, fact in brief.facts.items():
            print(f"  {key} = {fact.value}")

        customer = brief.customer.id
        async with desk.events(customer) as events:  # open before speaking: nothing is missed
            await desk.append_turns(taken.handoff.conversation_id or "desk", {"turns": [{
                "id": f"{taken.handoff.id}-hello", "role": "agent",
                "text": "Hi, I can see the double charge on A-1001. Let me fix it.",
                "ts": datetime.now(UTC).isoformat()}]})
            print("waiting for the customer", flush=True)
            async for event in events:
                turn = event.record
                if event.type == "turn.appended" and turn.get("role") == "customer":
                    print(f"customer: {turn['text']}")
                    break
        resolved = await desk.resolve(taken.handoff.id, agent_id="agent-7", note="refunded")
        print(f"{resolved.id} {resolved.status}")


asyncio.run(main())
