"""Database access: engine, sessions and tables."""
