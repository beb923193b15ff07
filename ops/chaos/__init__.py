"""The chaos suite: real Sluice processes under webhook load, one fault at a time."""
