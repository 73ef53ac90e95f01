"""One module per app page. Streamlit runs each file as a script (`__name__ == "__main__"`)."""
