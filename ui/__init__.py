"""The Streamlit app's pages and their shared state (only the app imports streamlit)."""
