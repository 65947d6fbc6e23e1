"""The web app. Gradio's telemetry and version check stay off: the app runs on intranets."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
