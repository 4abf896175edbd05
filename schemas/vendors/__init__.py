"""Vendor payloads as each vendor names them; unknown fields are ignored (vendors add fields)."""
