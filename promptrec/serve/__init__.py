"""`promptrec serve`: an HTTP service whose recommendations see each posted event at once.

store (SQLite, WAL) -> service (retriever with live events, LLM queue, deadline fallback) -> app (FastAPI).
"""
