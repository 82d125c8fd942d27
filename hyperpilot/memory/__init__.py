"""Trial memory over chromadb."""
