"""realtime layer (see DESIGN.md)."""
