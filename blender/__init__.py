"""bpy-only helpers for the operators and panels."""
