"""Reading files into documents and cutting documents into passages."""

from rag_qa.ingest.chunking import chunk_document
from rag_qa.ingest.readers import IngestReport, iter_documents, iter_file_documents, iter_files, read_file

__all__ = ["IngestReport", "chunk_document", "iter_documents", "iter_file_documents", "iter_files", "read_file"]
