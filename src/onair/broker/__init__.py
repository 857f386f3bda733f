"""broker layer (see DESIGN.md)."""
