"""Collab Studio's engine: read ratings, train collaborative-filtering models, analyse and store them.

Headless by design: nothing here imports Streamlit or Plotly, so the same code runs in tests, from the CLI
(`python -m cf_core`) and on a GPU box.
"""

__version__ = "0.1.0"
