"""Fine-tuning jobs: the extractive reader and the dense encoder."""
