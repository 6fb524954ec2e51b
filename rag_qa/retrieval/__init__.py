"""Retrieval: BM25, dense (encoder + FAISS), their fusion, and the index on disk."""
