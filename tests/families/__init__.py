"""Model families that live outside sdshape: each folder here is registered by the test that uses it."""
