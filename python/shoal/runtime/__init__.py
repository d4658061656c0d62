"""Worker logic: a sans-IO state machine (:mod:`.machine`), its I/O shell (:mod:`.worker`), and
the client side of a run (:mod:`.client`)."""
