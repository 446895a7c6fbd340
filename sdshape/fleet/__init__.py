"""Many runs at once: a matrix of jobs, one process per GPU, scheduled by Ray."""
