"""An MCP server over the REST API, for AI agents and copilots: `handoff mcp`.

Needs the `mcp` extra (`pip install 'handoff[mcp]'`).
"""
