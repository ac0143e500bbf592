"""The shared kernel: what every app may import and that imports no app (only the standard library)."""
