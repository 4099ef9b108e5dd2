"""One router per area: health and metrics, the model, scoring."""
