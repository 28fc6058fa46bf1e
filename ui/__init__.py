"""The app layer shared by the pages: session state and caches (`state`), Plotly figures (`charts`), widgets
(`widgets`)."""
