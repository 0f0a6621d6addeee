"""One image's episode: scoring, the gymnasium env, search, the environments' workers."""
