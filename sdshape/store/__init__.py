"""The results store: result files indexed in SQLite or PostgreSQL (issue: regression tracking at fleet scale)."""
