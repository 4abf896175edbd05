"""The domain: identity, conversations, facts, verification, hand-offs, codes, the brief."""
