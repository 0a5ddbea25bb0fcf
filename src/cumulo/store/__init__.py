"""The store: source of truth and durable queue. ``base`` holds the seams, ``sql`` the one
implementation (SQLAlchemy Core on SQLite or PostgreSQL)."""
