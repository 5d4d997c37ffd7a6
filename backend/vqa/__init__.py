"""Visual question answering over frozen representations of sprites scenes (issue 23)."""
