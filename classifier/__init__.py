"""The report classifier: jieba segmentation + keyword rules kept as data. Imports nothing of the app."""
