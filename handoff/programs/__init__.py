"""The command line: `handoff serve|keys|demo|doctor|context|tail|mcp` and their helpers."""
