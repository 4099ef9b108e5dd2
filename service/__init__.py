"""The HTTP scoring service (FastAPI). It holds no ML logic: it calls VAEDetector.score_frame."""
