"""Vendor formats in and out: each adapter maps one vendor's payloads onto the core services."""
