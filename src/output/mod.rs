//! Everything that prints.
