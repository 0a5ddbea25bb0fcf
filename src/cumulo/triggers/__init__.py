"""Trigger kinds, one module each (``timer``), and the per-node ``scheduler`` that fires
the timers. Triggers are kept by ``cumulo.engine.triggers``."""
