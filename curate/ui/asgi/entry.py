"""What `curate app` serves: app.py on Streamlit's own ASGI server, behind curate's sign-in gate.

`streamlit run curate/ui/asgi/entry.py -- --workspace WS` finds the `st.App` below and serves it with
uvicorn; every request, the websocket included, passes `curate.ui.gate.SignInGate` first. This file sits
alone in its folder because Streamlit puts the folder of the file it runs on `sys.path`.
"""
import os
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from curate.ui.gate import GateConfig, SignInGate, sso_providers

gate = GateConfig.from_env(os.environ, sso_providers(st.secrets.get("auth") if st.secrets.load_if_toml_exists() else None))
app = st.App(Path(__file__).resolve().parents[3] / "app.py", middleware=[Middleware(SignInGate, config=gate)])
