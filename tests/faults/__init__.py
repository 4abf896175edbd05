"""Fault drills against a real `handoff serve` process: crashes, shutdowns, a soak."""
