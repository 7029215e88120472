"""Python-level tests of the Rust core classes in `skedulr._core`."""
