"""Operations tooling: benchmarks, smoke tests and deploy files; not imported at runtime."""
