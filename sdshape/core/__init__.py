"""What every layer shares and nothing imports above it: the stage and kind vocabulary, errors that
become one-line exit-2 messages, numeric bounds for every flag, units, statistics and library quieting."""
