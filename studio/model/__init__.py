"""The studio's Qt-free half: session state, storage, autosave, undo, the fit process,
photos, files. Imports no Qt, pyqtgraph or moderngl (checked by import-linter)."""
