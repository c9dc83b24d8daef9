"""PostgreSQL sink: calls, final segments with sentiment, assist events."""
