"""dibr-studio: the Qt application for live inverse rendering on top of render_core."""
