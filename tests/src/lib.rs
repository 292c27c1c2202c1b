//! Cross-service integration tests. The tests themselves are in `stack/`; this library is
//! empty so that the package builds on its own.
