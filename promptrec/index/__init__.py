"""Item text -> sentence-transformers embeddings -> FAISS, persisted under indexes/."""
