"""The studio's Qt half: window, viewport, panels, worker thread. Uses studio.model and
render_core's public API only."""
