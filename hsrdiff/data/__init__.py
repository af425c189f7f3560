"""Data stages: download, prepare, the demo generator, degradation files and training patches."""
