"""The offline evaluation report (``report.json`` and a self-contained ``report.html``)."""
