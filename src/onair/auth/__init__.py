"""auth layer (see DESIGN.md)."""
