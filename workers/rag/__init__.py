"""The question path's core: chunking, embedding, sparse vectors, the index, retrieval and fusion,
prompts, the chat model and answers."""
