"""After deployment: drift between traffic and the training rows (``drift``)."""
