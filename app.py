"""curate's browser app: `streamlit run app.py -- --workspace WS` (or `curate app -w WS`).

Thin on purpose: parse the workspace, set up the page, hand over to the pages in `curate/ui/`.
"""
import os
import sys

import streamlit as st

from curate.ui import access, navigation, state

st.set_page_config(page_title="curate", page_icon=":material/photo_library:", layout="wide")
if not access.signed_in():  # a password is set (`curate app` on a shared address) and this session has not signed in
    st.stop()
state.init_workspace(state.workspace_from_args(sys.argv[1:], os.environ))
page = st.navigation(navigation.pages())
navigation.sidebar()
page.run()
