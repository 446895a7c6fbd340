"""From what a user asks to what a run does: the declared options (``options``), their limits (``limits``),
the resolved plan for this device (``plan``) and the identity that names a configuration (``identity``).
Everything a command line can set is declared and checked here, before any model is built."""
