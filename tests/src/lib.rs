//! Cross-service integration tests live in `tests/`.
