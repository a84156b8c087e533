"""Storage: tables, engine and session factories, the embedded PostgreSQL launcher."""
