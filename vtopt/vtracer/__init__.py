"""VTracer itself: its parameters, images, one conversion, synthetic images (imports nothing else of vtopt's but errors/files)."""
