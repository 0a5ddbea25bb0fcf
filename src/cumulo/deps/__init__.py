"""Function dependencies: a package's ``requirements.txt`` checked (:mod:`.requirements`),
resolved and installed by a fast installer (:mod:`.installer`, uv) with the host's pip index
settings (:mod:`.indexes`), into read-only environments shared by content
(:mod:`.environments`). The engine's :mod:`cumulo.engine.builds` drives them."""
