"""`promptrec serve`: an HTTP service whose recommendations see each posted event at once.

store (SQLite file, or PostgreSQL shared by replicas; ``stores.open_event_store``) -> service (retriever
with live events, LLM queue, deadline fallback) -> app (FastAPI).
"""
