//! A fake Discord voice server for tests.
