"""Board catalogue on amaranth-boards platforms: clocks, pins, toolchain, reports."""
