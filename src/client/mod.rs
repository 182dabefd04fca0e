//! The only module that touches lapin.
