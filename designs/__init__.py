"""Complete top-level designs: cores, buffers, register map and transport bridges."""
