"""Sans-I/O core of the Supabase Realtime protocol: bytes and time in, messages and bytes out.

Nothing in this package does I/O or reads a clock (tests/realtime/test_protocol_imports.py checks
the imports).
"""
