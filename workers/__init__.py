"""Celery tasks and the RAG pipeline: chunk, embed, index, retrieve, prompt, answer."""
