"""Reading: extracting answer spans from passages."""
