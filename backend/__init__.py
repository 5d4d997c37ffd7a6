"""Latent Lab backend: pure Python/torch, never imports streamlit.

One package per method (slots, video, cells, apt, causal, disentangle) plus `core`, the shared
machinery (device, seeding, checkpoint registry, progress protocol, model cache, upload checks).
"""

__version__ = "0.1.0"
