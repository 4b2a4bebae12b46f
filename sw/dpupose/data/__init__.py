"""Data: MPII and synthetic pose records, crops and augmentation (numpy/OpenCV; torch only in dataset.py)."""
