"""The Streamlit app's building blocks: the only package besides `app.py` that imports streamlit.

`navigation` lists the pages (one module each under `pages/`), `cache` holds every caching
wrapper, `state` the small per-session state (workspace path, basket ids), `guard` turns errors
into readable messages, `gallery` draws thumbnail grids, `map_figure` builds the 2-D map.
"""
