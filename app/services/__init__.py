"""Service functions: keyword-only arguments, `flush()` only; callers commit."""
