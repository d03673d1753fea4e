"""Worker-side publishing of health and metrics, and the status server that reads them."""
